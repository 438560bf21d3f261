"""Translation pairs for LaBSE-style dual encoders: reading, cleaning, splitting, balancing, writing.

Inputs (many language pairs in one job, ``.gz`` allowed, local or ``gs://``):

- TSV ``src<TAB>tgt`` or ``src<TAB>tgt<TAB>src_lang<TAB>tgt_lang``: read splittably, line by line.
- Aligned Moses/OPUS file pairs ``NAME.L1-L2.L1`` + ``NAME.L1-L2.L2``: line *i* of one file is the
  translation of line *i* of the other; languages come from the names.
- JSONL with configurable (dotted) field names, e.g. ``translation.de``.

Aligned files are joined by line *index* without ever holding a whole file on one worker. Both files
are read splittably as ``LineBatch``es (consecutive lines plus byte offsets). A first, tiny pass
turns the batches into ``(first_offset, line_count)`` summaries; per file these are sorted and
prefix-summed into the index of each batch's first line (a file of 10^9 lines has 2.5x10^5 summaries
at 4096 lines per batch: small enough for one worker). Each batch then learns its start index by a
join on ``(path, first_offset)``, its lines are cut into blocks of ``ALIGN_BLOCK`` consecutive indices,
and the two files' blocks meet in a GroupByKey on ``(pair, block)``: bounded groups of at most
2 x ``ALIGN_BLOCK`` lines, in which lines are zipped by index. Shuffling blocks instead of single
lines keeps the shuffle at one element per few thousand lines. A line whose partner is missing (the
files differ in length) is dead-lettered with its line number; a line that is not UTF-8 is
dead-lettered by the read (stage ``read_input``) but keeps its index, and its partner is filtered
(``other_side_dead_lettered``).

Every per-element decision is a plain function below (tested without Beam); the composite
transforms only wire them up and account for every record.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from specs import TRANSLATION_PAIRS
from transforms import accounting, files, scripts
from transforms.accounting import Accounted, AccountedDoFn, DeadLetter
from transforms.errors import ConfigError
from transforms.seeding import stable_hash64, unit_interval

ALIGN_BLOCK = 4096
TSV, ALIGNED, JSONL = "tsv", "aligned", "jsonl"
FORMATS = (TSV, ALIGNED, JSONL)
SPLITS = ("train", "validation", "test")
READ_STAGE, CLEAN_STAGE, BALANCE_STAGE = "read_pairs", "clean_pairs", "balance"


class Pair(NamedTuple):
    """One translation pair with where it came from (for dead letters and deterministic choices)."""

    src: str
    tgt: str
    src_lang: str
    tgt_lang: str
    source: str  # the input file (aligned pairs: the source-side file)
    line: int  # 1-based line number, -1 when only the byte offset is known
    offset: int  # byte offset in the (decompressed) source, -1 when only the line is known

    @property
    def lang_pair(self) -> str:
        return f"{self.src_lang}-{self.tgt_lang}"


# --- input planning ----------------------------------------------------------------------------

_ALIGNED_NAME = re.compile(r"^(?P<stem>.*?)(?P<l1>[A-Za-z]{2,3}(?:_[A-Za-z]{4})?)-"
                           r"(?P<l2>[A-Za-z]{2,3}(?:_[A-Za-z]{4})?)\.(?P<side>[A-Za-z_]+)(?P<comp>\.gz|\.bz2)?$")
_LANGS_IN_NAME = re.compile(r"(?:^|[._])(?P<l1>[A-Za-z]{2,3}(?:_[A-Za-z]{4})?)-"
                            r"(?P<l2>[A-Za-z]{2,3}(?:_[A-Za-z]{4})?)\.[^/]*$")
_TSV_NAME = re.compile(r"\.(?:tsv|tab)(?:\.gz|\.bz2)?$")
_JSONL_NAME = re.compile(r"\.(?:jsonl|ndjson|json)(?:\.gz|\.bz2)?$")


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

    ``auto``: ``*.tsv``/``*.tab`` are TSV, ``*.jsonl``/``*.ndjson``/``*.json`` are JSONL, and
    ``NAME.L1-L2.Lx`` is one side of an aligned pair (both sides must be given). TSV/JSONL files
    take default languages from a ``.L1-L2.`` part of their name, else from ``--src_lang/--tgt_lang``
    (rows that carry languages override both).
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
            if _TSV_NAME.search(name):
                fmt = TSV
            elif _JSONL_NAME.search(name):
                fmt = JSONL
            elif aligned and aligned["side"] in (aligned["l1"], aligned["l2"]):
                fmt = ALIGNED
            else:
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

class BadRecordError(ValueError):
    """A record that cannot become a pair; ``reason`` names the dead-letter reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRecordError("invalid_utf8", str(e)) from None


def parse_tsv_line(raw: bytes, default_langs: tuple[str, str]) -> tuple[str, str, str, str]:
    """``src<TAB>tgt[<TAB>src_lang<TAB>tgt_lang]`` -> (src, tgt, src_lang, tgt_lang)."""
    cols = _decode(raw.rstrip(b"\r")).split("\t")
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


def _lookup(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def parse_json_line(raw: bytes, fields: JsonFields, default_langs: tuple[str, str]) -> tuple[str, str, str, str]:
    """One JSON object per line -> (src, tgt, src_lang, tgt_lang)."""
    try:
        obj = json.loads(_decode(raw))
    except json.JSONDecodeError as e:
        raise BadRecordError("bad_json", str(e)) from None
    if not isinstance(obj, dict):
        raise BadRecordError("bad_json", f"a JSON {type(obj).__name__}, not an object")
    src, tgt = _lookup(obj, fields.src), _lookup(obj, fields.tgt)
    for name, value in ((fields.src, src), (fields.tgt, tgt)):
        if not isinstance(value, str):
            raise BadRecordError("missing_field", f"field {name!r} is {'missing' if value is None else 'not a string'}")
    sl = _lookup(obj, fields.src_lang) or default_langs[0]
    tl = _lookup(obj, fields.tgt_lang) or default_langs[1]
    if not isinstance(sl, str) or not isinstance(tl, str) or not sl or not tl:
        raise BadRecordError("missing_language", "no language fields, none in the file name, no --src_lang/--tgt_lang")
    return src, tgt, sl, tl


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


def normalize_text(text: str) -> str:
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


# --- keys, splits, balancing -------------------------------------------------------------------

def unordered_lang_pair(src_lang: str, tgt_lang: str) -> str:
    """``deu-eng`` for both directions: the unit of balancing."""
    a, b = sorted((src_lang, tgt_lang))
    return f"{a}-{b}"


def pair_key(pair: Pair) -> bytes:
    """A 128-bit identity of the normalised pair, the same for both directions (``de->en`` and
    ``en->de`` of the same sentences are one pair for dedup and splitting)."""
    a, b = sorted(((pair.src_lang, pair.src), (pair.tgt_lang, pair.tgt)))
    return stable_hash64(*a, *b).to_bytes(8, "big") + stable_hash64(*b, *a).to_bytes(8, "big")


def parse_split_fractions(spec: str, flag: str = "--split") -> dict[str, float]:
    """``train=0.98,validation=0.01,test=0.01`` (names among SPLITS, fractions summing to 1)."""
    out: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, sep, value = item.partition("=")
        try:
            frac = float(value)
        except ValueError:
            frac = -1.0
        if not sep or name not in SPLITS or not 0 <= frac <= 1 or name in out:
            raise ConfigError(f"{flag}: {item!r} is not NAME=FRACTION with NAME one of {', '.join(SPLITS)}")
        out[name] = frac
    if not out or abs(sum(out.values()) - 1.0) > 1e-9:
        raise ConfigError(f"{flag}: fractions {spec!r} must sum to 1")
    return out


def split_of(key: bytes, fractions: Mapping[str, float], split_seed: int) -> str:
    """The split of a pair from a hash of its normalised content: the same pair lands in the same
    split on every run, whatever else is in the job."""
    u = unit_interval(split_seed, b"split", key)
    acc = 0.0
    names = [s for s in SPLITS if s in fractions]
    for name in names:
        acc += fractions[name]
        if u < acc:
            return name
    return names[-1]


def sampling_rates(counts: Mapping[str, int], alpha: float, cap: int = 0, max_upsample: float = 1.0
                   ) -> dict[str, tuple[int, float]]:
    """Exponentially smoothed sampling: per language pair ``(target, rate)``.

    With ``N`` pairs in all and ``q_i = n_i^alpha / sum_j n_j^alpha`` (alpha < 1 flattens the
    distribution towards low-resource pairs, as XLM-R/mT5/LaBSE do), pair ``i`` aims at
    ``min(N q_i, max_upsample n_i, cap)`` examples; ``rate = target / n_i`` is the expected number of
    copies of each of its pairs. With ``alpha = 1`` and no cap every rate is 1.
    """
    # fsum: exactly rounded whatever the order the counts arrived in, so rates are bit-identical.
    total = math.fsum(counts.values())
    weights = {lp: n ** alpha for lp, n in counts.items() if n}
    norm = math.fsum(weights.values())
    out = {}
    for lp, n in sorted(counts.items()):
        if not n:
            continue
        target = min(total * weights[lp] / norm, max_upsample * n)
        if cap:
            target = min(target, cap)
        out[lp] = (round(target), target / n)
    return out


def copies(rate: float, seed: int, key: bytes) -> int:
    """How many times a pair is written at a sampling ``rate``: ``floor(rate)`` plus one more with
    probability ``frac(rate)``, decided by a hash of the pair (Bernoulli/Poisson-free, reproducible)."""
    whole = math.floor(rate)
    return whole + (1 if unit_interval(seed, b"balance", key) < rate - whole else 0)


LENGTH_BINS = (0, 4, 8, 16, 32, 64, 128, 256, 512)


def length_bin(tokens: int) -> int:
    """The lower edge of ``tokens``' histogram bin in LENGTH_BINS."""
    edge = 0
    for b in LENGTH_BINS:
        if tokens >= b:
            edge = b
    return edge


# --- Beam: reading ------------------------------------------------------------------------------

class _ParseLines(AccountedDoFn):
    """TSV or JSONL lines -> Pairs; unparseable lines are dead-lettered, blank lines filtered."""

    stage = READ_STAGE

    def __init__(self, fmt: str, langs: Mapping[str, tuple[str, str]], fields: JsonFields) -> None:
        self._fmt, self._langs, self._fields = fmt, dict(langs), fields

    def process(self, batch: files.LineBatch) -> Iterator[Any]:
        path = batch.path
        langs = self._langs.get(path, ("", ""))
        for offset, raw in batch.lines:
            self.took_in(path)
            if not raw.strip():
                self.filtered(path, "blank_line")
                continue
            try:
                if self._fmt == TSV:
                    src, tgt, sl, tl = parse_tsv_line(raw, langs)
                else:
                    src, tgt, sl, tl = parse_json_line(raw, self._fields, langs)
            except BadRecordError as e:
                yield self.dead_letter(path, DeadLetter.make(self.stage, e.reason, raw, source=path, offset=offset,
                                                             detail=e.detail))
                continue
            self.out(path)
            yield Pair(src, tgt, sl, tl, path, -1, offset)


def _batch_summary(batch: files.LineBatch) -> tuple[str, tuple[int, int]]:
    return batch.path, (batch.lines[0][0], len(batch.lines))


def _batch_starts(item: tuple[str, Iterable[tuple[int, int]]]) -> Iterator[tuple[tuple[str, int], int]]:
    """Per file: the 0-based index of each batch's first line, from the sorted batch summaries."""
    path, summaries = item
    index = 0
    for offset, n in sorted(summaries):
        yield (path, offset), index
        index += n


def _lines_to_blocks(item: tuple[tuple[str, int], dict[str, list[Any]]], sides: Mapping[str, tuple[str, int]]
                     ) -> Iterator[tuple[tuple[str, int], tuple[int, int, list[bytes]]]]:
    """A batch with its start index -> ((pair name, block), (side, first index, lines)) pieces."""
    (path, _), joined = item
    (start,) = joined["start"]
    (lines,) = joined["lines"]
    name, side = sides[path]
    i = 0
    while i < len(lines):
        index = start + i
        block = index // ALIGN_BLOCK
        n = min(len(lines) - i, (block + 1) * ALIGN_BLOCK - index)
        yield (name, block), (side, index, [raw for _, raw in lines[i:i + n]])
        i += n


_MISSING: Any = object()  # no line with this index in one file of the pair


class _ZipBlock(AccountedDoFn):
    """The two sides' lines of one block -> Pairs by line index; unmatched lines are dead-lettered."""

    stage = READ_STAGE

    def __init__(self, aligned: Sequence[AlignedFiles]) -> None:
        self._by_name = {a.name: a for a in aligned}

    def process(self, item: tuple[tuple[str, int], Iterable[tuple[int, int, list[bytes]]]]) -> Iterator[Any]:
        (name, _), pieces = item
        files_ = self._by_name[name]
        lines: tuple[dict[int, bytes], dict[int, bytes]] = ({}, {})
        for side, first, raws in pieces:
            for j, raw in enumerate(raws):
                lines[side][first + j] = raw
        for index in sorted(lines[0].keys() | lines[1].keys()):
            self.took_in(name)
            src, tgt = lines[0].get(index, _MISSING), lines[1].get(index, _MISSING)
            if src is _MISSING or tgt is _MISSING:
                path = files_.tgt_path if src is _MISSING else files_.src_path
                yield self.dead_letter(name, DeadLetter.make(
                    self.stage, "line_count_mismatch", (tgt if src is _MISSING else src) or b"", source=path,
                    line=index + 1, detail="the other file of the pair has no line with this number"))
                continue
            if src is None or tgt is None:
                # read_input dead-lettered a side's line (invalid UTF-8): there is no pair without it
                self.filtered(name, "other_side_dead_lettered")
                continue
            self.out(name)
            yield Pair(src.decode("utf-8"), tgt.decode("utf-8"), files_.src_lang, files_.tgt_lang,
                       files_.src_path, index + 1, -1)


class ReadAlignedFiles(beam.PTransform):
    """Moses/OPUS aligned file pairs -> Pairs joined by line index (see the module docstring)."""

    def __init__(self, aligned: Sequence[AlignedFiles], desired_bundle_size: int = 64 << 20) -> None:
        super().__init__()
        self._aligned = tuple(aligned)
        self._bundle = desired_bundle_size

    def expand(self, pbegin: beam.pvalue.PBegin) -> Accounted:
        sides = {}
        for a in self._aligned:
            sides[a.src_path], sides[a.tgt_path] = (a.name, 0), (a.name, 1)
        read = pbegin | "Read" >> files.ReadLineBatches(sorted(sides), batch_size=ALIGN_BLOCK,
                                                        desired_bundle_size=self._bundle, keep_places=True)
        batches = read.out
        starts = (
            batches
            | "Summaries" >> beam.Map(_batch_summary)
            | "SummariesPerFile" >> beam.GroupByKey()
            | "StartIndices" >> beam.FlatMap(_batch_starts)
        )
        keyed = batches | "KeyByPlace" >> beam.Map(lambda b: ((b.path, b.lines[0][0]), b.lines))
        blocks = (
            {"start": starts, "lines": keyed}
            | "JoinStarts" >> beam.CoGroupByKey()
            | "CutBlocks" >> beam.FlatMap(_lines_to_blocks, sides)
            | "GroupBlocks" >> beam.GroupByKey()
        )
        zipped = accounting.apply_accounted(blocks, "ZipByLineIndex", _ZipBlock(self._aligned))
        return _after_read(read, zipped, "Aligned")


class ReadTranslationPairs(beam.PTransform):
    """Every input of the plan -> one PCollection of raw Pairs (accounted per input file)."""

    def __init__(self, plan: InputPlan, fields: JsonFields = JsonFields(),
                 desired_bundle_size: int = 64 << 20) -> None:
        super().__init__()
        self._plan, self._fields, self._bundle = plan, fields, desired_bundle_size

    def expand(self, pbegin: beam.pvalue.PBegin) -> Accounted:
        parts = []
        for fmt, langs in ((TSV, self._plan.tsv), (JSONL, self._plan.jsonl)):
            if langs:
                read = pbegin | f"Read{fmt.upper()}" >> files.ReadLineBatches(
                    sorted(langs), desired_bundle_size=self._bundle)
                parsed = accounting.apply_accounted(read.out, f"Parse{fmt.upper()}",
                                                    _ParseLines(fmt, langs, self._fields))
                parts.append(_after_read(read, parsed, fmt.upper()))
        if self._plan.aligned:
            parts.append(pbegin | "ReadAligned" >> ReadAlignedFiles(self._plan.aligned, self._bundle))
        return _flatten_accounted(pbegin.pipeline, parts, "Inputs")


def _after_read(read: Accounted, parsed: Accounted, label: str) -> Accounted:
    """The parsed records, with the read_input stage's tallies and dead letters joined to the parser's."""
    return Accounted(parsed.out, (read.tally, parsed.tally) | f"{label}ReadTallies" >> beam.Flatten(),
                     (read.dead_letter, parsed.dead_letter) | f"{label}ReadDeadLetters" >> beam.Flatten())


def _flatten_accounted(pipeline: beam.Pipeline, parts: Sequence[Accounted], label: str) -> Accounted:
    return Accounted(*(tuple(getattr(p, f) for p in parts) | f"{label}{f.title()}" >> beam.Flatten(pipeline=pipeline)
                       for f in Accounted._fields))


# --- Beam: cleaning ----------------------------------------------------------------------------

class _Clean(AccountedDoFn):
    stage = CLEAN_STAGE

    def __init__(self, config: CleanConfig, table: scripts.LanguageScripts) -> None:
        self._config, self._table = config, table

    def process(self, pair: Pair) -> Iterator[Pair]:
        scope = pair.lang_pair
        self.took_in(scope)
        src, tgt = normalize_text(pair.src), normalize_text(pair.tgt)
        reason = filter_reason(src, tgt, pair.src_lang, pair.tgt_lang, self._config, self._table)
        if reason:
            self.filtered(scope, reason)
            return
        self.out(scope)
        yield pair._replace(src=src, tgt=tgt)


class CleanPairs(beam.PTransform):
    """Normalises both sides (NFC, no controls, single spaces) and applies the cleaning rules, with
    one counter per rule and language pair."""

    def __init__(self, config: CleanConfig, table: scripts.LanguageScripts) -> None:
        super().__init__()
        config.validate()
        self._config, self._table = config, table

    def expand(self, pairs: beam.PCollection) -> Accounted:
        return accounting.apply_accounted(pairs, "Clean", _Clean(self._config, self._table))


# --- Beam: splitting and balancing ------------------------------------------------------------

class SplitPairs(beam.PTransform):
    """Partitions pairs into the splits by a hash of the normalised pair; returns ``{split: pcoll}``."""

    def __init__(self, fractions: Mapping[str, float], split_seed: int) -> None:
        super().__init__()
        self._fractions, self._seed = dict(fractions), split_seed

    def expand(self, pairs: beam.PCollection) -> dict[str, beam.PCollection]:
        names = [s for s in SPLITS if s in self._fractions]
        fractions, seed = self._fractions, self._seed
        parts = pairs | "BySplit" >> beam.Partition(
            lambda p, _: names.index(split_of(pair_key(p), fractions, seed)), len(names))
        return dict(zip(names, parts, strict=True))


class _Balance(AccountedDoFn):
    """Keeps each pair ``copies(rate)`` times; a pair kept 0 times is filtered as ``downsampled``.
    Extra copies are counted on the ``upsampled_copies`` counter (they are outputs without input)."""

    stage = BALANCE_STAGE

    def __init__(self, seed: int) -> None:
        self._seed = seed

    def process(self, pair: Pair, rates: Mapping[str, tuple[int, float]]) -> Iterator[tuple[int, Pair]]:
        scope = pair.lang_pair
        self.took_in(scope)
        n = copies(rates[unordered_lang_pair(pair.src_lang, pair.tgt_lang)][1], self._seed, pair_key(pair))
        if n == 0:
            self.filtered(scope, "downsampled")
            return
        self.out(scope)
        if n > 1:
            beam.metrics.Metrics.counter(accounting.NAMESPACE, f"{self.stage}/upsampled_copies").inc(n - 1)
        for i in range(n):
            yield i, pair


class BalanceLanguagePairs(beam.PTransform):
    """Exponentially smoothed sampling per (unordered) language pair; see ``sampling_rates``.

    Returns ``(Accounted(out=(copy_index, pair)), targets)`` where ``targets`` is a singleton with
    ``{lang_pair: {"available", "target", "rate"}}`` for the statistics. Without ``alpha`` every
    pair is passed through once (copy index 0), unaccounted.
    """

    def __init__(self, alpha: float | None, cap: int, max_upsample: float, seed: int) -> None:
        super().__init__()
        if alpha is not None and not 0 <= alpha <= 1:
            raise ConfigError(f"--sampling_alpha: {alpha} is not in [0, 1]")
        if cap < 0 or max_upsample < 1:
            raise ConfigError("--sampling_cap must be >= 0 and --max_upsample >= 1")
        self._alpha, self._cap, self._max_up, self._seed = alpha, cap, max_upsample, seed

    def expand(self, pairs: beam.PCollection) -> tuple[Accounted, beam.PCollection]:
        alpha, cap, max_up = self._alpha, self._cap, self._max_up
        counts = (
            pairs
            | "LangPair" >> beam.Map(lambda p: (unordered_lang_pair(p.src_lang, p.tgt_lang), 1))
            | "CountPerLangPair" >> beam.CombinePerKey(sum)
            | "AllCounts" >> beam.combiners.ToDict()
        )
        rates = counts | "Rates" >> beam.Map(
            lambda c: sampling_rates(c, 1.0 if alpha is None else alpha, cap, max_up))
        targets = counts | "Targets" >> beam.Map(_targets_table, beam.pvalue.AsSingleton(rates))
        if alpha is None and not cap:
            empty = pairs.pipeline | "NoTallies" >> beam.Create([])
            return Accounted(pairs | "Once" >> beam.Map(lambda p: (0, p)), empty, empty), targets
        return accounting.apply_accounted(pairs, "Sample", _Balance(self._seed),
                                          beam.pvalue.AsSingleton(rates)), targets


def _targets_table(counts: Mapping[str, int], rates: Mapping[str, tuple[int, float]]) -> dict[str, Any]:
    return {lp: {"available": n, "target": rates[lp][0], "rate": rates[lp][1]} for lp, n in sorted(counts.items())}


# --- Beam: writing -----------------------------------------------------------------------------

def encode_pair(pair: Pair) -> bytes:
    return TRANSLATION_PAIRS.encode({"src_raw": pair.src, "tgt_raw": pair.tgt, "src_lang": pair.src_lang,
                                     "tgt_lang": pair.tgt_lang})


def pair_json(pair: Pair) -> bytes:
    return json.dumps({"src_raw": pair.src, "tgt_raw": pair.tgt, "src_lang": pair.src_lang,
                       "tgt_lang": pair.tgt_lang, "source": pair.source, "line": pair.line,
                       "offset": pair.offset}, ensure_ascii=False, sort_keys=True).encode("utf-8")


# --compression: the shard suffix and files.WriteShards' compression.
TFRECORD_COMPRESSIONS = {"gzip": (".tfrecord.gz", "gzip"), "none": (".tfrecord", "uncompressed")}


class WritePairs(beam.PTransform):
    """``(copy_index, Pair)`` -> globally shuffled GZIP TFRecord shards of ``TRANSLATION_PAIRS``
    examples in ``directory`` (plus the spec), and optionally a JSONL.gz copy in the same order.

    The sort key is a seeded hash of the normalised pair and its copy index, so the order is a
    deterministic global shuffle and upsampled copies of one pair land in different places.
    """

    def __init__(self, directory: str, seed: int, num_shards: int = 0, records_per_shard: int = 200_000,
                 jsonl: bool = False, basename: str = "pairs", compression: str = "gzip") -> None:
        """``compression``: ``gzip`` (``.tfrecord.gz``; Model Garden reads it with ``file_type:
        tfrecord_compressed``) or ``none`` (``.tfrecord``; ``file_type: tfrecord``)."""
        super().__init__()
        if compression not in TFRECORD_COMPRESSIONS:
            raise ValueError(f"compression {compression!r} is not one of {', '.join(TFRECORD_COMPRESSIONS)}")
        self._dir, self._seed, self._num_shards, self._per_shard = directory, seed, num_shards, records_per_shard
        self._jsonl, self._base, self._compression = jsonl, basename, compression

    def expand(self, pairs: beam.PCollection) -> beam.PCollection:
        _ = pairs.pipeline | "Spec" >> files.WriteSpec(TRANSLATION_PAIRS, self._dir)
        seed = self._seed
        keyed = pairs | "SortKey" >> beam.Map(lambda ip: (files.sort_key(seed, pair_key(ip[1]), ip[0]), ip[1]))
        count = (
            keyed
            | "Encode" >> beam.MapTuple(lambda k, p: (k, encode_pair(p)))
            | "WriteTFRecord" >> files.WriteShards(FileSystems.join(self._dir, self._base),
                                                   TFRECORD_COMPRESSIONS[self._compression][0], "tfrecord",
                                                   TFRECORD_COMPRESSIONS[self._compression][1], self._num_shards,
                                                   self._per_shard)
        )
        if self._jsonl:
            _ = (
                keyed
                | "Json" >> beam.MapTuple(lambda k, p: (k, pair_json(p)))
                | "WriteJsonl" >> files.WriteShards(FileSystems.join(self._dir, "jsonl", self._base), ".jsonl.gz",
                                                    "lines", "gzip", self._num_shards, self._per_shard)
            )
        return count


# --- Beam: statistics --------------------------------------------------------------------------

STATS_JSON, STATS_PNG = "stats.json", "stats.png"


def length_keys(split: str, pair: Pair) -> Iterator[tuple[str, str, str, int]]:
    """The histogram keys one written pair counts towards: the pair, and each side's length bin."""
    yield split, pair.lang_pair, "pairs", 0
    yield split, pair.lang_pair, "src", length_bin(count_tokens(pair.src))
    yield split, pair.lang_pair, "tgt", length_bin(count_tokens(pair.tgt))


class _CountLengths(beam.DoFn):
    """Histogram counts summed per bundle (a few elements per bundle instead of three per pair)."""

    def __init__(self, split: str) -> None:
        self._split = split

    def start_bundle(self) -> None:
        self._counts: collections.Counter = collections.Counter()

    def process(self, item: tuple[int, Pair]) -> None:
        self._counts.update(length_keys(self._split, item[1]))

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for key, n in sorted(self._counts.items()):
            yield WindowedValue((key, n), MIN_TIMESTAMP, [GlobalWindow()])
        self._counts.clear()


def build_statistics(tallies: Iterable[tuple[tuple[str, str, str, str], int]],
                     lengths: Iterable[tuple[tuple[str, str, str, int], int]],
                     targets: Mapping[str, Any]) -> dict[str, Any]:
    """The statistics document: per language pair and stage the counts in/out by reason, per input
    file what was read, per split and language pair what was written with token-length histograms
    (bins are lower edges of LENGTH_BINS), and the balancing targets against what was realised."""
    per_lp: dict[str, dict[str, dict[str, Any]]] = {}
    per_file: dict[str, dict[str, Any]] = {}
    for (stage, scope, outcome, reason), n in sorted(tallies):
        where = per_file.setdefault(scope, {}) if stage == READ_STAGE else \
            per_lp.setdefault(scope, {}).setdefault(stage, {})
        if outcome in (accounting.IN, accounting.OUT):
            where[outcome] = where.get(outcome, 0) + n
        else:
            bucket = where.setdefault(outcome, {})
            bucket[reason] = bucket.get(reason, 0) + n
    written: dict[str, dict[str, Any]] = {}
    for (split, lp, what, edge), n in sorted(lengths):
        entry = written.setdefault(split, {}).setdefault(lp, {"pairs": 0, "src_tokens": {}, "tgt_tokens": {}})
        if what == "pairs":
            entry["pairs"] += n
        else:
            entry[f"{what}_tokens"][str(edge)] = n
    realised: dict[str, int] = {}
    for lp, entry in written.get("train", {}).items():
        src_lang, tgt_lang = lp.split("-", 1) if "-" in lp else (lp, "")
        key = unordered_lang_pair(src_lang, tgt_lang)
        realised[key] = realised.get(key, 0) + entry["pairs"]
    balance = {lp: {**t, "realised": realised.get(lp, 0)} for lp, t in sorted(targets.items())}
    return {"language_pairs": per_lp, "inputs": per_file, "written": written, "balance_train": balance,
            "length_bins": list(LENGTH_BINS)}


def draw_statistics(stats: Mapping[str, Any], path: str) -> None:
    """A PNG with pairs read/kept/written per language pair and the token-length histograms.

    Readable at 100% zoom: 10-12 pt text at 100 dpi, the figure as tall as its language pairs need;
    the three counts of a language pair are bars side by side (never drawn over each other, so a
    bar equal to or larger than another stays visible) with their values written at their ends, and
    the legend sits below the axes, over no bar."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    lps = sorted(stats["language_pairs"])
    took = [stats["language_pairs"][lp].get(CLEAN_STAGE, {}).get(accounting.IN, 0) for lp in lps]
    kept = [stats["language_pairs"][lp].get(CLEAN_STAGE, {}).get(accounting.OUT, 0) for lp in lps]
    written = [sum(s.get(lp, {}).get("pairs", 0) for s in stats["written"].values()) for lp in lps]
    series = (("read", took, "#bdbdbd"), ("after cleaning", kept, "#6baed6"), ("written (all splits)", written,
                                                                                "#08519c"))
    bar = 0.27
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, max(5.0, 0.95 * len(lps) + 2.0)),
                                   gridspec_kw={"width_ratios": [3, 2]})
    top = max([*took, *kept, *written, 1])
    for k, (label, values, color) in enumerate(series):
        ys = [i + (k - 1) * bar for i in range(len(lps))]
        ax1.barh(ys, values, height=bar, color=color, label=label)
        for y, v in zip(ys, values, strict=True):
            ax1.text(v + top * 0.01, y, f"{v:,}", va="center", fontsize=9)
    ax1.set_xlim(0, top * 1.15)
    ax1.set_yticks(list(range(len(lps))), lps, fontsize=11)
    ax1.invert_yaxis()
    ax1.set_xlabel("pairs", fontsize=11)
    ax1.tick_params(axis="x", labelsize=10)
    ax1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=10, frameon=False)
    ax1.set_title("pairs per language pair", fontsize=12)
    for side, color in (("src", "#3182bd"), ("tgt", "#e6550d")):
        hist = [0] * len(LENGTH_BINS)
        for split in stats["written"].values():
            for entry in split.values():
                for edge, n in entry[f"{side}_tokens"].items():
                    hist[LENGTH_BINS.index(int(edge))] += n
        offset = -0.2 if side == "src" else 0.2
        ax2.bar([i + offset for i in range(len(LENGTH_BINS))], hist, width=0.4, color=color, label=side)
    ax2.set_xticks(range(len(LENGTH_BINS)), [f">={b}" for b in LENGTH_BINS], fontsize=10, rotation=45)
    ax2.tick_params(axis="y", labelsize=10)
    ax2.set_xlabel("tokens per side", fontsize=11)
    ax2.set_ylabel("written pairs", fontsize=11)
    ax2.legend(fontsize=10)
    ax2.set_title("length histogram", fontsize=12)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    with FileSystems.create(path) as f:
        f.write(buf.getvalue())


class _WriteStatistics(beam.DoFn):
    def __init__(self, directory: str, chart: bool) -> None:
        self._dir, self._chart = directory, chart

    def process(self, tallies: list[Any], lengths: list[Any], targets: Mapping[str, Any]) -> Iterator[str]:
        stats = build_statistics(tallies, lengths, targets)
        path = FileSystems.join(self._dir, STATS_JSON)
        with FileSystems.create(path) as f:
            f.write((json.dumps(stats, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        yield path
        if self._chart:
            png = FileSystems.join(self._dir, STATS_PNG)
            draw_statistics(stats, png)
            yield png


class WriteStatistics(beam.PTransform):
    """``stats.json`` (and ``stats.png``) from the job's tallies, the written pairs of every split
    and the balancing targets. Everything it combines is small: counts per key."""

    def __init__(self, directory: str, chart: bool = True) -> None:
        super().__init__()
        self._dir, self._chart = directory, chart

    def expand(self, inputs: tuple[beam.PCollection, Mapping[str, beam.PCollection], beam.PCollection]
               ) -> beam.PCollection:
        tallies, written, targets = inputs
        pipeline = tallies.pipeline
        lengths = (
            tuple(pcoll | f"Lengths{split.title()}" >> beam.ParDo(_CountLengths(split))
                  for split, pcoll in sorted(written.items()))
            | "AllLengths" >> beam.Flatten(pipeline=pipeline)
            | "SumLengths" >> beam.CombinePerKey(sum)
            | "LengthList" >> beam.combiners.ToList()
        )
        tally_list = (
            tallies
            | "SumTallies" >> beam.CombinePerKey(sum)
            | "TallyList" >> beam.combiners.ToList()
        )
        return tally_list | "Write" >> beam.ParDo(
            _WriteStatistics(self._dir, self._chart), beam.pvalue.AsSingleton(lengths),
            beam.pvalue.AsSingleton(targets))
