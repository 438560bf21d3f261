"""Text normalisation for deduplication keys: pure functions, no Beam.

Two strengths of normalisation, because the two jobs want different things:

- ``exact_key_text``: what makes two texts "the same" for exact deduplication. Unicode NFC (so that
  composed and decomposed accents agree), optional case folding, every run of punctuation, whitespace
  and control characters folded to one space, format characters (zero-width spaces, soft hyphens,
  BOMs) deleted, ends stripped. "Hello,  world!" and "Hello world" share a key; "Hello" and "hello"
  share one only with ``case_fold``.
- ``near_key_text``: the canonical form MinHash shingles and decontamination n-grams are taken from.
  NFKC (full-width and compatibility forms fold to their plain letters), always case-folded, the same
  punctuation and whitespace folding, and every character of a script written without spaces (Han,
  kana, Thai, Lao, Khmer, Myanmar) set off by spaces, so that the text is a sequence of *units*
  separated by single ASCII spaces: words for spaced scripts, single characters for the others.
  Word n-grams over such units are character n-grams inside Chinese or Thai and word n-grams in
  English, in the same text, with no language identification.

Sentences (``split_sentences``) are cut on sentence-final punctuation and line breaks before
normalisation, since normalisation removes the punctuation that marks them.
"""

from __future__ import annotations

import functools
import re
import string
import sys
import unicodedata

# Scripts written without spaces between words: each character is its own unit.
_SPACELESS = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff\u19e0-\u19ff"  # Khmer
    "\u3040-\u30ff\u31f0-\u31ff"  # Hiragana, Katakana
    "\u3100-\u312f"  # Bopomofo
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Han
    "\U00020000-\U0003134f"  # Han extensions B-G
)
_SPACELESS_RE = re.compile(f"[{_SPACELESS}]")
# A unit: one character of a spaceless script, or a run of anything else but spaces.
_UNIT_RE = re.compile(f"[{_SPACELESS}]|[^ {_SPACELESS}]+")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?\u0964\u06d4\u061f])\s+|(?<=[\u3002\uff01\uff1f])|[\r\n]+")


@functools.cache
def _fold_table() -> dict[int, str | None]:
    """``str.translate`` table: punctuation (P*) and controls (Cc) become a space; format characters
    (Cf: zero-width space and joiner, soft hyphen, BOM, bidi marks) are deleted, because they are
    invisible and would split words that look identical. Built once per process from the running
    Python's Unicode tables (about 0.5 s), so every worker of a job agrees."""
    table: dict[int, str | None] = {}
    for cp in range(sys.maxunicode + 1):
        category = unicodedata.category(chr(cp))
        if category[0] == "P" or category == "Cc":
            table[cp] = " "
        elif category == "Cf":
            table[cp] = None
    return table


# The same folding for pure-ASCII text as a bytes table, about four times faster than the dict.
_ASCII_FOLD = bytes(32 if i < 32 or i == 127 or (chr(i) in string.punctuation and chr(i) not in "$+<=>^`|~") else i
                    for i in range(128)) + bytes(range(128, 256))


def fold(text: str) -> str:
    """Deletes format characters, folds punctuation, controls and whitespace runs to one space and
    strips the ends. (ASCII symbols such as $ + < = > ^ ` | ~ are symbols, not punctuation: kept.)"""
    if text.isascii():
        text = text.encode("ascii").translate(_ASCII_FOLD).decode("ascii")
    else:
        text = text.translate(_fold_table())
    return " ".join(text.split())


def exact_key_text(text: str, case_fold: bool = False) -> str:
    """The normalised form compared by exact deduplication (NFC, optional case fold, folding)."""
    text = unicodedata.normalize("NFC", text)
    if case_fold:
        text = text.casefold()
    return fold(text)


def near_key_text(text: str) -> str:
    """The unit sequence MinHash and decontamination work on: NFKC, case-folded, folded, with each
    character of a spaceless script set off by spaces; units are separated by single spaces."""
    text = fold(unicodedata.normalize("NFKC", text).casefold())
    if _SPACELESS_RE.search(text):
        text = " ".join(_UNIT_RE.findall(text))
    return text


def units(text: str) -> list[str]:
    """The units (words, or characters of spaceless scripts) of a text, after ``near_key_text``."""
    normalized = near_key_text(text)
    return normalized.split(" ") if normalized else []


def split_sentences(text: str) -> list[str]:
    """Raw sentences of a text: cut after . ! ? (and their Devanagari, Arabic and CJK forms) and at
    line breaks. Deliberately simple: it only has to cut eval texts and training texts the same way."""
    return [s for s in (p.strip() for p in _SENTENCE_END_RE.split(text)) if s]


def as_text(value: object) -> str:
    """A text field as ``str``: bytes are decoded as UTF-8 with invalid bytes replaced, so that bad
    bytes change a key rather than crash a job. Anything else is a data error (``TypeError``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    raise TypeError(f"expected a text (str or UTF-8 bytes), got {type(value).__name__}")
