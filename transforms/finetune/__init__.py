"""Fine-tuning data: task files -> sentence-prediction records (``pipelines.finetune_data`` composes it).

A row of a task file (GLUE TSV, a user's TSV or JSONL, or a text pair of our own outputs) becomes one
``specs.finetune.sentence_prediction_spec`` record the way Model Garden's
``classifier_data_lib.convert_single_example`` makes it. The package's layers, bottom up:

- ``tasks`` (the GLUE/XTREME task files, columns and labels) and ``records`` (input files, labels,
  parsing a line into a ``Row``): no Beam;
- ``packing`` (truncation and ``[CLS] A [SEP] B [SEP]`` packing) and ``pairs`` (positives and seeded
  in-bucket negatives from our own text pairs): the pure algorithm;
- ``plan`` (what the flags ask for, checked at start-up), ``reading``, ``pair_steps``, ``steps`` and
  ``outputs``: the Beam transforms, the meta data and the reference's single-file outputs.
"""

from transforms.core.formats import JSONL, TSV
from transforms.core.records import BadRecordError
from transforms.finetune.outputs import META_DATA_FILE, WriteMetaData, meta_data, place_reference_outputs
from transforms.finetune.packing import pack, truncated_lengths
from transforms.finetune.pair_steps import PairTaskRows
from transforms.finetune.pairs import (
    NEGATIVE,
    NEGATIVES_STAGE,
    PAIRS_JSONL,
    PAIRS_TFRECORD,
    POSITIVE,
    PairLineParser,
    bucket_of,
    pair_example_id,
    pair_with_negatives,
    parse_pair_json,
)
from transforms.finetune.plan import INPUT_FORMATS, REFERENCE_OUTPUTS, Plan, first_line, reference_outputs
from transforms.finetune.reading import ReadTaskRows
from transforms.finetune.records import (
    FEATURIZE_STAGE,
    PARSE_STAGE,
    SHARD_PREFIX,
    SHARD_SUFFIX,
    TRUNCATED,
    InputFile,
    JsonFormat,
    Labels,
    Row,
    checked_text,
    is_header,
    label_value,
    load_json,
    parse_json_row,
    parse_tsv_row,
    split_tsv,
)
from transforms.finetune.steps import FeaturizeRows, WriteOutputs
from transforms.finetune.tasks import SPLITS, TASK_NAMES, TEST, TRAIN, RowFormat, Task, TaskFile, glue_task

__all__ = [
    "FEATURIZE_STAGE", "INPUT_FORMATS", "JSONL", "META_DATA_FILE", "NEGATIVE", "NEGATIVES_STAGE", "PAIRS_JSONL",
    "PAIRS_TFRECORD", "PARSE_STAGE", "POSITIVE", "REFERENCE_OUTPUTS", "SHARD_PREFIX", "SHARD_SUFFIX", "SPLITS",
    "TASK_NAMES", "TEST", "TRAIN", "TRUNCATED", "TSV", "BadRecordError", "FeaturizeRows", "InputFile", "JsonFormat",
    "Labels", "PairLineParser", "PairTaskRows", "Plan", "ReadTaskRows", "Row", "RowFormat", "Task", "TaskFile",
    "WriteMetaData", "WriteOutputs", "bucket_of", "checked_text", "first_line", "glue_task", "is_header",
    "label_value", "load_json", "meta_data", "pack", "pair_example_id", "pair_with_negatives", "parse_json_row",
    "parse_pair_json", "parse_tsv_row", "place_reference_outputs", "reference_outputs", "split_tsv",
    "truncated_lengths",
]
