"""Cleaning translation pairs (no Beam): normalising each side and the rules that drop a pair."""

from __future__ import annotations

import dataclasses
import re
import unicodedata

from specs.errors import ConfigError
from transforms.text import writing_systems as scripts

# --- normalisation ---------------------------------------------------------------------------

# Controls become spaces when they separate words (tab, line breaks) and are deleted otherwise.
# Invisible format characters that carry no text (soft hyphen, zero-width space, BOM, bidi
# embeddings and marks) are deleted; ZWNJ/ZWJ are kept because Persian and Indic spelling needs them.
_SPACE_CONTROLS = "\t\n\v\f\r\x1c\x1d\x1e\x1f\x85"
_DELETE = (
    [c for c in range(0x20) if chr(c) not in _SPACE_CONTROLS] + list(range(0x7F, 0xA0))
    + [0xAD, 0x200B, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2060, 0x2065), *range(0x2066, 0x206A),
       0xFEFF, 0xFFF9, 0xFFFA, 0xFFFB]
)
_CLEAN_TABLE = {**dict.fromkeys(_DELETE), **{ord(c): " " for c in _SPACE_CONTROLS}}


def nfc_single_spaced(text: str) -> str:
    """Unicode NFC, control and invisible format characters removed, whitespace runs to one space."""
    if not (text.isascii() and text.isprintable()):
        text = unicodedata.normalize("NFC", text.translate(_CLEAN_TABLE))
    return " ".join(text.split())


# Scripts written without spaces between words count word-sized pieces as tokens, so that token
# lengths compare across scripts: runs of Han and kana count one token per two characters (a Chinese
# word is 1.5-2 characters), runs of Thai, Lao, Khmer, Myanmar and Tibetan one per three (about a
# syllable each). Measured on Tatoeba, this keeps the length-ratio rule from rejecting ordinary
# Chinese and Japanese sentences.
_CJK_RUN = re.compile("[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]+")
_UNSPACED_RUN = re.compile("[\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u19e0-\u19ff]+")


def count_tokens(text: str) -> int:
    """Whitespace tokens, with word-sized pieces of unspaced scripts as tokens (see above)."""
    if text.isascii():
        return len(text.split())
    n = 0
    for pattern, chars_per_token in ((_CJK_RUN, 2), (_UNSPACED_RUN, 3)):
        runs = pattern.findall(text)
        if runs:
            n += sum(-(-len(r) // chars_per_token) for r in runs)
            text = pattern.sub(" ", text)
    return n + len(text.split())


_URL = re.compile(r"(?:https?|ftp)://\S+|www\.\S+|\S+@\S+\.[A-Za-z]{2,}", re.IGNORECASE)


def letter_fraction(text: str, letters: int) -> float:
    """Share of the non-space characters that are letters outside URLs and e-mail addresses;
    ``letters`` is the text's letter count (from ``scripts.script_counts``)."""
    chars = len(text) - text.count(" ")
    if not chars:
        return 0.0
    if ("/" in text or "@" in text or "www." in text) and _URL.search(text):
        letters = sum(scripts.script_counts(_URL.sub(" ", text)).values())
    return letters / chars


# --- filtering -------------------------------------------------------------------------------

# Filter reasons, in the order they are tested (the first that applies is counted).
EMPTY, TOO_LONG_CHARS, TOO_LONG_TOKENS, NON_TEXT, IDENTICAL, LENGTH_RATIO, SCRIPT = (
    "empty_side", "too_long_chars", "too_long_tokens", "mostly_non_text", "identical_sides",
    "length_ratio", "script_mismatch")
FILTER_REASONS = (EMPTY, TOO_LONG_CHARS, TOO_LONG_TOKENS, NON_TEXT, IDENTICAL, LENGTH_RATIO, SCRIPT)


@dataclasses.dataclass(frozen=True)
class CleanConfig:
    """The cleaning rules; each can be switched off (0 / False)."""

    max_chars: int = 1000  # per side, after normalisation
    max_tokens: int = 200  # per side, see count_tokens
    min_letter_fraction: float = 0.5  # below it a side is mostly digits/punctuation/URLs
    drop_identical: bool = True  # source equals target (case-insensitively)
    max_length_ratio: float = 3.0  # longer/shorter side in tokens
    length_ratio_min_tokens: int = 8  # the ratio is only judged when the longer side has this many
    min_script_fraction: float = 0.4  # share of a side's letters in its language's scripts

    def validate(self) -> None:
        checks = [("--max_chars", self.max_chars >= 0), ("--max_tokens", self.max_tokens >= 0),
                  ("--min_letter_fraction", 0 <= self.min_letter_fraction <= 1),
                  ("--max_length_ratio", self.max_length_ratio == 0 or self.max_length_ratio >= 1),
                  ("--length_ratio_min_tokens", self.length_ratio_min_tokens >= 0),
                  ("--min_script_fraction", 0 <= self.min_script_fraction <= 1)]
        for flag, ok in checks:
            if not ok:
                raise ConfigError(f"{flag}: value out of range ({dataclasses.asdict(self)})")


def filter_reason(src: str, tgt: str, src_lang: str, tgt_lang: str, config: CleanConfig,
                  table: scripts.LanguageScripts) -> str | None:
    """The first cleaning rule the (normalised) pair breaks, or None when it is kept."""
    if not src or not tgt:
        return EMPTY
    if config.max_chars and max(len(src), len(tgt)) > config.max_chars:
        return TOO_LONG_CHARS
    ns, nt = count_tokens(src), count_tokens(tgt)
    if config.max_tokens and max(ns, nt) > config.max_tokens:
        return TOO_LONG_TOKENS
    cs, ct = scripts.script_counts(src), scripts.script_counts(tgt)
    if config.min_letter_fraction and (
            letter_fraction(src, sum(cs.values())) < config.min_letter_fraction
            or letter_fraction(tgt, sum(ct.values())) < config.min_letter_fraction):
        return NON_TEXT
    if config.drop_identical and (src == tgt or src.casefold() == tgt.casefold()):
        return IDENTICAL
    if (config.max_length_ratio and max(ns, nt) >= config.length_ratio_min_tokens
            and max(ns, nt) > config.max_length_ratio * max(1, min(ns, nt))):
        return LENGTH_RATIO
    if config.min_script_fraction and not (
            scripts.fits_language(cs, table.expected(src_lang), config.min_script_fraction)
            and scripts.fits_language(ct, table.expected(tgt_lang), config.min_script_fraction)):
        return SCRIPT
    return None


