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
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from specs.errors import ConfigError
from specs.finetune import sentence_prediction_spec
from specs.vocabulary import Vocabulary
from transforms import finetune as ft
from transforms.core import flags, runtime
from transforms.core.spec_files import WriteSpec
from transforms.core.storage import read_bytes
from transforms.finetune.outputs import META_DATA_FILE, WriteMetaData, place_reference_outputs, reference_path
from transforms.finetune.plan import INPUT_FORMATS, REFERENCE_OUTPUTS, Plan, reference_outputs
from transforms.finetune.tasks import SPLITS
from transforms.text.bert_tokenization import BertTokenizer

REFERENCE_RUN_DIR = "finetune_data_run"


class FinetuneDataOptions(runtime.CommonOptions):
    """``create_finetuning_data.py``'s classification/regression flags, plus generic and pair modes."""

    def run_folder(self) -> tuple[str, list[str] | None]:
        return run_folder(self)

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
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
        parser.add_argument("--input_format", choices=INPUT_FORMATS, default="auto",
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
        flags.add_boolean(parser, "from_pairs", False, "Make a pair-classification task from text pairs (our "
                          "StackExchange or translation JSONL/TFRecords): each pair positive, plus a seeded negative.")
        parser.add_argument("--pairs_per_bucket", type=int, default=1000,
                            help="--from_pairs: negatives come from a seeded hash bucket of about this many pairs.")
        parser.add_argument("--mnli_type", choices=("matched", "mismatched"), default="matched",
                            help="MNLI's dev and test files: dev_matched/test_matched or the mismatched ones.")
        parser.add_argument("--xnli_language", default="en", help="XNLI training language, or all.")
        parser.add_argument("--pawsx_language", default="en", help="PAWS-X training language, or all.")
        parser.add_argument("--vocab_file", default=None, help="WordPiece vocab.txt the model was trained with.")
        flags.add_boolean(parser, "do_lower_case", True,
                          "Lower-case and strip accents (uncased models); false for cased models.",
                          negated_help="absl's spelling of --do_lower_case=false, as the reference accepts it.")
        parser.add_argument("--max_seq_length", type=int, default=128,
                            help="Tokens per example; longer inputs are truncated, shorter padded.")
        for _, flag in REFERENCE_OUTPUTS:
            parser.add_argument(f"--{flag}", default=None,
                                help="The reference's single-file output for the split (test: a template with {} "
                                     "for per-language tests); with any of them only those splits are made.")
        parser.add_argument("--meta_data_file_path", default=None, help="Also write the meta data JSON here.")
        flags.add_sharding(parser, records_per_shard=100_000,
                           shards_help="Shards per split; 0: by --records_per_shard.")



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



def build(pipeline: beam.Pipeline, options: PipelineOptions) -> runtime.Built:
    o = options.view_as(FinetuneDataOptions)
    common = options.view_as(runtime.CommonOptions)
    out_dir = common.output_dir
    # another job's output is read only when that run finished (before any input file is opened)
    for split in SPLITS:
        runtime.check_inputs_complete(flags.flag_list(getattr(o, f"{split}_files")), f"--{split}_files", options,
                                      ours=False)
    if o.input_data_dir:
        runtime.check_inputs_complete([o.input_data_dir], "--input_data_dir", options, ours=False)
    plan = Plan(o)
    if not o.vocab_file:
        raise ConfigError("--vocab_file is required")
    if o.num_shards < 0 or o.records_per_shard < 1:
        raise ConfigError("--num_shards must be >= 0 and --records_per_shard >= 1")
    tokenizer = make_tokenizer(o)
    spec = sentence_prediction_spec(o.max_seq_length, plan.labels.regression, tokenizer.vocabulary.params())
    ledger = runtime.Ledger()
    if o.from_pairs:
        rows, stages = pipeline | "PairTask" >> ft.PairTaskRows(plan.inputs, common.seed, o.pairs_per_bucket)
    else:
        stages = pipeline | "ReadRows" >> ft.ReadTaskRows(plan.inputs, plan.labels, plan.dests)
        rows = stages[-1].out
    for stage in stages:
        ledger.add(stage)
    featurized, label_list, truncated = rows | "Features" >> ft.FeaturizeRows(
        tokenizer, spec, plan.labels, o.max_seq_length)
    counts = ledger.add(featurized) | "Write" >> ft.WriteOutputs(out_dir, plan.dests, o.num_shards, o.records_per_shard)
    outputs = {}
    for dest in plan.dests:
        directory = FileSystems.join(out_dir, *dest.split("/"))
        _ = pipeline | f"Spec{dest.replace('/', '_').title()}" >> WriteSpec(spec, directory)
        template = plan.reference.get(dest.split("/")[0])
        # with the reference's flags the shards become its one file after the run: name that file
        outputs[f"{dest} records"] = (reference_path(template, dest) if template else
                                      FileSystems.join(directory, f"{ft.SHARD_PREFIX}-*{ft.SHARD_SUFFIX}"))
    meta_paths = [FileSystems.join(out_dir, META_DATA_FILE)] + ([o.meta_data_file_path] if o.meta_data_file_path
                                                                  else [])
    _ = (pipeline | "MetaTrigger" >> beam.Create([None])
         | "WriteMetaData" >> beam.ParDo(WriteMetaData(meta_paths, plan, o), beam.pvalue.AsDict(counts),
                                         beam.pvalue.AsSingleton(label_list), beam.pvalue.AsDict(truncated)))
    outputs["meta data"] = ", ".join(meta_paths)
    return ledger.built(outputs, empty_outputs=lambda: empty_splits(out_dir),
                        finish=lambda: {f"reference file {i}": path for i, path in
                                        enumerate(place_reference_outputs(o, out_dir))})



def empty_splits(folder: str) -> list[str]:
    """The splits (``train``, ``dev``, ``test``) of a finished run with no record: their inputs were
    empty, header-only, or every row was filtered or dead-lettered (the job's own ``outputs`` counts in
    its meta data say so). A split's per-language outputs count together: XNLI's one test file need
    not hold every language."""
    with FileSystems.open(FileSystems.join(folder, META_DATA_FILE)) as f:
        counts = json.loads(f.read().decode("utf-8")).get("outputs", {})
    totals: dict[str, int] = {}
    for dest, n in counts.items():
        split = dest.split("/")[0]
        totals[split] = totals.get(split, 0) + n
    return [split for split, n in totals.items() if not n]


def main(argv: Sequence[str] | None = None) -> int:
    return runtime.main("finetune_data", build, argv)


if __name__ == "__main__":
    sys.exit(main())
