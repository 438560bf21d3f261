"""A rule-based sentence splitter for documents that do not come one sentence per line.

BERT's next-sentence task and segment building need sentence boundaries, but JSONL and TFRecord
corpora carry whole documents. A statistical splitter per language would be better and much slower;
these rules get the boundaries that matter for building segments right in most scripts:

- Latin, Cyrillic, Greek and similar: ``.``, ``!``, ``?``, ``…`` (optionally followed by closing quotes
  or brackets), then whitespace, then something that does not start with a lower-case letter. A
  full stop after a known abbreviation (``Dr.``, ``e.g.``), a single capital initial (``J. R. R.``) or
  a number (``No. 5``) is not a boundary.
- CJK: ``。！？`` and their half-width and small forms end a sentence with or without a following space.
- Devanagari and other Indic scripts ``।`` ``॥``; Arabic ``؟`` ``۔``; Armenian ``։``; Ethiopic ``።``
  ``፧``; Myanmar ``။``; Khmer ``។`` ``៕``; the Greek question mark ``;`` (U+037E).
- Thai and Lao write no sentence punctuation and separate sentences with a space, so whitespace
  between two Thai (or two Lao) characters is a boundary.
- A line break is always a boundary (paragraphs and list items are not continued across lines).

Everything here is a plain function of the text; no state, no models.
"""

from __future__ import annotations

import re

_CLOSERS = "\"'”’»›)]}」』）】〕〉》〗〙〛｣"
# Terminators that need whitespace (or the end) after them.
_LATIN_END = ".!?…‼⁇⁈⁉"
_SPACED_END = "।॥؟۔։።፧፨။។៕;"
# Terminators that end a sentence even when the next one follows without a space (CJK).
_CJK_END = "。！？｡︒﹒﹗﹖"

_ABBREVIATIONS = frozenset("""
mr mrs ms dr prof sr jr st mt ft vs etc al fig figs eq eqs no nos vol vols ch sec cf approx dept est
inc ltd co corp univ gen gov col lt sgt capt cmdr adm rev hon pres jan feb mar apr jun jul aug sep sept
oct nov dec mon tue wed thu fri sat sun ca op pp ed eds trans repr e.g i.e a.m p.m u.s u.k u.n
""".split())

_CANDIDATE = re.compile(
    rf"([{re.escape(_LATIN_END)}]+)[{re.escape(_CLOSERS)}]*(\s+|$)"
    rf"|[{re.escape(_SPACED_END)}][{re.escape(_CLOSERS)}]*(?:\s+|$)"
    rf"|[{re.escape(_CJK_END)}]+[{re.escape(_CLOSERS)}]*\s*"
    r"|(?<=[\u0E00-\u0E7F])\s+(?=[\u0E00-\u0E7F])"
    r"|(?<=[\u0E80-\u0EFF])\s+(?=[\u0E80-\u0EFF])"
)
_WORD_BEFORE = re.compile(r"(\S+)$")


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    """Whether a Latin-style terminator at ``match`` really ends a sentence."""
    end = match.end()
    if end < len(text):
        nxt = text[end]
        if nxt.islower():
            return False
    if match.group(1) != ".":
        return True  # "!", "?", "…", "?!" and runs of dots end a sentence when followed by space
    before = _WORD_BEFORE.search(text, 0, match.start())
    if before is None:
        return True
    word = before.group(1).lstrip("\"'“‘«‹([{")
    if not word:
        return True
    if word.lower() in _ABBREVIATIONS:
        return False
    if len(word) == 1 and word.isupper():
        return False  # an initial: "J. R. R. Tolkien"
    if "." in word and all(len(part) <= 1 for part in word.split(".")):
        return False  # "U.S", "e.g" in forms the list lacks
    return True


def split_sentences(text: str) -> list[str]:
    """Splits a document into sentences, stripped and non-empty, in order."""
    sentences: list[str] = []
    for line in text.splitlines():
        start = 0
        for match in _CANDIDATE.finditer(line):
            if match.group(1) is not None and not _ends_sentence(line, match):
                continue
            piece = line[start:match.end()].strip()
            if piece:
                sentences.append(piece)
            start = match.end()
        rest = line[start:].strip()
        if rest:
            sentences.append(rest)
    return sentences
