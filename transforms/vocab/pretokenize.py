"""BERT pre-tokenisation for the vocabulary learner, and WordPiece as BERT splits words (no Beam).

Pre-tokenisation must equal BERT's, or the vocabulary holds pieces the BERT tokenizer never produces and
lacks ones it needs. The rules (``tokenization.BasicTokenizer``): delete NUL, U+FFFD and control/format
characters (categories Cc/Cf except tab, newline, carriage return); turn whitespace into spaces; put
spaces around CJK ideographs; split on whitespace; when lower-casing, lower-case, decompose (NFD) and
drop non-spacing marks (Mn); split off every punctuation character (ASCII symbols and categories P*).
The character classes come from their one home, ``specs.vocabulary`` (``char_table``), which the Beam
and in-graph tokenizers are built from too. ``pre_tokenize`` applies them to the whole line at once
with regular expressions instead of character by character, which is equivalent (lower-casing, NFD
and mark removal never cross whitespace) and about ten times faster; a test checks it against a
literal implementation on real multilingual text.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Iterable

from specs import vocabulary as sv

JOINER = "##"
# A word longer than this is [UNK], as the tokenizer that will use the vocabulary has it.
MAX_CHARS_PER_WORD = sv.REFERENCE_MAX_CHARS_PER_WORD


# --- BERT BasicTokenizer rules ------------------------------------------------------------------

def _char_class(codepoints: Iterable[int]) -> str:
    """A regex character class body for sorted code points, written as ranges."""
    parts = []
    cps = sorted(codepoints)
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        a, b = cps[i], cps[j]
        parts.append(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}")
        i = j + 1
    return "".join(parts)


class _Rules:
    """The BasicTokenizer's character classes as compiled patterns, built once per process from the one
    home of those classes, ``specs.vocabulary.char_table()`` (what the Beam and in-graph tokenizers are
    built from too). U+2028 and U+2029 are spaces there (the reference keeps them but ``str.split``
    splits on them); the word pattern splits on them either way, so the words are the same."""

    def __init__(self) -> None:
        delete: list[int] = []
        space: list[int] = []
        punct: list[int] = []
        marks: list[int] = []
        table, cats = sv.char_table(), sv.categories()
        for cp in range(sys.maxunicode + 1):
            cls, cat = table[cp] & sv.CLASS_MASK, cats[cp]
            if cls == sv.DELETE and cat != "Cs":  # lone surrogates (from JSON escapes) stay in their word
                delete.append(cp)
            elif cls == sv.SPACE and cp != 0x20:
                space.append(cp)
            elif cls == sv.PUNCT:
                punct.append(cp)
            elif cat == "Mn":
                marks.append(cp)
        ascii_punct = re.escape("".join(chr(cp) for cp in punct if cp < 128))
        self.clean = {cp: None for cp in delete} | {cp: " " for cp in space}
        self.ascii_clean = {cp: v for cp, v in self.clean.items() if cp < 128}
        self.punct = frozenset(chr(cp) for cp in punct)
        p = _char_class(punct)
        self.words = re.compile(rf"[^\s{p}]+|[{p}]")
        self.ascii_words = re.compile(rf"[^\s{ascii_punct}]+|[{ascii_punct}]")
        self.cjk = re.compile("[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in sv.CJK_RANGES)
                              + "]")
        self.marks = re.compile(f"[{_char_class(marks)}]+")


@functools.cache
def _rules() -> _Rules:
    return _Rules()


def pre_tokenize(text: str, lower: bool) -> list[str]:
    """Splits text into the words BERT's BasicTokenizer produces (before WordPiece).

    ``lower`` is BERT's ``do_lower_case``: lower-case and strip accents (uncased models); otherwise
    case and accents are kept (cased and multilingual-cased models).
    """
    r = _rules()
    if text.isascii():
        text = text.translate(r.ascii_clean)
        return r.ascii_words.findall(text.lower() if lower else text)
    text = r.cjk.sub(r" \g<0> ", text.translate(r.clean))
    if lower:
        text = r.marks.sub("", unicodedata.normalize("NFD", text.lower()))
    return r.words.findall(text)



def is_isolated_char(ch: str) -> bool:
    """True for characters BERT's pre-tokeniser always makes a word of their own (punctuation and CJK
    ideographs): their ``##`` continuation forms can never be produced by the tokenizer."""
    if ch in _rules().punct:
        return True
    cp = ord(ch)
    return sv.is_cjk(cp)


def wordpiece_split(word: str, vocab: frozenset[str] | set[str]) -> list[str] | None:
    """Greedy longest-match-first WordPiece, as BERT's WordpieceTokenizer; None means ``[UNK]``."""
    if len(word) > MAX_CHARS_PER_WORD:
        return None
    pieces = []
    start = 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else JOINER + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:
            return None
        pieces.append(piece)
        start = end
    return pieces


