"""Masked-LM pretraining examples as ``create_pretraining_data.py`` makes them, on Beam.

The per-element logic (documents to segment pairs, truncation, masking, TLM pairs, encoding) is in
plain functions that follow the reference algorithm decision for decision, with one generator per
document and pass instead of one global generator; pairs are offsets into the bucket's ids, and
masking and encoding run with numpy over batches of a few thousand instances (``InstanceBatch``),
drawing from the same distributions as the reference with fewer, other draws. The PTransforms
read documents, tokenise them in batches, pool them in bounded shuffle buckets (the "random next"
documents come from the same bucket, not from an in-memory list of the whole corpus) and write
shuffled, sharded TFRecords.

The package's layers, bottom up (each imports only those before it):

- ``records`` (documents as read and tokenised, their keys and languages, a JSON line as a document,
  a document as bytes for a spilled run) and ``params`` (the reference's parameters, the
  vocabulary's ids): no Beam;
- the pure algorithm, tested without Beam: ``pairs`` (the pool and segment pairs, truncation),
  ``masking`` (whole-word and token masking), ``encoding`` (``InstanceBatch``: masks and
  ``tf.train.Example`` bytes for a batch), ``sampling`` (language pass rates, shuffle buckets);
- the Beam transforms: ``bert_text`` and ``reading`` (documents in the three formats), ``tokenizing``,
  ``examples`` (buckets to masked-LM examples), ``tlm`` (translation-LM examples), ``outputs`` (the
  sidecars); ``plan``: the flags, checked at start-up;
- ``layout``, ``statistics`` and ``inspection``: reading the written records back and checking them
  (``python -m pipelines.inspect``; a single-process reader, not a Beam job).

Output layout (what readers of the data may rely on), under ``OUTPUT_DIR``:

- ``schema.pbtxt`` and ``feature_spec.json``: the feature spec (``specs.pretraining_spec``); build the
  parser from these, see ``specs.read_spec_text``.
- ``params.json``: every parameter the job ran with, the vocabulary's size and special ids, the
  number of records written and the per-language document counts and sampling rates.
- ``pretrain-SSSSS-of-NNNNN.tfrecord`` (``.tfrecord.gz`` with ``--gzip_compress``): the examples,
  ``tf.train.Example`` records, globally shuffled by a seeded hash.
- ``summary.json`` and ``dead_letter/``: the run's accounting (written by ``transforms.core.runtime``).

The names below are the package's public surface; ``pipelines.pretrain_data`` composes them.
"""

from transforms.pretraining.bert_text import ReadBertText
from transforms.pretraining.encoding import InstanceBatch
from transforms.pretraining.examples import CreatePretrainingExamples
from transforms.pretraining.masking import mask_batch, mask_whole_words, token_mask_words
from transforms.pretraining.outputs import PARAMS_FILE, SHARD_PREFIX, SIDECARS, WriteSidecars
from transforms.pretraining.pairs import Pair, Pool, create_segment_pairs, truncate_pair
from transforms.pretraining.params import InstanceParams, VocabInfo
from transforms.pretraining.plan import (
    FORMATS,
    check_tokenization,
    input_format,
    instance_params,
    output_files,
    recorded_params,
)
from transforms.pretraining.reading import ReadDocuments
from transforms.pretraining.records import UNDETERMINED, Document, RawDocument, document_key, language_from_path
from transforms.pretraining.sampling import language_pass_rates, passes_for
from transforms.pretraining.tlm import CreateTlmExamples
from transforms.pretraining.tokenizing import TokenizeDocuments

__all__ = [
    "FORMATS", "PARAMS_FILE", "SHARD_PREFIX", "SIDECARS", "UNDETERMINED", "CreatePretrainingExamples",
    "CreateTlmExamples", "Document", "InstanceBatch", "InstanceParams", "Pair", "Pool", "RawDocument",
    "ReadBertText", "ReadDocuments", "TokenizeDocuments", "VocabInfo", "WriteSidecars", "check_tokenization",
    "create_segment_pairs", "document_key", "input_format", "instance_params", "language_from_path",
    "language_pass_rates", "mask_batch", "mask_whole_words", "output_files", "passes_for",
    "recorded_params", "token_mask_words", "truncate_pair",
]
