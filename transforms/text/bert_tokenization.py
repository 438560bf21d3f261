"""BERT WordPiece tokenisation that gives the reference ``FullTokenizer``'s ids at compiled speed.

The reference (``tokenization.py`` of google-research/bert and TF Model Garden) is pure Python and
runs at under 1 MB/s per core. tensorflow_text's ``FastBertTokenizer`` runs at about 10 MB/s, but
its own normaliser is not the reference's: its lower-casing also folds characters (``ß`` -> ``ss``,
fullwidth forms, superscripts) and it turns control characters into spaces where the reference
deletes them. So the work is split:

1. ``normalize_batch`` does, in Python but on a whole batch of lines at once with C-level string
   operations (``str.translate``, compiled regular expressions, ``unicodedata.normalize``), exactly
   what the reference's ``BasicTokenizer`` does before splitting: delete NUL, U+FFFD and control and
   format characters; turn whitespace into spaces; put spaces around CJK ideographs; and, when
   lower-casing, ``str.lower``, NFD and removal of non-spacing marks. It uses Python's own
   ``unicodedata`` tables, so it agrees with the reference on every Unicode version question.
2. ``FastBertTokenizer`` with ``lower_case_nfd_strip_accents=False`` then only splits on whitespace
   and punctuation and runs the WordPiece longest-match, which is where the time goes.
3. Lines whose words are longer than the reference's limit (``max_chars_per_word``; longer words
   become ``[UNK]``), and lines with characters that Python's Unicode tables leave unassigned but
   the compiled tokenizer's newer tables may call punctuation, are rare and go through
   ``python_wordpiece``, a direct implementation of the reference's splitting and longest-match.

The vocabulary (``specs.vocabulary.Vocabulary``: tokens, casing, word limit, special ids) and the
character classes come from ``specs.vocabulary``, which the in-graph engine
(``trainer.text.tokenization``) is built from too. Measured agreement and speed are in
docs/pretraining.md; tests/test_bert_tokenization.py checks the ids against an independent
implementation of the reference algorithm on real text, tests/test_tokenization_parity.py against
Model Garden's ``FullTokenizer`` and the in-graph engine.
"""

from __future__ import annotations

import functools
import itertools
import re
import sys
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

from specs import vocabulary as sv

_CJK_RANGES = sv.CJK_RANGES
_CJK_BMP = re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in _CJK_RANGES if b < 0x10000) + "]+")
_CJK_ASTRAL = re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in _CJK_RANGES if a >= 0x10000) + "]+")


def _space_out(m: re.Match[str]) -> str:
    return " " + " ".join(m.group()) + " "


def _char_class(cps: Sequence[int]) -> str:
    """A regular-expression character class body for sorted code points, as ranges."""
    ranges: list[tuple[int, int]] = []
    for cp in cps:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


class _Tables:
    """Character sets of the reference's normalisation, from Python's ``unicodedata``.

    Python's regular expressions test a class of BMP characters in constant time but scan a class
    with astral ranges linearly, so each set is a fast BMP pattern plus a ``str.translate`` table
    for the (rare) astral characters, applied only when a text has any.
    """

    def __init__(self) -> None:
        delete, space, marks, punct, unassigned = [], [], [], [], []
        table, cats = sv.char_table(), sv.categories()
        for cp in range(sys.maxunicode + 1):
            cls, cat = table[cp] & sv.CLASS_MASK, cats[cp]
            if cp == 0x0A:
                continue  # separates the lines of a batch
            if cls == sv.DELETE and cat != "Cs":
                delete.append(cp)
            elif cls == sv.SPACE and cp != 0x20:
                # U+2028/U+2029 the reference keeps but then splits on (str.split), so a space is
                # equivalent there too.
                space.append(cp)
            elif cat == "Mn":
                marks.append(cp)
            elif cat == "Cn" and cp < 0x10000:
                unassigned.append(cp)
            if cp < 0x10000 and cls == sv.PUNCT:
                punct.append(cp)
        self.delete = re.compile(f"[{_char_class([c for c in delete if c < 0x10000])}]+")
        self.space = re.compile(f"[{_char_class([c for c in space if c < 0x10000])}]")
        self.marks = re.compile(f"[{_char_class([c for c in marks if c < 0x10000])}]+")
        self.astral_clean: dict[int, str | None] = {c: None for c in delete if c >= 0x10000}
        self.astral_clean.update({c: " " for c in space if c >= 0x10000})
        self.astral_marks: dict[int, None] = {c: None for c in marks if c >= 0x10000}
        # Word characters for the long-word check: not space, not BMP punctuation. Astral
        # punctuation counts as a word character, which can only make a word look longer and send
        # its line to the exact slow path, never the other way round.
        self.word_class = f"[^ \\n{_char_class(punct)}]"
        # Characters unassigned in Python's Unicode version may be assigned (as punctuation, say)
        # in the newer one the compiled tokenizer uses: lines with them take the exact slow path.
        self.unassigned = re.compile(f"[{_char_class(unassigned)}]")


@functools.cache
def _tables() -> _Tables:
    return _Tables()


_ASTRAL = re.compile("[\U00010000-\U0010FFFF]")
# ASCII fast path: delete control characters (not tab/CR/LF), map tab and CR to space.
_ASCII_DELETE = bytes([*range(0, 9), 11, 12, *range(14, 32), 127])
_ASCII_TABLE = bytes.maketrans(b"\t\r", b"  ")


def normalize_text(text: str, do_lower_case: bool) -> str:
    """One line (no ``\\n``) normalised as the reference's BasicTokenizer does before splitting."""
    return normalize_batch([text], do_lower_case)[0]


def normalize_batch(lines: Sequence[str], do_lower_case: bool) -> list[str]:
    """Normalises lines that contain no ``\\n`` (see the module docstring), a batch at once: ASCII
    lines (most lines of most corpora) through byte-level operations, the others together."""
    ascii_rows = [i for i, line in enumerate(lines) if line.isascii()]
    if len(ascii_rows) == len(lines):
        return _normalize_ascii(lines, do_lower_case)
    if not ascii_rows:
        return _normalize_unicode(lines, do_lower_case)
    out = list(lines)
    other_rows = sorted(set(range(len(lines))) - set(ascii_rows))
    for rows, fn in ((ascii_rows, _normalize_ascii), (other_rows, _normalize_unicode)):
        for i, text in zip(rows, fn([lines[i] for i in rows], do_lower_case), strict=True):
            out[i] = text
    return out


def _normalize_ascii(lines: Sequence[str], do_lower_case: bool) -> list[str]:
    b = "\n".join(lines).encode("ascii").translate(_ASCII_TABLE, _ASCII_DELETE)
    if do_lower_case:
        b = b.lower()
    return b.decode("ascii").split("\n")


def _normalize_unicode(lines: Sequence[str], do_lower_case: bool) -> list[str]:
    t = _tables()
    joined = "\n".join(lines)
    astral = _ASTRAL.search(joined) is not None
    text = t.space.sub(" ", t.delete.sub("", joined))
    if astral:
        text = text.translate(t.astral_clean)
    text = _CJK_BMP.sub(_space_out, text)
    if astral:
        text = _CJK_ASTRAL.sub(_space_out, text)
    if do_lower_case:
        # str.lower on the whole text equals the reference's per-word lower(): the only
        # context-sensitive mapping (final sigma) stops at whitespace either way.
        text = text.lower()
        if not text.isascii():
            text = t.marks.sub("", unicodedata.normalize("NFD", text))
            if astral:
                text = text.translate(t.astral_marks)
    return text.split("\n")


def _has_unassigned(text: str) -> bool:
    """Whether the text has a character that Python's Unicode tables do not assign."""
    if _tables().unassigned.search(text):
        return True
    return any(unicodedata.category(m.group()) == "Cn" for m in _ASTRAL.finditer(text))


def split_words(normalized: str) -> list[str]:
    """The reference's words of a normalised line: split on whitespace, then every punctuation
    character is a word of its own."""
    words: list[str] = []
    for token in normalized.split():
        start = 0
        for i, ch in enumerate(token):
            if sv.is_punctuation(ch):
                if i > start:
                    words.append(token[start:i])
                words.append(ch)
                start = i + 1
        if start < len(token):
            words.append(token[start:])
    return words


class BertTokenizer:
    """Reference-exact BERT WordPiece tokenisation of batches of lines into id arrays.

    Build one per worker (it compiles a tokenizer model of a few MB); ``tokenize_batch`` is the
    fast path. Picklable: the TensorFlow parts are built lazily on first use.
    """

    def __init__(self, vocab: sv.Vocabulary) -> None:
        self.vocabulary = vocab
        self.do_lower_case = vocab.lower_case
        self.max_chars_per_word = vocab.max_chars_per_word
        # Like the reference's OrderedDict: a repeated token keeps its last id.
        self.ids = vocab.ids
        self.unk_id = vocab.unk_id
        self._long_word: re.Pattern[str] | None = None
        self._tf: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_tf": None, "_long_word": None}

    def _fast(self) -> Any:
        if self._tf is None:
            import tensorflow as tf
            import tensorflow_text as tf_text

            tok = tf_text.FastBertTokenizer(
                vocab=list(sv.vocab_names(self.vocabulary.tokens)), suffix_indicator="##",
                # A word of max_chars_per_word characters has at most 4 bytes per character.
                max_bytes_per_word=4 * self.max_chars_per_word, token_out_type=tf.int32,
                unknown_token=sv.UNK, lower_case_nfd_strip_accents=False)
            self._tf = (tf, tok)
        return self._tf

    def tokenize_batch(self, lines: Sequence[str]) -> list[np.ndarray]:
        """Token ids (int32 arrays) for each line, equal to the reference FullTokenizer's."""
        if not lines:
            return []
        normalized = normalize_batch(lines, self.do_lower_case)
        tf, tok = self._fast()
        ragged = tok.tokenize(tf.constant(normalized))
        flat = ragged.flat_values.numpy()
        splits = ragged.row_splits.numpy()
        out = [flat[a:b] for a, b in itertools.pairwise(splits.tolist())]
        if self._long_word is None:
            # A run of word characters longer than the limit that starts a word (the lookbehind
            # makes the scan linear: positions inside a run fail at once).
            w = _tables().word_class
            self._long_word = re.compile(f"(?<!{w}){w}{{{self.max_chars_per_word + 1}}}")
        limit = self.max_chars_per_word
        for i, text in enumerate(normalized):
            if (len(text) > limit and self._long_word.search(text)) or (
                    not text.isascii() and _has_unassigned(text)):
                out[i] = np.asarray(self.python_wordpiece(text), dtype=np.int32)
        return out

    def tokenize(self, line: str) -> np.ndarray:
        return self.tokenize_batch([line])[0]

    def python_wordpiece(self, normalized: str) -> list[int]:
        """The reference's splitting and greedy longest-match-first WordPiece, in plain Python, for
        an already normalised line. Slow; used for lines with over-long words."""
        out: list[int] = []
        for word in split_words(normalized):
            if len(word) > self.max_chars_per_word:
                out.append(self.unk_id)
                continue
            pieces: list[int] = []
            start = 0
            while start < len(word):
                end = len(word)
                found = -1
                while start < end:
                    sub = word[start:end] if start == 0 else "##" + word[start:end]
                    found = self.ids.get(sub, -1)
                    if found >= 0:
                        break
                    end -= 1
                if found < 0:
                    pieces = [self.unk_id]
                    break
                pieces.append(found)
                start = end
            out.extend(pieces)
        return out

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self.vocabulary.tokens[int(i)] for i in ids]


def decode_reference(data: bytes) -> str:
    """Bytes to text as the reference reads its input: UTF-8 with invalid bytes dropped."""
    return data.decode("utf-8", "ignore")
