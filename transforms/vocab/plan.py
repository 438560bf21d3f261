"""What the vocabulary job's flags ask for, checked before anything runs (one-line ConfigError otherwise).
``o`` is the job's options (``pipelines.vocab.VocabOptions``)."""

from __future__ import annotations

from typing import Any

from specs.errors import ConfigError
from transforms.core.storage import match_files
from transforms.vocab.learner import LearnerConfig, reserved_tokens
from transforms.vocab.records import InputConfig

# The flags recorded in vocab_params.json.
RECORDED_FLAGS = (
    "input_patterns", "input_format", "text_field", "language_field", "language_pattern", "default_language",
    "vocab_size", "do_lower_case", "alpha", "reserved_tokens", "num_unused", "min_word_count", "max_words",
    "min_token_count", "max_unique_chars", "max_token_length", "num_iterations", "slack_ratio",
    "pad_to_vocab_size")


def job_config(o: Any) -> tuple[list[str], InputConfig, LearnerConfig]:
    """Checks every flag before anything runs; one-line ConfigError otherwise."""
    if not o.input_patterns:
        raise ConfigError("--input_patterns is required")
    if o.vocab_size is None:
        raise ConfigError("--vocab_size is required")
    if not 0.0 <= o.alpha <= 1.0:
        raise ConfigError(f"--alpha must be in [0, 1], got {o.alpha}")
    if o.num_unused < 0:
        raise ConfigError(f"--num_unused must be >= 0, got {o.num_unused}")
    if o.min_word_count < 1 or o.max_words < 1:
        raise ConfigError(f"--min_word_count and --max_words must be >= 1, got {o.min_word_count}, {o.max_words}")
    inputs = InputConfig(o.input_format, o.text_field, o.language_field, o.language_pattern, o.default_language)
    inputs.validate()
    extra = [t.strip() for t in o.reserved_tokens.split(",") if t.strip()]
    learner = LearnerConfig(
        vocab_size=o.vocab_size, reserved=tuple(reserved_tokens(o.num_unused, extra)), num_unused=o.num_unused,
        lower=o.do_lower_case, min_token_count=o.min_token_count, num_iterations=o.num_iterations,
        max_token_length=o.max_token_length, max_unique_chars=o.max_unique_chars, slack_ratio=o.slack_ratio,
        pad_to_vocab_size=o.pad_to_vocab_size)
    learner.validate()
    paths = match_files([p for arg in o.input_patterns for p in arg.split(",") if p], "--input_patterns")
    return paths, inputs, learner



def recorded_flags(o: Any) -> dict[str, Any]:
    """The flags as vocab_params.json records them."""
    return {k: getattr(o, k) for k in RECORDED_FLAGS}
