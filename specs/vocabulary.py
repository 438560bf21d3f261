"""The one vocabulary and the one tokenisation every pipeline, the trainer and the export share.

``Vocabulary`` is a WordPiece ``vocab.txt`` plus everything that decides which ids a text gets: the
casing (``do_lower_case``), the reference's per-word length limit, and the special tokens. It is
loaded once, read the reference's way, and identified by a ``fingerprint`` (sha256 of its tokens)
that every output holding token ids records in its spec sidecar (``Vocabulary.params``), so readers
can check they tokenise as the writer did (``Vocabulary.check``).

The character rules of the reference tokenizer (``official/nlp/tools/tokenization.py``,
``BasicTokenizer``) are defined here too, from Python's ``unicodedata`` (the tables the reference
itself uses), as a per-code-point table (``char_table``) and, for uncased vocabularies, the mapping
``lower -> NFD -> drop Mn`` per code point (``lower_case_map``). The Beam engine
(``transforms.text.bert_tokenization``) and the in-graph engine (``trainer.text.tokenization``) are both
built from these tables, so they cannot drift apart by Unicode version.

No TensorFlow and no Beam at import: the trainer distribution ships ``specs/``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import sys
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from specs import SpecError

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)

# Model Garden's WordpieceTokenizer limit: a longer word becomes [UNK] (google-research/bert used 200).
REFERENCE_MAX_CHARS_PER_WORD = 400

# The CJK blocks the reference surrounds with spaces (BasicTokenizer._is_chinese_char).
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))

# Character classes of ``char_table`` (low three bits) and flags for the final-sigma rule of lower().
OTHER, DELETE, SPACE, PUNCT, CJK = 0, 1, 2, 3, 4
CLASS_MASK = 7
CASE_IGNORABLE = 8   # skipped when lower() looks for the letters around a capital sigma
CASED = 16           # a cased letter that is not case-ignorable
CAPITAL_SIGMA, FINAL_SIGMA = 0x3A3, 0x3C2

# The special ids of every vocabulary Google released for BERT: the fallback for records whose spec
# predates recorded special ids and that are read without a vocabulary.
BERT_SPECIAL_IDS = {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103}

# Keys of the spec sidecar params that say how the token ids were made.
PARAM_KEYS = ("vocab_fingerprint", "vocab_size", "do_lower_case", "max_chars_per_word")


def is_punctuation(ch: str) -> bool:
    """The reference's punctuation: every ASCII non-alphanumeric symbol and Unicode category P*."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp: int) -> bool:
    return any(a <= cp <= b for a, b in CJK_RANGES)


def char_class(ch: str) -> int:
    """What the reference does with one character: delete it (NUL, U+FFFD, control and format
    characters), treat it as whitespace (\\t \\n \\r, Zs, and whatever ``str.split`` splits on),
    split it off as punctuation or as a CJK ideograph, or keep it in a word."""
    cp = ord(ch)
    if ch in "\t\n\r":
        return SPACE
    cat = unicodedata.category(ch)
    if cp in (0, 0xFFFD) or cat in ("Cc", "Cf"):
        return DELETE
    if cat == "Zs" or ch.isspace():
        return SPACE
    if is_punctuation(ch):
        return PUNCT
    if is_cjk(cp):
        return CJK
    return OTHER


@functools.cache
def categories() -> tuple[str, ...]:
    """``unicodedata.category`` of every code point, computed once per process."""
    return tuple(unicodedata.category(chr(cp)) for cp in range(sys.maxunicode + 1))


def _assigned(cp: int) -> bool:
    return categories()[cp] not in ("Cn", "Co", "Cs")


@functools.cache
def char_table() -> bytes:
    """``char_table()[cp]``: the class of code point ``cp`` plus the ``CASE_IGNORABLE``/``CASED``
    flags, for every code point (1.1 MB). Unassigned and private-use code points are ``OTHER``."""
    table = bytearray(sys.maxunicode + 1)
    cats = categories()
    for cp in range(sys.maxunicode + 1):
        if cats[cp] in ("Cn", "Co", "Cs"):
            if cats[cp] == "Cs":
                table[cp] = DELETE  # lone surrogates cannot be encoded; never in decoded text
            elif is_cjk(cp):
                table[cp] = CJK  # the reference spaces out its CJK blocks whole, unassigned or not
            continue
        ch = chr(cp)
        flags = char_class(ch)
        # Python's str.lower() turns a capital sigma into a final sigma when a cased letter precedes
        # it and none follows, skipping case-ignorable characters both ways. Which characters are
        # which is read off str.lower() itself, so it is Python's own definition.
        if (ch + "\u03a3").lower()[-1] == "\u03c2":
            flags |= CASED
        elif ("\u0391" + ch + "\u03a3").lower()[-1] == "\u03c2":
            flags |= CASE_IGNORABLE
        table[cp] = flags
    return bytes(table)


@functools.cache
def class_pattern(cls: int) -> str:
    """The body of an RE2 character class (``\\x{...}`` ranges) matching exactly the code points
    of class ``cls`` in ``char_table()``."""
    table = char_table()
    return ranges_pattern(cp for cp, flags in enumerate(table)
                           if flags & CLASS_MASK == cls and not 0xD800 <= cp <= 0xDFFF)


@functools.cache
def unassigned_pattern() -> str:
    """An RE2 character class body of the code points Python's Unicode tables leave unassigned
    (outside the CJK blocks): a newer Unicode version (ICU's, inside TensorFlow ops) may give them
    other properties, so text holding one is tokenised by the exact path."""
    return ranges_pattern(cp for cp, cat in enumerate(categories()) if cat == "Cn" and not is_cjk(cp))


def ranges_pattern(cps: Iterable[int]) -> str:
    """The body of an RE2 character class matching exactly ``cps`` (ascending code points), as
    ``\\x{...}`` ranges: how the in-graph tokenisers name a set of code points measured here."""
    ranges: list[list[int]] = []
    for cp in cps:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges)


def lower_case_text(text: str) -> str:
    """What an uncased reference tokenizer does to a word: lower-case, NFD, drop non-spacing marks."""
    text = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in text if unicodedata.category(c) != "Mn")


@functools.cache
def lower_case_map() -> dict[int, str]:
    """``lower_case_text`` per code point, for the code points it changes (a capital sigma maps to
    ``σ``; the caller turns word-final ones into ``ς`` first). Checks that the mapping never creates
    or removes a space, CJK ideograph or deleted character, which is what makes applying it after
    the whitespace and CJK split equal to the reference's order."""
    table = char_table()
    out: dict[int, str] = {}
    for cp in range(sys.maxunicode + 1):
        if not _assigned(cp) or table[cp] & CLASS_MASK == DELETE:
            continue
        mapped = lower_case_text(chr(cp))
        if mapped == chr(cp):
            continue
        cls = table[cp] & CLASS_MASK
        for m in mapped:
            mc = table[ord(m)] & CLASS_MASK
            if mc == DELETE or (mc != cls and SPACE in (mc, cls)) or (mc != cls and CJK in (mc, cls)):
                raise AssertionError(f"lower-casing U+{cp:04X} gives class {mc} from class {cls}")
        out[cp] = mapped
    return out


def _read_bytes(path: str) -> bytes:
    """A file's bytes from a local path or any filesystem TensorFlow knows (gs://...)."""
    if "://" not in path:
        with open(path, "rb") as f:
            return f.read()
    # specs/ imports neither side's I/O at module level: the pipelines pass Beam's FileSystems as the
    # ``reader`` (transforms.core.storage.read_bytes); the trainer lands here.
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def parse_vocab(data: bytes, where: str = "vocab") -> tuple[str, ...]:
    """The tokens of a ``vocab.txt`` as the reference reads them: one per line, id = line number,
    each stripped of surrounding whitespace, no token for the text after a final newline."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{where} is not UTF-8 (byte {e.start})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(line.strip() for line in lines)


class _SpecialId:
    """``vocab.pad_id``, ``vocab.cls_id``, ...: the id a vocabulary gives one special token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __get__(self, vocab: Vocabulary | None, owner: type) -> Any:
        return self if vocab is None else vocab.ids[self.token]


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """A WordPiece vocabulary with the settings that decide its ids.

    ``tokens[i]`` has id ``i``; a token listed twice keeps its last id (the reference's
    ``OrderedDict``). ``lower_case`` is the reference's ``do_lower_case``.
    """

    tokens: tuple[str, ...]
    lower_case: bool
    path: str = ""
    max_chars_per_word: int = REFERENCE_MAX_CHARS_PER_WORD

    def __post_init__(self) -> None:
        missing = [t for t in SPECIAL_TOKENS if t not in self.ids]
        if missing:
            raise SpecError(f"vocabulary {self.path or '(in memory)'} lacks {', '.join(missing)}")

    @classmethod
    def load(cls, path: str, lower_case: bool, max_chars_per_word: int = REFERENCE_MAX_CHARS_PER_WORD,
             reader: Callable[[str], bytes] | None = None, flag: str = "--vocab_file") -> Vocabulary:
        """Reads ``path`` (local or ``gs://``); a one-line ``SpecError`` naming ``flag`` when it cannot."""
        try:
            data = (reader or _read_bytes)(path)
        except Exception as e:  # any failure to open is a configuration error here
            raise SpecError(f"{flag}: cannot read {path!r}: {type(e).__name__}") from None
        return cls(parse_vocab(data, f"{flag} {path!r}"), lower_case, path, max_chars_per_word)

    @functools.cached_property
    def ids(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    @property
    def size(self) -> int:
        return len(self.tokens)

    pad_id = _SpecialId(PAD)
    unk_id = _SpecialId(UNK)
    cls_id = _SpecialId(CLS)
    sep_id = _SpecialId(SEP)
    mask_id = _SpecialId(MASK)

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of the tokens (one per line, as read), so the same vocabulary with other line
        endings or trailing spaces has the same fingerprint."""
        return "sha256:" + hashlib.sha256("\n".join(self.tokens).encode("utf-8")).hexdigest()

    def special_ids(self) -> dict[str, int]:
        return {"pad": self.pad_id, "unk": self.unk_id, "cls": self.cls_id, "sep": self.sep_id,
                "mask": self.mask_id}

    def hub_special_tokens(self) -> dict[str, int]:
        """The keys of TF Hub's ``tokenize.get_special_tokens_dict()``."""
        return {"vocab_size": self.size, "padding_id": self.pad_id, "start_of_sequence_id": self.cls_id,
                "end_of_segment_id": self.sep_id, "mask_id": self.mask_id}

    def params(self) -> dict[str, Any]:
        """What a spec sidecar records about the tokenisation of its ids (``PARAM_KEYS`` plus the
        special ids)."""
        return {"vocab_fingerprint": self.fingerprint, "vocab_size": self.size, "do_lower_case": self.lower_case,
                "max_chars_per_word": self.max_chars_per_word, "special_ids": self.special_ids()}

    def check(self, params: Mapping[str, Any], where: str) -> None:
        """Stops with one line when ``params`` (a spec sidecar's) were made with another vocabulary,
        casing or word limit. Params written before these keys existed are not checked."""
        mine = self.params()
        for key in PARAM_KEYS:
            if key in params and params[key] != mine[key]:
                raise SpecError(f"{where} was tokenised with {key}={params[key]!r}, but this run uses "
                                f"{mine[key]!r} ({self.path or 'vocabulary'})")


def tokenization_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The tokenisation keys of a spec sidecar's params (empty when it predates them)."""
    return {k: params[k] for k in PARAM_KEYS if k in params}


def resolve_lower_case(explicit: bool | None, params: Mapping[str, Any], flag: str, where: str) -> bool | None:
    """The casing to use: the data's (``params['do_lower_case']``) unless set explicitly; an explicit
    setting that contradicts the data stops with one line. ``None`` when neither says."""
    recorded = params.get("do_lower_case")
    if explicit is None:
        return recorded
    if recorded is not None and recorded != explicit:
        raise SpecError(f"{flag}={str(explicit).lower()} contradicts {where}, tokenised with "
                        f"do_lower_case={str(recorded).lower()}")
    return explicit


def vocab_names(vocab: Sequence[str]) -> Sequence[str]:
    """The token list an id-ordered WordPiece engine can compile: a token that no word can reach
    (empty, or listed again later: the later id wins) is replaced by a name containing a space,
    which no word ever contains, so every id keeps its position."""
    last = {t: i for i, t in enumerate(vocab)}
    return [t if t and last[t] == i else f"[unreachable {i}]" for i, t in enumerate(vocab)]
