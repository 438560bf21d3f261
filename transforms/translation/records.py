"""Translation pair records: what the inputs are and how a line becomes a pair (no Beam).

Inputs (many language pairs in one job, ``.gz`` allowed, local or ``gs://``):

- TSV ``src<TAB>tgt`` or ``src<TAB>tgt<TAB>src_lang<TAB>tgt_lang``: read splittably, line by line.
- Aligned Moses/OPUS file pairs ``NAME.L1-L2.L1`` + ``NAME.L1-L2.L2``: line *i* of one file is the
  translation of line *i* of the other; languages come from the names (joined in ``reading``).
- JSONL with configurable (dotted) field names, e.g. ``translation.de``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from specs.errors import ConfigError
from transforms.core.formats import JSONL, TSV, format_of
from transforms.core.records import BadRecordError, decode_utf8, dotted_lookup

ALIGNED = "aligned"
FORMATS = (TSV, ALIGNED, JSONL)
SPLITS = ("train", "validation", "test")
READ_STAGE, CLEAN_STAGE, BALANCE_STAGE = "read_pairs", "clean_pairs", "balance"


class TranslationPair(NamedTuple):
    """One translation pair with where it came from (for dead letters and deterministic choices)."""

    src: str
    tgt: str
    src_lang: str
    tgt_lang: str
    source: str  # the input file (aligned pairs: the source-side file)
    line: int  # 1-based line number, -1 when only the byte offset is known
    offset: int  # byte offset in the (decompressed) source, -1 when only the line is known
    # Set by ``--score_with`` (``transforms.encoders.ScorePairs``), None otherwise.
    score: float | None = None  # cosine of the two sides' sentence embeddings
    margin: float | None = None  # ratio margin over the k nearest neighbours of both sides
    # Set by ``--teacher`` (``transforms.encoders.TeacherEmbeddings``): the teacher's embedding of the side in
    # its language, for ``labse/distill``; None otherwise.
    teacher_embedding: tuple[float, ...] | None = None

    @property
    def lang_pair(self) -> str:
        return f"{self.src_lang}-{self.tgt_lang}"


# --- input planning ----------------------------------------------------------------------------

_ALIGNED_NAME = re.compile(r"^(?P<stem>.*?)(?P<l1>[A-Za-z]{2,3}(?:_[A-Za-z]{4})?)-"
                           r"(?P<l2>[A-Za-z]{2,3}(?:_[A-Za-z]{4})?)\.(?P<side>[A-Za-z_]+)(?P<comp>\.gz|\.bz2)?$")
_LANGS_IN_NAME = re.compile(r"(?:^|[._])(?P<l1>[A-Za-z]{2,3}(?:_[A-Za-z]{4})?)-"
                            r"(?P<l2>[A-Za-z]{2,3}(?:_[A-Za-z]{4})?)\.[^/]*$")


@dataclasses.dataclass(frozen=True)
class AlignedFiles:
    """The two files of one Moses/OPUS pair; ``name`` (``DIR/NAME.L1-L2``) is its accounting scope."""

    name: str
    src_path: str
    tgt_path: str
    src_lang: str
    tgt_lang: str


@dataclasses.dataclass(frozen=True)
class InputPlan:
    """What to read: line-oriented files with their default languages, and aligned pairs."""

    tsv: Mapping[str, tuple[str, str]]
    jsonl: Mapping[str, tuple[str, str]]
    aligned: tuple[AlignedFiles, ...]


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def plan_inputs(paths: Sequence[str], input_format: str = "auto", src_lang: str = "",
                tgt_lang: str = "") -> InputPlan:
    """Decides each file's format and languages at start-up; one-line ConfigError otherwise.

    ``auto``: TSV and JSONL by the file's name (``formats.format_of``: ``*.tsv``/``*.tab``,
    ``*.jsonl``/``*.ndjson``/``*.json``, compressed or not), and ``NAME.L1-L2.Lx`` is one side of an
    aligned pair (both sides must be given). TSV/JSONL files take default languages from a ``.L1-L2.``
    part of their name, else from ``--src_lang/--tgt_lang`` (rows that carry languages override both).
    """
    if input_format not in ("auto", *FORMATS):
        raise ConfigError(f"--input_format: {input_format!r} is not one of auto, {', '.join(FORMATS)}")
    tsv: dict[str, tuple[str, str]] = {}
    jsonl: dict[str, tuple[str, str]] = {}
    sides: dict[tuple[str, str, str], dict[str, str]] = {}
    for path in paths:
        name = _basename(path)
        aligned = _ALIGNED_NAME.match(name)
        fmt = input_format
        if fmt == "auto":
            fmt = format_of(name, (TSV, JSONL)) or ""
            if not fmt and aligned and aligned["side"] in (aligned["l1"], aligned["l2"]):
                fmt = ALIGNED
            elif not fmt:
                raise ConfigError(f"--input: cannot tell the format of {path!r} (expected *.tsv, *.jsonl or "
                                  "NAME.L1-L2.L1 aligned files); set --input_format")
        if fmt == ALIGNED:
            if not aligned or aligned["side"] not in (aligned["l1"], aligned["l2"]):
                raise ConfigError(f"--input: aligned file {path!r} is not named NAME.L1-L2.L1 or NAME.L1-L2.L2")
            stem = path[: len(path) - len(name)] + aligned["stem"]
            key = (stem, aligned["l1"], aligned["l2"])
            sides.setdefault(key, {})[aligned["side"]] = path
            continue
        langs = _LANGS_IN_NAME.search(name)
        default = (langs["l1"], langs["l2"]) if langs else (src_lang, tgt_lang)
        (tsv if fmt == TSV else jsonl)[path] = default
    aligned_files = []
    for (stem, l1, l2), found in sorted(sides.items()):
        missing = [lang for lang in (l1, l2) if lang not in found]
        if missing:
            have = next(iter(found.values()))
            raise ConfigError(f"--input: aligned file {have!r} has no partner {stem}{l1}-{l2}.{missing[0]}")
        aligned_files.append(AlignedFiles(f"{stem}{l1}-{l2}", found[l1], found[l2], l1, l2))
    return InputPlan(tsv, jsonl, tuple(aligned_files))


# --- parsing -------------------------------------------------------------------------------------

def parse_tsv_line(raw: bytes, default_langs: tuple[str, str]) -> tuple[str, str, str, str]:
    """``src<TAB>tgt[<TAB>src_lang<TAB>tgt_lang]`` -> (src, tgt, src_lang, tgt_lang)."""
    cols = decode_utf8(raw.rstrip(b"\r")).split("\t")
    if len(cols) == 2:
        src, tgt = cols
        sl, tl = default_langs
    elif len(cols) == 4:
        src, tgt, sl, tl = cols
        sl, tl = sl.strip(), tl.strip()
    else:
        raise BadRecordError("bad_columns", f"{len(cols)} tab-separated columns, expected 2 or 4")
    if not sl or not tl:
        raise BadRecordError("missing_language", "no language columns, none in the file name, no --src_lang/--tgt_lang")
    return src, tgt, sl, tl


@dataclasses.dataclass(frozen=True)
class JsonFields:
    """Dotted paths of the JSONL fields (``translation.de`` reads ``{"translation": {"de": ...}}``)."""

    src: str = "src"
    tgt: str = "tgt"
    src_lang: str = "src_lang"
    tgt_lang: str = "tgt_lang"

    @classmethod
    def parse(cls, spec: str, flag: str = "--jsonl_fields") -> JsonFields:
        """``src=a,tgt=b[,src_lang=c,tgt_lang=d]``; unknown or malformed entries are config errors."""
        values: dict[str, str] = {}
        for item in filter(None, (s.strip() for s in spec.split(","))):
            key, sep, value = item.partition("=")
            if not sep or key not in ("src", "tgt", "src_lang", "tgt_lang") or not value:
                raise ConfigError(f"{flag}: {item!r} is not src=PATH, tgt=PATH, src_lang=PATH or tgt_lang=PATH")
            values[key] = value
        return cls(**values)


def parse_json_line(raw: bytes, fields: JsonFields, default_langs: tuple[str, str]) -> tuple[str, str, str, str]:
    """One JSON object per line -> (src, tgt, src_lang, tgt_lang)."""
    try:
        obj = json.loads(decode_utf8(raw))
    except json.JSONDecodeError as e:
        raise BadRecordError("bad_json", str(e)) from None
    if not isinstance(obj, dict):
        raise BadRecordError("bad_json", f"a JSON {type(obj).__name__}, not an object")
    src, tgt = dotted_lookup(obj, fields.src), dotted_lookup(obj, fields.tgt)
    for name, value in ((fields.src, src), (fields.tgt, tgt)):
        if not isinstance(value, str):
            raise BadRecordError("missing_field", f"field {name!r} is {'missing' if value is None else 'not a string'}")
    sl = dotted_lookup(obj, fields.src_lang) or default_langs[0]
    tl = dotted_lookup(obj, fields.tgt_lang) or default_langs[1]
    if not isinstance(sl, str) or not isinstance(tl, str) or not sl or not tl:
        raise BadRecordError("missing_language", "no language fields, none in the file name, no --src_lang/--tgt_lang")
    return src, tgt, sl, tl


@dataclasses.dataclass(frozen=True)
class PairLineParser:
    """A TSV or JSONL line -> a ``TranslationPair`` (the parse function of ``core.records.ParseLines``);
    ``langs`` holds each file's default languages."""

    fmt: str
    langs: Mapping[str, tuple[str, str]]
    fields: JsonFields

    def __call__(self, path: str, offset: int, raw: bytes) -> TranslationPair:
        langs = self.langs.get(path, ("", ""))
        if self.fmt == TSV:
            src, tgt, sl, tl = parse_tsv_line(raw, langs)
        else:
            src, tgt, sl, tl = parse_json_line(raw, self.fields, langs)
        return TranslationPair(src, tgt, sl, tl, path, -1, offset)
