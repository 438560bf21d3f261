"""Fine-tuning task rows: input files, labels, and how a TSV or JSONL line becomes a row (no Beam).

A row of a task file (GLUE TSV, a user's TSV or JSONL, or a text pair of our own outputs) becomes one
``Row``: its texts, its label (the label text, a float for regression, or None for an unlabelled
test row), its output and where it came from. Bad rows (a missing column, an unknown label, an empty
text) raise ``BadRecordError`` with the dead-letter reason.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, NamedTuple

from transforms.core.records import BadRecordError, decode_utf8, dotted_lookup
from transforms.finetune.tasks import RowFormat

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


# --- parsing rows --------------------------------------------------------------------------------

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
            raise BadRecordError("bad_label", f"label {raw!r} is not a number (regression task)") from None
        if not math.isfinite(value):
            raise BadRecordError("bad_label", f"label {raw!r} is not finite")
        return value
    text = (raw if isinstance(raw, str) else json.dumps(raw)).strip()
    text = dict(labels.aliases).get(text, text)
    if labels.fixed is not None and text not in labels.fixed:
        raise BadRecordError("unknown_label", f"label {text!r} is not one of {', '.join(labels.fixed)}")
    if not text:
        raise BadRecordError("unknown_label", "the label is empty")
    return text


def is_header(first_line: bytes, fmt: RowFormat, labels: Labels) -> bool:
    """Whether a file's first line is a header: its label cell is present but not a valid label
    (labelled files), or its index cell is not an integer (unlabelled files with an index)."""
    try:
        cols = split_tsv(first_line)
    except BadRecordError:
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
    except BadRecordError:
        return True
    return False


def checked_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BadRecordError("missing_column", f"{what} is {'missing' if value is None else 'not a string'}")
    if not value.strip():
        raise BadRecordError("empty_text", f"{what} is empty")
    return value


def parse_tsv_row(raw: bytes, fmt: RowFormat, labels: Labels) -> tuple[str, str | None, Any, str]:
    """A TSV row -> (text_a, text_b, label, language)."""
    cols = split_tsv(raw)
    if len(cols) < fmt.min_columns:
        raise BadRecordError("missing_column", f"{len(cols)} columns, the format needs at least {fmt.min_columns}")
    a = checked_text(cols[fmt.text_a], f"text_a (column {fmt.text_a})")
    b = checked_text(cols[fmt.text_b], f"text_b (column {fmt.text_b})") if fmt.text_b is not None else None
    label = label_value(cols[fmt.label], labels) if fmt.label is not None else None
    language = cols[fmt.language].strip() if fmt.language is not None else ""
    return a, b, label, language


def load_json(raw: bytes) -> Any:
    try:
        return json.loads(decode_utf8(raw))
    except json.JSONDecodeError as e:
        raise BadRecordError("bad_json", str(e)) from None


def parse_json_row(raw: bytes, fmt: JsonFormat, labels: Labels) -> tuple[str, str | None, Any, str]:
    """A JSONL object -> (text_a, text_b, label, "")."""
    obj = load_json(raw)
    if not isinstance(obj, dict):
        raise BadRecordError("bad_json", f"a JSON {type(obj).__name__}, not an object")
    a = checked_text(dotted_lookup(obj, fmt.text_a), f"field {fmt.text_a!r}")
    b = checked_text(dotted_lookup(obj, fmt.text_b), f"field {fmt.text_b!r}") if fmt.text_b else None
    label = None
    if fmt.label:
        value = dotted_lookup(obj, fmt.label)
        if value is None:
            raise BadRecordError("missing_column", f"field {fmt.label!r} is missing")
        label = label_value(value, labels)
    return a, b, label, ""
