"""Fine-tuning data: task files -> sentence-prediction TFRecords, ``python -m pipelines.finetune_data``.

Writes what Model Garden's ``create_finetuning_data.py`` writes for classification and regression
(``input_ids``, ``input_mask``, ``segment_ids``, ``label_ids``, ``is_real_example``, ``example_id``, and
the ``meta_data`` JSON), with its flags, on any Beam runner::

    python -m pipelines.finetune_data --task=MRPC --input_data_dir=glue/MRPC \\
        --vocab_file=vocab.txt --do_lower_case=true --max_seq_length=128 --output_dir=out/mrpc

    # the reference's command line (no --output_dir: the run's summary goes next to the meta data)
    python -m pipelines.finetune_data --fine_tuning_task_type=classification \\
        --classification_task_name=MRPC --input_data_dir=glue/MRPC --vocab_file=vocab.txt \\
        --train_data_output_path=out/MRPC_train.tf_record --eval_data_output_path=out/MRPC_eval.tf_record \\
        --meta_data_file_path=out/MRPC_meta_data --max_seq_length=128

    # a user's own data: named TSV columns or JSONL fields
    python -m pipelines.finetune_data --train_files=my/train.jsonl --dev_files=my/dev.jsonl \\
        --text_a_field=question --text_b_field=answer --label_field=label --vocab_file=... --output_dir=...

    # a QQP-like task from our own pairs: positives plus seeded in-bucket negatives
    python -m pipelines.finetune_data --from_pairs --train_files='se/duplicate/jsonl/*.jsonl.gz' ...

Layout with ``--output_dir``: ``OUT/{train,dev,test}/finetune-SSSSS-of-NNNNN.tfrecord`` (per-language
tests: ``OUT/test/LANG/``), ``schema.pbtxt`` + ``feature_spec.json`` beside each, ``OUT/meta_data.json``,
``OUT/summary.json`` and ``OUT/dead_letter/``. See docs/finetuning.md.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

import specs
from specs.finetune import sentence_prediction_spec
from specs.vocabulary import Vocabulary
from transforms import finetune as ft
from transforms import finetune_pairs as fp
from transforms import runtime
from transforms.bert_tokenization import BertTokenizer
from transforms.errors import ConfigError
from transforms.files import WriteSpec, match_files, read_bytes, write_spec_files
from transforms.finetune_tasks import SPLITS, TEST, TRAIN, RowFormat, glue_task

META_DATA_FILE = "meta_data.json"
REFERENCE_RUN_DIR = "finetune_data_run"
FORMATS = ("auto", "tsv", "jsonl", "tfrecord")
# Reference output flag per split; "dev" is the reference's "eval".
REFERENCE_OUTPUTS = (("train", "train_data_output_path"), ("dev", "eval_data_output_path"),
                     ("test", "test_data_output_path"))


class FinetuneDataOptions(runtime.CommonOptions):
    """``create_finetuning_data.py``'s classification/regression flags, plus generic and pair modes."""

    def run_folder(self) -> tuple[str, list[str] | None]:
        return run_folder(self)

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        def boolean(name: str, default: bool, help: str) -> None:
            parser.add_argument(f"--{name}", type=runtime.flag_bool, nargs="?", const=True, default=default, help=help)

        parser.add_argument("--task", "--classification_task_name", dest="task", default=None,
                            help="GLUE/XTREME task by name: CoLA, SST-2, MRPC, QQP, STS-B, MNLI, QNLI, RTE, WNLI, "
                                 "XNLI, PAWS-X (files, columns and labels as the reference's processors).")
        parser.add_argument("--fine_tuning_task_type", choices=("classification", "regression"), default=None,
                            help="Default: the task's own (STS-B regression, others classification); "
                                 "classification for generic data.")
        parser.add_argument("--input_data_dir", default=None, help="The task's folder (GLUE's train.tsv, dev.tsv, "
                                                                   "test.tsv; XNLI/PAWS-X as the reference lays out).")
        for split in SPLITS:
            parser.add_argument(f"--{split}_files", action="append", default=[],
                                help=f"{split} input files or globs (comma-separated or repeated); with --task they "
                                     "replace the task's file for that split.")
        parser.add_argument("--header_row", choices=("auto", "true", "false"), default="auto",
                            help="auto: a TSV's first line is a header when its label cell is not a valid label "
                                 "(or, unlabelled, its index cell is not an integer).")
        parser.add_argument("--input_format", choices=FORMATS, default="auto",
                            help="Generic and --from_pairs inputs; auto: *.jsonl/*.json(.gz) JSONL, *.tfrecord* "
                                 "TFRecord (--from_pairs), else TSV.")
        parser.add_argument("--text_a_field", default=None, help="Generic data: JSONL field (dotted path) or TSV "
                                                                 "column (0-based index, or a header name).")
        parser.add_argument("--text_b_field", default=None, help="Generic data: the second text (pair tasks).")
        parser.add_argument("--label_field", default=None, help="Generic data: the label (absent in test files).")
        parser.add_argument("--labels", default=None, help="Generic classification: the label list in id order, "
                                                          "comma-separated; default: the data's labels, sorted.")
        parser.add_argument("--max_labels", type=int, default=1000,
                            help="Generic classification without --labels: at most this many distinct labels.")
        boolean("from_pairs", False, "Make a pair-classification task from text pairs (our StackExchange or "
                                     "translation JSONL/TFRecords): each pair positive, plus a seeded negative.")
        parser.add_argument("--pairs_per_bucket", type=int, default=1000,
                            help="--from_pairs: negatives come from a seeded hash bucket of about this many pairs.")
        parser.add_argument("--mnli_type", choices=("matched", "mismatched"), default="matched",
                            help="MNLI's dev and test files: dev_matched/test_matched or the mismatched ones.")
        parser.add_argument("--xnli_language", default="en", help="XNLI training language, or all.")
        parser.add_argument("--pawsx_language", default="en", help="PAWS-X training language, or all.")
        parser.add_argument("--vocab_file", default=None, help="WordPiece vocab.txt the model was trained with.")
        boolean("do_lower_case", True, "Lower-case and strip accents (uncased models); false for cased models.")
        parser.add_argument("--nodo_lower_case", dest="do_lower_case", action="store_false",
                            help="absl's spelling of --do_lower_case=false, as the reference accepts it.")
        parser.add_argument("--max_seq_length", type=int, default=128,
                            help="Tokens per example; longer inputs are truncated, shorter padded.")
        for _, flag in REFERENCE_OUTPUTS:
            parser.add_argument(f"--{flag}", default=None,
                                help="The reference's single-file output for the split (test: a template with {} "
                                     "for per-language tests); with any of them only those splits are made.")
        parser.add_argument("--meta_data_file_path", default=None, help="Also write the meta data JSON here.")
        parser.add_argument("--num_shards", type=int, default=0, help="Shards per split; 0: by --records_per_shard.")
        parser.add_argument("--records_per_shard", type=int, default=100_000,
                            help="Records per shard when --num_shards is 0.")


def _split_list(values: Sequence[str] | str | None) -> list[str]:
    if isinstance(values, str):
        values = [values]
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def run_folder(o: FinetuneDataOptions) -> tuple[str, list[str] | None]:
    """``--output_dir``; with only the reference's flags, ``finetune_data_run/`` beside the meta data
    (or the first output file): the run's shards, summary and dead letters go there."""
    if o.output_dir:
        return o.output_dir, None
    anchor = o.meta_data_file_path or next(iter(reference_outputs(o).values()), None)
    if not anchor:
        raise ConfigError("--output_dir is required (or the reference's --*_data_output_path flags)")
    return FileSystems.join(os.path.dirname(anchor) or ".", REFERENCE_RUN_DIR), None


def make_tokenizer(o: FinetuneDataOptions) -> BertTokenizer:
    """The job's tokenizer, built as pipelines.pretrain_data builds it (the one place to change it)."""
    return BertTokenizer(Vocabulary.load(o.vocab_file, o.do_lower_case, reader=read_bytes))


def reference_outputs(o: FinetuneDataOptions) -> dict[str, str]:
    """``{split: path}`` for the reference's ``--*_data_output_path`` flags that are set."""
    return {split: getattr(o, flag) for split, flag in REFERENCE_OUTPUTS if getattr(o, flag)}


def _kind(path: str, requested: str, from_pairs: bool) -> str:
    name = path.lower().removesuffix(".gz").removesuffix(".bz2")
    fmt = requested
    if fmt == "auto":
        fmt = ("jsonl" if name.endswith((".jsonl", ".json", ".ndjson"))
               else "tfrecord" if ".tfrecord" in name or name.endswith(".tfrec") else "tsv")
    if from_pairs:
        if fmt == "tsv":
            raise ConfigError(f"--from_pairs reads JSONL or TFRecord pairs, not {path!r}")
        return fp.PAIRS_JSONL if fmt == "jsonl" else fp.PAIRS_TFRECORD
    if fmt == "tfrecord":
        raise ConfigError(f"{path!r}: TFRecord inputs are read with --from_pairs only")
    return fmt


def _header(path: str, fmt: RowFormat, labels: ft.Labels, mode: str) -> bool:
    if mode != "auto":
        return mode == "true"
    return ft.is_header(ft.first_line(path), fmt, labels)


def _generic_format(path: str, kind: str, o: FinetuneDataOptions, labelled: bool) -> tuple[Any, bool]:
    """The row format of a generic input and whether its first line is a header: JSONL by field paths;
    TSV by column indices, or by header names (then the first line must be the header)."""
    label = o.label_field if labelled else None
    if kind == ft.JSONL:
        return ft.JsonFormat(o.text_a_field, o.text_b_field, label), False
    fields = [o.text_a_field, o.text_b_field, label]
    if all(f is None or f.lstrip("-").isdigit() for f in fields):
        ints = [None if f is None else int(f) for f in fields]
        fmt = RowFormat(ints[0], ints[1], ints[2])
        return fmt, o.header_row == "true"
    if o.header_row == "false":
        raise ConfigError(f"--header_row=false, but {path!r} needs a header to find columns by name")
    header = ft.split_tsv(ft.first_line(path))
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

    def __init__(self, o: FinetuneDataOptions) -> None:
        self.reference = reference_outputs(o)
        wanted = set(self.reference) or set(SPLITS)
        explicit = {split: _split_list(getattr(o, f"{split}_files")) for split in SPLITS}
        self.inputs: list[ft.InputFile] = []
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

    def _dests_of(self, f: ft.InputFile) -> list[str]:
        if f.kind == ft.TSV and f.fmt.language is not None:
            return [f.dest(lang) for lang in self.languages]
        return [f.dest()]

    def _task(self, o: FinetuneDataOptions, explicit: dict[str, list[str]], wanted: set[str]) -> None:
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
        self.labels = ft.Labels(task.labels, regression, aliases)
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
                self.inputs.append(ft.InputFile(path, task_file.split, ft.TSV, task_file.fmt, group,
                                                _header(path, task_file.fmt, self.labels, o.header_row)))

    def _generic(self, o: FinetuneDataOptions, explicit: dict[str, list[str]], wanted: set[str]) -> None:
        if not o.text_a_field:
            raise ConfigError("--text_a_field is required without --task or --from_pairs")
        if not o.label_field and any(explicit[s] for s in (TRAIN, "dev")):
            raise ConfigError("--label_field is required for train and dev files")
        regression = o.fine_tuning_task_type == "regression"
        fixed = tuple(_split_list(o.labels)) or None
        if regression and fixed:
            raise ConfigError("--labels contradicts --fine_tuning_task_type=regression")
        if o.max_labels < 1:
            raise ConfigError(f"--max_labels must be >= 1, got {o.max_labels}")
        self.name = self.processor_type = "GENERIC"
        self.labels = ft.Labels(fixed, regression, max_labels=o.max_labels)
        for split in SPLITS:
            if split not in wanted or not explicit[split]:
                continue
            for path in match_files(explicit[split], f"--{split}_files"):
                kind = _kind(path, o.input_format, False)
                fmt, header = _generic_format(path, kind, o, labelled=split != TEST)
                if kind == ft.TSV and o.header_row == "auto" and not header:
                    header = ft.is_header(ft.first_line(path), fmt, self.labels)
                self.inputs.append(ft.InputFile(path, split, kind, fmt, "", header))

    def _pairs(self, o: FinetuneDataOptions, explicit: dict[str, list[str]], wanted: set[str]) -> None:
        if o.task or o.text_a_field:
            raise ConfigError("--from_pairs makes its own task: drop --task and --text_*_field")
        if o.fine_tuning_task_type == "regression":
            raise ConfigError("--from_pairs makes a classification task, not regression")
        if o.pairs_per_bucket < 2:
            raise ConfigError(f"--pairs_per_bucket must be >= 2, got {o.pairs_per_bucket}")
        self.name = self.processor_type = "PAIRS"
        self.labels = ft.Labels((fp.NEGATIVE, fp.POSITIVE), False)
        for split in SPLITS:
            if split in wanted and explicit[split]:
                for path in match_files(explicit[split], f"--{split}_files"):
                    self.inputs.append(ft.InputFile(path, split, _kind(path, o.input_format, True)))


def _dest_order(dest: str) -> tuple[int, str]:
    return SPLITS.index(dest.split("/")[0]), dest


def meta_data(plan: Plan, o: FinetuneDataOptions, counts: dict[str, int], label_list: list[str],
              truncated: dict[str, int]) -> dict[str, Any]:
    """The reference's meta data keys (``classifier_data_lib.generate_tf_record_from_data_file``) and
    ours: the label list in id order, truncation counts, vocabulary and casing."""
    meta: dict[str, Any] = {"processor_type": plan.processor_type, "train_data_size": counts.get(TRAIN, 0),
                            "max_seq_length": o.max_seq_length}
    if "dev" in plan.dests:
        meta["eval_data_size"] = counts.get("dev", 0)
    for dest in plan.dests:
        if dest == TEST:
            meta["test_data_size"] = counts.get(dest, 0)
        elif dest.startswith(f"{TEST}/"):
            meta[f"test_{dest.split('/', 1)[1]}_data_size"] = counts.get(dest, 0)
    if plan.labels.regression:
        meta["task_type"], meta["label_type"] = "bert_regression", "float"
    else:
        meta["task_type"], meta["num_labels"] = "bert_classification", len(label_list)
        meta["labels"] = list(label_list)
    meta.update({"task": plan.name, "do_lower_case": o.do_lower_case, "vocab_file": o.vocab_file,
                 "outputs": {d: counts.get(d, 0) for d in plan.dests},
                 "truncated": {d: truncated.get(d, 0) for d in plan.dests}})
    return meta


class _WriteMetaData(beam.DoFn):
    def __init__(self, paths: Sequence[str], plan: Plan, options: FinetuneDataOptions) -> None:
        self._paths, self._plan, self._o = list(paths), plan, options

    def process(self, _: Any, counts: dict[str, int], label_list: list[str], truncated: dict[str, int]) -> None:
        meta = meta_data(self._plan, self._o, counts, label_list, truncated)
        text = json.dumps(meta, indent=4, sort_keys=True, ensure_ascii=False) + "\n"
        for path in self._paths:
            with FileSystems.create(path) as f:
                f.write(text.encode("utf-8"))


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> runtime.Built:
    o = options.view_as(FinetuneDataOptions)
    common = options.view_as(runtime.CommonOptions)
    out_dir = common.output_dir
    plan = Plan(o)
    if not o.vocab_file:
        raise ConfigError("--vocab_file is required")
    if o.num_shards < 0 or o.records_per_shard < 1:
        raise ConfigError("--num_shards must be >= 0 and --records_per_shard >= 1")
    tokenizer = make_tokenizer(o)
    spec = sentence_prediction_spec(o.max_seq_length, plan.labels.regression, tokenizer.vocabulary.params())
    if o.from_pairs:
        rows, stages = pipeline | "PairTask" >> fp.PairTaskRows(plan.inputs, common.seed, o.pairs_per_bucket)
    else:
        read, parsed = pipeline | "ReadRows" >> ft.ReadTaskRows(plan.inputs, plan.labels, plan.dests)
        rows, stages = parsed.out, [read, parsed]
    featurized, label_list, truncated = rows | "Features" >> ft.FeaturizeRows(
        tokenizer, spec, plan.labels, o.max_seq_length)
    stages.append(featurized)
    counts = featurized.out | "Write" >> ft.WriteOutputs(out_dir, plan.dests, o.num_shards, o.records_per_shard)
    outputs = {}
    for dest in plan.dests:
        directory = FileSystems.join(out_dir, *dest.split("/"))
        _ = pipeline | f"Spec{dest.replace('/', '_').title()}" >> WriteSpec(spec, directory)
        outputs[f"{dest} records"] = FileSystems.join(directory, f"{ft.SHARD_PREFIX}-*{ft.SHARD_SUFFIX}")
    meta_paths = [FileSystems.join(out_dir, META_DATA_FILE)] + ([o.meta_data_file_path] if o.meta_data_file_path
                                                                  else [])
    _ = (pipeline | "MetaTrigger" >> beam.Create([None])
         | "WriteMetaData" >> beam.ParDo(_WriteMetaData(meta_paths, plan, o), beam.pvalue.AsDict(counts),
                                         beam.pvalue.AsSingleton(label_list), beam.pvalue.AsDict(truncated)))
    outputs["meta data"] = ", ".join(meta_paths)
    return runtime.Built([s.tally for s in stages], [s.dead_letter for s in stages], outputs)


# --- the reference's single-file outputs ----------------------------------------------------------

def _reference_path(template: str, dest: str) -> str:
    return template.format(dest.split("/", 1)[1]) if "/" in dest else template


def place_reference_outputs(o: FinetuneDataOptions, output_dir: str) -> list[str]:
    """Moves each requested split's shards into the reference's single file (concatenated in shard
    order, streamed) with the spec files beside it; returns the files written. Runs in the launcher
    after the job: a path that is absent means the run did not finish."""
    placed = []
    for split, template in reference_outputs(o).items():
        dests = [split] + [f"{split}/{d}" for d in _subdirs(output_dir, split)]
        for dest in dests:
            shards = sorted(m.path for m in FileSystems.match(
                [FileSystems.join(output_dir, *dest.split("/"), f"{ft.SHARD_PREFIX}-*{ft.SHARD_SUFFIX}")]
            )[0].metadata_list)
            if not shards:
                continue
            target = _reference_path(template, dest)
            parent = os.path.dirname(target)
            if parent and not FileSystems.exists(parent):
                FileSystems.mkdirs(parent)
            with FileSystems.create(target, compression_type=CompressionTypes.UNCOMPRESSED) as out:
                for shard in shards:
                    with FileSystems.open(shard, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                        while chunk := f.read(1 << 20):
                            out.write(chunk)
            FileSystems.delete(shards)
            spec_dir = FileSystems.join(output_dir, *dest.split("/"))
            with FileSystems.open(FileSystems.join(spec_dir, specs.SPEC_FILE)) as f:
                spec = specs.FeatureSpec.from_json(f.read().decode("utf-8"))
            write_spec_files(spec, parent or ".")
            placed.append(target)
    return placed


def _subdirs(output_dir: str, split: str) -> list[str]:
    pattern = FileSystems.join(output_dir, split, "*", specs.SPEC_FILE)
    return sorted(m.path.rsplit("/", 2)[-2] for m in FileSystems.match([pattern])[0].metadata_list)


def main(argv: Sequence[str] | None = None) -> int:
    """``runtime.main`` plus the reference's single-file outputs: after the run each split's shards
    become the one file the reference writes at ``--*_data_output_path``."""
    args = list(sys.argv[1:] if argv is None else argv)
    code = runtime.main("finetune_data", build, args)
    if code == 0:
        o = PipelineOptions(args).view_as(FinetuneDataOptions)
        if reference_outputs(o):
            for path in place_reference_outputs(o, o.run_folder()[0]):
                print(f"reference output: {path}")
    return code


if __name__ == "__main__":
    sys.exit(main())
