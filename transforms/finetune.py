"""Task files -> sentence-prediction records: parsing rows, labels, truncation, packing, writing.

What ``pipelines.finetune_data`` composes. A row of a task file (GLUE TSV, a user's TSV or JSONL, or a
text pair of our own outputs) becomes one ``specs.finetune.sentence_prediction_spec`` record the way
Model Garden's ``classifier_data_lib.convert_single_example`` makes it: WordPiece ids of text A (and
B), the pair truncated by removing the last token of the longer side until it fits (B on ties, as
``_truncate_seq_pair`` does), ``[CLS] A [SEP] B [SEP]`` zero-padded, segment ids 0/1, the label's index
in the task's fixed label list (a float for regression) and the row's number as ``example_id``.
Bad rows (a missing column, an unknown label, an empty text) are dead letters naming file, byte
offset (resolved to a line) and reason.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from specs import FeatureSpec
from transforms import files
from transforms.accounting import Accounted, AccountedDoFn, DeadLetter, apply_accounted
from transforms.bert_tokenization import BertTokenizer
from transforms.errors import ConfigError
from transforms.finetune_tasks import RowFormat

TSV, JSONL = "tsv", "jsonl"
SHARD_PREFIX = "finetune"
SHARD_SUFFIX = ".tfrecord"
TRUNCATED = "truncated"
PARSE_STAGE, FEATURIZE_STAGE = "parse_rows", "featurize"


@dataclasses.dataclass(frozen=True)
class JsonFormat:
    """Dotted JSON paths of a JSONL row's fields (``label`` None: unlabelled)."""

    text_a: str
    text_b: str | None = None
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class InputFile:
    """One input file of the job: its split, format, output group and whether line 1 is a header."""

    path: str
    split: str
    kind: str
    fmt: RowFormat | JsonFormat | None = None
    group: str = ""
    has_header: bool = False

    def dest(self, language: str = "") -> str:
        """The output a row goes to: the split, or ``split/group`` for per-language outputs."""
        group = self.group or language
        return f"{self.split}/{group}" if group else self.split


@dataclasses.dataclass(frozen=True)
class Labels:
    """How labels become ``label_ids``: a fixed list (its index is the id), a list discovered from the
    data (sorted, at most ``max_labels``), or regression (a float)."""

    fixed: tuple[str, ...] | None
    regression: bool
    aliases: tuple[tuple[str, str], ...] = ()
    max_labels: int = 1000

    @property
    def discovered(self) -> bool:
        return not self.regression and self.fixed is None


class BadRowError(ValueError):
    """A row that cannot become a record; ``reason`` is the dead-letter reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


class Row(NamedTuple):
    """A parsed row on its way to featurisation. ``label`` is the label text (classification), a
    float (regression) or None (an unlabelled test row)."""

    dest: str
    example_id: int
    text_a: str
    text_b: str | None
    label: str | float | None
    source: str
    offset: int


# --- reading rows --------------------------------------------------------------------------------

def decode_utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRowError("invalid_utf8", str(e)) from None


def split_tsv(raw: bytes) -> list[str]:
    """GLUE's TSV: tab-separated, no quoting (a ``"`` is text), as the reference's
    ``csv.reader(delimiter="\\t", quotechar=None)`` reads it."""
    return decode_utf8(raw).rstrip("\r").split("\t")


def label_value(raw: Any, labels: Labels) -> str | float:
    """A label cell as the record's label: a known label text (aliases applied) or a finite float."""
    if labels.regression:
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise BadRowError("bad_label", f"label {raw!r} is not a number (regression task)") from None
        if not math.isfinite(value):
            raise BadRowError("bad_label", f"label {raw!r} is not finite")
        return value
    text = (raw if isinstance(raw, str) else json.dumps(raw)).strip()
    text = dict(labels.aliases).get(text, text)
    if labels.fixed is not None and text not in labels.fixed:
        raise BadRowError("unknown_label", f"label {text!r} is not one of {', '.join(labels.fixed)}")
    if not text:
        raise BadRowError("unknown_label", "the label is empty")
    return text


def is_header(first_line: bytes, fmt: RowFormat, labels: Labels) -> bool:
    """Whether a file's first line is a header: its label cell is present but not a valid label
    (labelled files), or its index cell is not an integer (unlabelled files with an index)."""
    try:
        cols = split_tsv(first_line)
    except BadRowError:
        return False
    column = fmt.label if fmt.label is not None else fmt.id_column
    if column is None or len(cols) < fmt.min_columns:
        return False
    cell = cols[column]
    if fmt.label is None:
        return not cell.strip().isdigit()
    if labels.discovered:
        return False
    try:
        label_value(cell, labels)
    except BadRowError:
        return True
    return False


def checked_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BadRowError("missing_column", f"{what} is {'missing' if value is None else 'not a string'}")
    if not value.strip():
        raise BadRowError("empty_text", f"{what} is empty")
    return value


def parse_tsv_row(raw: bytes, fmt: RowFormat, labels: Labels) -> tuple[str, str | None, Any, str]:
    """A TSV row -> (text_a, text_b, label, language)."""
    cols = split_tsv(raw)
    if len(cols) < fmt.min_columns:
        raise BadRowError("missing_column", f"{len(cols)} columns, the format needs at least {fmt.min_columns}")
    a = checked_text(cols[fmt.text_a], f"text_a (column {fmt.text_a})")
    b = checked_text(cols[fmt.text_b], f"text_b (column {fmt.text_b})") if fmt.text_b is not None else None
    label = label_value(cols[fmt.label], labels) if fmt.label is not None else None
    language = cols[fmt.language].strip() if fmt.language is not None else ""
    return a, b, label, language


def lookup(obj: Any, dotted: str) -> Any:
    """``obj["a"]["b"]`` for ``"a.b"``; None when a step is missing."""
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def load_json(raw: bytes) -> Any:
    try:
        return json.loads(decode_utf8(raw))
    except json.JSONDecodeError as e:
        raise BadRowError("bad_json", str(e)) from None


def parse_json_row(raw: bytes, fmt: JsonFormat, labels: Labels) -> tuple[str, str | None, Any, str]:
    """A JSONL object -> (text_a, text_b, label, "")."""
    obj = load_json(raw)
    if not isinstance(obj, dict):
        raise BadRowError("bad_json", f"a JSON {type(obj).__name__}, not an object")
    a = checked_text(lookup(obj, fmt.text_a), f"field {fmt.text_a!r}")
    b = checked_text(lookup(obj, fmt.text_b), f"field {fmt.text_b!r}") if fmt.text_b else None
    label = None
    if fmt.label:
        value = lookup(obj, fmt.label)
        if value is None:
            raise BadRowError("missing_column", f"field {fmt.label!r} is missing")
        label = label_value(value, labels)
    return a, b, label, ""


def first_line(path: str, limit: int = 1 << 20) -> bytes:
    """The first line of a (possibly compressed) file, read at start-up for header decisions."""
    data = b""
    try:
        with FileSystems.open(path) as f:
            while b"\n" not in data and len(data) < limit:
                chunk = f.read(1 << 16)
                if not chunk:
                    break
                data += chunk
    except Exception as e:  # any failure to open is a configuration error here
        raise ConfigError(f"cannot read {path!r}: {type(e).__name__}: {e}".splitlines()[0]) from None
    return data.split(b"\n", 1)[0]


def _batch_summary(batch: files.LineBatch) -> tuple[str, tuple[int, int]]:
    return batch.path, (batch.lines[0][0], len(batch.lines))


def _batch_starts(item: tuple[str, Iterable[tuple[int, int]]]) -> Iterator[Any]:
    """Per file: the 0-based line index of each batch's first line, and the file's line count."""
    path, summaries = item
    index = 0
    for offset, n in sorted(summaries):
        yield beam.pvalue.TaggedOutput("starts", ((path, offset), index))
        index += n
    yield path, index


class _ParseRows(AccountedDoFn):
    """A numbered batch of lines -> ``(dest, [Row])`` lists; headers and blank lines are filtered,
    bad rows dead-lettered. ``example_id`` is the row's number among the split's data rows (header
    excluded, files in plan order), as the reference's ``ex_index``; a dead-lettered row keeps its
    number, so ids still point at rows of the input."""

    stage = PARSE_STAGE

    def __init__(self, inputs: Sequence[InputFile], labels: Labels, dests: Sequence[str]) -> None:
        self._files = {f.path: f for f in inputs}
        self._order = [f.path for f in inputs]
        self._labels, self._dests = labels, frozenset(dests)
        self._cached_bases: dict[str, int] | None = None

    def _bases(self, line_counts: Mapping[str, int]) -> dict[str, int]:
        """Per file: the data rows in the files of its split that come before it (the side input is
        the same for every batch, so this is computed once per DoFn instance)."""
        if self._cached_bases is None:
            before: dict[str, int] = {}
            self._cached_bases = {}
            for path in self._order:
                f = self._files[path]
                self._cached_bases[path] = before.get(f.split, 0)
                before[f.split] = before.get(f.split, 0) + max(0, line_counts.get(path, 0) - f.has_header)
        return self._cached_bases

    def process(self, item: tuple[Any, dict[str, list[Any]]], line_counts: Mapping[str, int]) -> Iterator[Any]:
        (path, _), joined = item
        (batch,), (start,) = joined["batch"], joined["start"]
        f = self._files[path]
        base = self._bases(line_counts)[path]
        out: dict[str, list[Row]] = {}
        for i, (offset, raw) in enumerate(batch.lines):
            if raw is None:  # not UTF-8: the reader's dead letter, but it keeps its row number
                continue
            self.took_in(path)
            index = start + i
            if f.has_header and index == 0:
                self.filtered(path, "header")
                continue
            if not raw.strip():
                self.filtered(path, "blank_line")
                continue
            try:
                if f.kind == TSV:
                    a, b, label, language = parse_tsv_row(raw, f.fmt, self._labels)
                else:
                    a, b, label, language = parse_json_row(raw, f.fmt, self._labels)
                dest = f.dest(language)
                if dest not in self._dests:
                    raise BadRowError("unknown_language", f"language {language!r} has no output")
            except BadRowError as e:
                yield self.dead_letter(path, DeadLetter.make(self.stage, e.reason, raw, source=path, offset=offset,
                                                             detail=e.detail))
                continue
            self.out(path)
            out.setdefault(dest, []).append(Row(dest, base + index - f.has_header, a, b, label, path, offset))
        yield from out.items()


class ReadTaskRows(beam.PTransform):
    """Task files (TSV/JSONL) -> the accounted read and parse stages; the parse stage's ``out`` holds
    ``(dest, [Row])`` lists, rows numbered within their split.

    Lines are read splittably; each batch's first line index comes from a join with the per-file
    batch summaries (a batch's offset and size, not its lines), so numbering holds no file in memory.
    """

    def __init__(self, inputs: Sequence[InputFile], labels: Labels, dests: Sequence[str]) -> None:
        super().__init__()
        self._inputs, self._labels, self._dests = list(inputs), labels, list(dests)

    def expand(self, pbegin: beam.pvalue.PBegin) -> tuple[Accounted, Accounted]:
        # Lines that are not UTF-8 stay in their batch as None (dead-lettered by the reader), so row
        # numbers still count every line of the file.
        read = pbegin | "ReadLines" >> files.ReadLineBatches([f.path for f in self._inputs], keep_places=True)
        batches = read.out
        numbered = (
            batches
            | "BatchSummaries" >> beam.Map(_batch_summary)
            | "GroupByFile" >> beam.GroupByKey()
            | "BatchStarts" >> beam.FlatMap(_batch_starts).with_outputs("starts", main="line_counts")
        )
        keyed = batches | "KeyByPlace" >> beam.Map(lambda b: ((b.path, b.lines[0][0]), b))
        joined = {"batch": keyed, "start": numbered.starts} | "JoinStarts" >> beam.CoGroupByKey()
        parsed = apply_accounted(joined, "Parse", _ParseRows(self._inputs, self._labels, self._dests),
                                 beam.pvalue.AsDict(numbered.line_counts))
        return read, parsed


# --- featurisation -------------------------------------------------------------------------------

def truncated_lengths(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """The lengths ``_truncate_seq_pair`` leaves: it removes the last token of the longer side (of B
    when they are equal) until ``len_a + len_b <= budget``; here in closed form."""
    if len_a + len_b <= budget:
        return len_a, len_b
    excess = len_a + len_b - budget
    if len_a > len_b and excess <= len_a - len_b:
        return len_a - excess, len_b
    if len_b >= len_a and excess <= len_b - len_a:
        return len_a, len_b - excess
    # Both are cut to equal length, then B first: A keeps the odd token.
    return (budget + 1) // 2, budget // 2


def pack(ids_a: np.ndarray, ids_b: np.ndarray | None, max_seq_length: int, cls_id: int, sep_id: int
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """``[CLS] A [SEP] (B [SEP])`` zero-padded: (input_ids, input_mask, segment_ids, truncated)."""
    L = max_seq_length
    ids = np.zeros(L, dtype=np.int64)
    segments = np.zeros(L, dtype=np.int64)
    if ids_b is None:
        la, lb = min(len(ids_a), L - 2), 0
    else:
        la, lb = truncated_lengths(len(ids_a), len(ids_b), L - 3)
    truncated = la < len(ids_a) or (ids_b is not None and lb < len(ids_b))
    ids[0] = cls_id
    ids[1:1 + la] = ids_a[:la]
    ids[1 + la] = sep_id
    n = 2 + la
    if ids_b is not None:
        ids[n:n + lb] = ids_b[:lb]
        ids[n + lb] = sep_id
        segments[n:n + lb + 1] = 1
        n += lb + 1
    mask = np.zeros(L, dtype=np.int64)
    mask[:n] = 1
    return ids, mask, segments, truncated


class _Featurize(AccountedDoFn):
    """``(dest, [Row])`` -> ``(dest, [(sort_key, tf.Example bytes)])``; a text with no WordPiece
    tokens (only control or format characters) or a label beyond ``max_labels`` is dead-lettered.
    The number of truncated records per output goes to the ``truncated`` side output."""

    stage = FEATURIZE_STAGE

    def __init__(self, tokenizer: BertTokenizer, spec: FeatureSpec, labels: Labels, max_seq_length: int) -> None:
        self._tokenizer, self._spec, self._labels, self._L = tokenizer, spec, labels, max_seq_length
        self._cls, self._sep = tokenizer.vocabulary.cls_id, tokenizer.vocabulary.sep_id

    def process(self, item: tuple[str, list[Row]], discovered: Sequence[str]) -> Iterator[Any]:
        dest, rows = item
        label_list = list(self._labels.fixed if self._labels.fixed is not None else discovered)
        label_ids = {label: i for i, label in enumerate(label_list)}
        texts = [r.text_a for r in rows] + [r.text_b for r in rows if r.text_b is not None]
        tokens = self._tokenizer.tokenize_batch(texts)
        b_tokens = iter(tokens[len(rows):])
        columns: dict[str, list[Any]] = {name: [] for name in self._spec.names}
        keys, truncated = [], 0
        for row, ids_a in zip(rows, tokens, strict=False):
            self.took_in(dest)
            ids_b = next(b_tokens) if row.text_b is not None else None
            reason, detail = "", ""
            if len(ids_a) == 0 or (ids_b is not None and len(ids_b) == 0):
                reason, detail = "no_tokens", f"text {'A' if len(ids_a) == 0 else 'B'} has no WordPiece tokens"
            elif self._labels.regression:
                label: int | float = 0.0 if row.label is None else float(row.label)
            elif row.label is None:
                label = 0  # unlabelled rows get the first label, as the reference's test examples do
            elif row.label in label_ids:
                label = label_ids[row.label]
            else:
                reason, detail = "label_beyond_max_labels", f"{row.label!r} is not among the first " \
                                                            f"{self._labels.max_labels} labels"
            if reason:
                yield self.dead_letter(dest, DeadLetter.make(
                    self.stage, reason, "\t".join(t for t in (row.text_a, row.text_b or "") if t),
                    source=row.source, offset=row.offset, detail=detail))
                continue
            input_ids, mask, segments, cut = pack(ids_a, ids_b, self._L, self._cls, self._sep)
            truncated += cut
            for name, value in (("input_ids", input_ids), ("input_mask", mask), ("segment_ids", segments),
                                ("label_ids", label), ("is_real_example", 1), ("example_id", row.example_id)):
                columns[name].append(value)
            keys.append(row.example_id.to_bytes(8, "big"))
            self.out(dest)
        if keys:
            payloads = self._spec.encode_batch({k: np.asarray(v) for k, v in columns.items()})
            yield dest, list(zip(keys, payloads, strict=True))
        if truncated:
            yield beam.pvalue.TaggedOutput(TRUNCATED, (dest, truncated))


def _labels_of(item: tuple[str, list[Row]]) -> Iterator[str]:
    for row in item[1]:
        if isinstance(row.label, str):
            yield row.label


class FeaturizeRows(beam.PTransform):
    """``(dest, [Row])`` -> accounted ``(dest, [(key, record)])``, plus the label list (a singleton:
    the fixed list, or the data's labels sorted and capped) and truncation counts per output."""

    def __init__(self, tokenizer: BertTokenizer, spec: FeatureSpec, labels: Labels, max_seq_length: int) -> None:
        super().__init__()
        self._args = (tokenizer, spec, labels, max_seq_length)

    def expand(self, rows: beam.PCollection) -> tuple[Accounted, beam.PCollection, beam.PCollection]:
        labels: Labels = self._args[2]
        if labels.discovered:
            cap = labels.max_labels
            # Top.Smallest keeps at most ``cap`` labels in memory, however many distinct values a
            # mistaken --label_field has.
            label_list = (rows | "Labels" >> beam.FlatMap(_labels_of) | "Distinct" >> beam.Distinct()
                          | "FirstLabels" >> beam.combiners.Top.Smallest(cap))
        else:
            fixed = list(labels.fixed or [])
            label_list = rows.pipeline | "LabelList" >> beam.Create([fixed])
        res = rows | "Featurize" >> beam.ParDo(_Featurize(*self._args), beam.pvalue.AsSingleton(label_list)
                                               ).with_outputs("tally", "dead_letter", TRUNCATED, main="out")
        truncated = res[TRUNCATED] | "SumTruncated" >> beam.CombinePerKey(sum)
        return Accounted(res.out, res.tally, res.dead_letter), label_list, truncated


class WriteOutputs(beam.PTransform):
    """``(dest, [(key, record)])`` -> ``OUT/<dest>/finetune-SSSSS-of-NNNNN.tfrecord`` per output (records
    ordered by ``example_id`` within a shard); returns ``(dest, records written)``."""

    def __init__(self, output_dir: str, dests: Sequence[str], num_shards: int, records_per_shard: int) -> None:
        super().__init__()
        self._dir, self._dests = output_dir, list(dests)
        self._num_shards, self._per_shard = num_shards, records_per_shard

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        index = {d: i for i, d in enumerate(self._dests)}
        parts = records | "ByOutput" >> beam.Partition(lambda kv, n: index[kv[0]], len(self._dests))
        counts = []
        for dest, part in zip(self._dests, parts, strict=True):
            name = dest.replace("/", "_").title().replace("_", "")
            prefix = FileSystems.join(self._dir, *dest.split("/"), SHARD_PREFIX)
            count = (part | f"Records{name}" >> beam.Map(lambda kv: kv[1])
                     | f"Write{name}" >> files.WriteShards(prefix, SHARD_SUFFIX, "tfrecord", "uncompressed",
                                                           self._num_shards, self._per_shard, batched=True))
            counts.append(count | f"Name{name}" >> beam.Map(lambda n, d=dest: (d, n)))
        return tuple(counts) | "AllCounts" >> beam.Flatten()
