"""The one configuration error, raised by the data side and the trainer alike, and the spec error.

Bad configuration (a flag, a config key, a file that contradicts the data) must stop a command at
start-up with one line that says what and where. Every command catches this one class (with
``SpecError``) and prints its message as that line with exit status 2 (``transforms.core.runtime``
for the Beam jobs, ``trainer.cli.one_line_errors`` for the trainer's commands). It lives in ``specs/``
because that is the layer below both sides.
"""


class ConfigError(ValueError):
    """Bad configuration found at start-up. The message is one line saying what and where."""


class SpecError(ValueError):
    """A spec is missing, malformed, or does not match what a consumer expects (also ``specs.SpecError``)."""
