"""Errors that stop a job before it starts."""


class ConfigError(ValueError):
    """Bad configuration found at start-up. The message is one line saying what and where."""
