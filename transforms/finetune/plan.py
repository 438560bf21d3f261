"""What the fine-tuning job's flags ask for, decided and checked at start-up: the input files (a GLUE/XTREME
task's, the user's own TSV/JSONL, or our text pairs), their formats and headers, the labels, the
outputs. ``o`` is the job's options (``pipelines.finetune_data.FinetuneDataOptions``)."""

from __future__ import annotations

from typing import Any

from apache_beam.io.filesystems import FileSystems

from specs.errors import ConfigError
from transforms.core.flags import flag_list
from transforms.core.formats import JSONL, TFRECORD, TSV, format_of
from transforms.core.lines import lines_from
from transforms.core.storage import match_files
from transforms.finetune.pairs import NEGATIVE, PAIRS_JSONL, PAIRS_TFRECORD, POSITIVE
from transforms.finetune.records import InputFile, JsonFormat, Labels, is_header, split_tsv
from transforms.finetune.tasks import SPLITS, TEST, TRAIN, RowFormat, glue_task

INPUT_FORMATS = ("auto", "tsv", "jsonl", "tfrecord")
# Reference output flag per split; "dev" is the reference's "eval".
REFERENCE_OUTPUTS = (("train", "train_data_output_path"), ("dev", "eval_data_output_path"),
                     ("test", "test_data_output_path"))


def first_line(path: str) -> bytes:
    """The first line of a (possibly compressed) file as every reader cuts it (``lines_from``: line end
    and byte-order mark dropped), read at start-up for header decisions."""
    try:
        with FileSystems.open(path) as f:
            return next(lines_from(f), (0, b""))[1]
    except Exception as e:  # any failure to open or read is a configuration error here
        raise ConfigError(f"cannot read {path!r}: {type(e).__name__}: {e}".splitlines()[0]) from None


def reference_outputs(o: Any) -> dict[str, str]:
    """``{split: path}`` for the reference's ``--*_data_output_path`` flags that are set."""
    return {split: getattr(o, flag) for split, flag in REFERENCE_OUTPUTS if getattr(o, flag)}


def _kind(path: str, requested: str, from_pairs: bool) -> str:
    fmt = requested
    if fmt == "auto":
        fmt = format_of(path, (JSONL, TFRECORD)) or TSV
    if from_pairs:
        if fmt == TSV:
            raise ConfigError(f"--from_pairs reads JSONL or TFRecord pairs, not {path!r}")
        return PAIRS_JSONL if fmt == JSONL else PAIRS_TFRECORD
    if fmt == TFRECORD:
        raise ConfigError(f"{path!r}: TFRecord inputs are read with --from_pairs only")
    return fmt


def _header(path: str, fmt: RowFormat, labels: Labels, mode: str) -> bool:
    if mode != "auto":
        return mode == "true"
    return is_header(first_line(path), fmt, labels)


def _generic_format(path: str, kind: str, o: Any, labelled: bool) -> tuple[Any, bool]:
    """The row format of a generic input and whether its first line is a header: JSONL by field paths;
    TSV by column indices, or by header names (then the first line must be the header)."""
    label = o.label_field if labelled else None
    if kind == JSONL:
        return JsonFormat(o.text_a_field, o.text_b_field, label), False
    fields = [o.text_a_field, o.text_b_field, label]
    if all(f is None or f.lstrip("-").isdigit() for f in fields):
        ints = [None if f is None else int(f) for f in fields]
        fmt = RowFormat(ints[0], ints[1], ints[2])
        return fmt, o.header_row == "true"
    if o.header_row == "false":
        raise ConfigError(f"--header_row=false, but {path!r} needs a header to find columns by name")
    header = split_tsv(first_line(path))
    columns = []
    for f in fields:
        if f is None:
            columns.append(None)
        elif f.lstrip("-").isdigit():
            columns.append(int(f))
        elif f in header:
            columns.append(header.index(f))
        else:
            raise ConfigError(f"{path!r}: no column named {f!r} in its header {header}")
    return RowFormat(columns[0], columns[1], columns[2]), True


class Plan:
    """What the flags ask for: the input files, labels, outputs and meta data fields, decided and
    checked at start-up."""

    def __init__(self, o: Any) -> None:
        self.reference = reference_outputs(o)
        wanted = set(self.reference) or set(SPLITS)
        explicit = {split: flag_list(getattr(o, f"{split}_files")) for split in SPLITS}
        self.inputs: list[InputFile] = []
        self.languages: tuple[str, ...] = ()
        if o.max_seq_length < 3:
            raise ConfigError(f"--max_seq_length must be at least 3 ([CLS] A [SEP]), got {o.max_seq_length}")
        if o.from_pairs:
            self._pairs(o, explicit, wanted)
        elif o.task:
            self._task(o, explicit, wanted)
        else:
            self._generic(o, explicit, wanted)
        if not self.inputs:
            raise ConfigError("no input: give --task with --input_data_dir, or --train_files/--dev_files/--test_files")
        missing = sorted(wanted - {f.split for f in self.inputs}) if self.reference else []
        if missing:
            raise ConfigError(f"--{dict(REFERENCE_OUTPUTS)[missing[0]]} is set but there is no {missing[0]} input")
        self.dests = sorted({d for f in self.inputs for d in self._dests_of(f)}, key=_dest_order)
        test_dests = [d for d in self.dests if d.startswith(f"{TEST}/")]
        if test_dests and TEST in self.reference and "{}" not in self.reference[TEST]:
            raise ConfigError("--test_data_output_path must be a template with {} (the task's tests are per language)")

    def _dests_of(self, f: InputFile) -> list[str]:
        if f.kind == TSV and f.fmt.language is not None:
            return [f.dest(lang) for lang in self.languages]
        return [f.dest()]

    def _task(self, o: Any, explicit: dict[str, list[str]], wanted: set[str]) -> None:
        task = glue_task(o.task, o.mnli_type, o.xnli_language, o.pawsx_language)
        given = [f"--{name}" for name in ("text_a_field", "text_b_field", "label_field", "labels") if getattr(o, name)]
        if given:
            raise ConfigError(f"{given[0]} is for your own data; --task={task.name} has its own columns and labels")
        self.name, self.processor_type, self.languages = task.name, task.processor_type, task.languages
        regression = task.regression
        if o.fine_tuning_task_type and (o.fine_tuning_task_type == "regression") != regression:
            raise ConfigError(f"--fine_tuning_task_type={o.fine_tuning_task_type} contradicts --task={task.name} "
                              f"({'regression' if regression else 'classification'})")
        aliases = tuple({a for task_file in task.files for a in task_file.fmt.label_aliases})
        self.labels = Labels(task.labels, regression, aliases)
        if not o.input_data_dir and not any(explicit.values()):
            raise ConfigError(f"--task={task.name} needs --input_data_dir (or --train_files/--dev_files/--test_files)")
        for task_file in task.files:
            if task_file.split not in wanted:
                continue
            group = task_file.group
            if explicit[task_file.split]:  # the user's files replace the split's files; one output for them
                if any(f.split == task_file.split for f in self.inputs):
                    continue
                paths, group = match_files(explicit[task_file.split], f"--{task_file.split}_files"), ""
            else:
                if not o.input_data_dir:
                    continue
                path = FileSystems.join(o.input_data_dir, task_file.path)
                if not FileSystems.exists(path):
                    if self.reference.get(task_file.split):
                        raise ConfigError(f"--input_data_dir: {path!r} does not exist "
                                          f"({task_file.split} of {task.name})")
                    continue
                paths = [path]
            for path in paths:
                self.inputs.append(InputFile(path, task_file.split, TSV, task_file.fmt, group,
                                                _header(path, task_file.fmt, self.labels, o.header_row)))
        if o.input_data_dir and not self.inputs:
            if "://" not in o.input_data_dir and not FileSystems.exists(o.input_data_dir):
                raise ConfigError(f"--input_data_dir {o.input_data_dir} does not exist")
            names = ", ".join(f.path for f in task.files if f.split in wanted)
            raise ConfigError(f"--input_data_dir {o.input_data_dir} holds none of {task.name}'s files ({names})")

    def _generic(self, o: Any, explicit: dict[str, list[str]], wanted: set[str]) -> None:
        if not o.text_a_field:
            raise ConfigError("--text_a_field is required without --task or --from_pairs")
        if not o.label_field and any(explicit[s] for s in (TRAIN, "dev")):
            raise ConfigError("--label_field is required for train and dev files")
        regression = o.fine_tuning_task_type == "regression"
        fixed = tuple(flag_list(o.labels)) or None
        if regression and fixed:
            raise ConfigError("--labels contradicts --fine_tuning_task_type=regression")
        if fixed is not None and len(set(fixed)) < 2:
            raise ConfigError(f"--labels={','.join(fixed)} names {len(set(fixed))} distinct label; classification "
                              "needs at least two (--fine_tuning_task_type=regression for numbers)")
        if fixed is not None and len(set(fixed)) != len(fixed):
            raise ConfigError(f"--labels={','.join(fixed)} names a label twice; each label is one class id")
        if o.max_labels < 1:
            raise ConfigError(f"--max_labels must be >= 1, got {o.max_labels}")
        self.name = self.processor_type = "GENERIC"
        self.labels = Labels(fixed, regression, max_labels=o.max_labels)
        for split in SPLITS:
            if split not in wanted or not explicit[split]:
                continue
            for path in match_files(explicit[split], f"--{split}_files"):
                kind = _kind(path, o.input_format, False)
                fmt, header = _generic_format(path, kind, o, labelled=split != TEST)
                if kind == TSV and o.header_row == "auto" and not header:
                    header = is_header(first_line(path), fmt, self.labels)
                self.inputs.append(InputFile(path, split, kind, fmt, "", header))

    def _pairs(self, o: Any, explicit: dict[str, list[str]], wanted: set[str]) -> None:
        if o.task or o.text_a_field:
            raise ConfigError("--from_pairs makes its own task: drop --task and --text_*_field")
        if o.fine_tuning_task_type == "regression":
            raise ConfigError("--from_pairs makes a classification task, not regression")
        if o.pairs_per_bucket < 2:
            raise ConfigError(f"--pairs_per_bucket must be >= 2, got {o.pairs_per_bucket}")
        self.name = self.processor_type = "PAIRS"
        self.labels = Labels((NEGATIVE, POSITIVE), False)
        for split in SPLITS:
            if split in wanted and explicit[split]:
                for path in match_files(explicit[split], f"--{split}_files"):
                    self.inputs.append(InputFile(path, split, _kind(path, o.input_format, True)))


def _dest_order(dest: str) -> tuple[int, str]:
    return SPLITS.index(dest.split("/")[0]), dest

