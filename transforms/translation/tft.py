"""``--materialize_tokens``: tokenise the written translation pairs with tensorflow-transform.

The ``preprocessing_fn`` packs each side with the trainer's own in-graph tokenisation (one graph,
tensorflow_text inside), so TPU hosts read ids instead of tokenising, and the trainer's export can
embed the very same ``transform_fn`` (``tft.TFTransformOutput(DIR).transform_features_layer()``).
The tokenisation is handed in by the pipeline (``pipelines.translation_pairs`` passes
``trainer.text.tokenization.BertTokenization``): transforms/ never imports the trainer.

How the records are made: tensorflow-transform traces the ``preprocessing_fn`` and writes
``transform_fn/`` and ``transformed_metadata/`` (``AnalyzeDataset`` + ``WriteTransformFn``; the
function has no analyzers, so the analysis pass is trivial). The records are then produced by
loading that written ``transform_fn`` in a DoFn and applying it to batches of pairs. This is the
same computation as ``tft_beam.TransformDataset`` but keeps each pair's seeded sort key next to it,
so the tokenised shards hold the same pairs in the same order as the raw shards and are
byte-identical across runs and worker counts (``TransformDataset`` has no way to carry a key for
instance dicts). Because the records come from the saved ``transform_fn`` itself, they are exactly
what the exported model computes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from specs import FeatureSpec
from specs.translation import SIDES, tokenized_pairs_spec
from specs.vocabulary import Vocabulary
from transforms.core.shards import WriteShards, sort_key
from transforms.core.spec_files import WriteSpec
from transforms.translation.records import TranslationPair
from transforms.translation.sampling import pair_key

RAW_FEATURES = ("src_raw", "tgt_raw")


# Makes the in-graph tokenisation of a vocabulary: called as ``tokenization(texts, seq_length=...,
# out_dtype=...)`` it returns ``{input_word_ids, input_mask, input_type_ids}`` (``trainer.text.tokenization``).
MakeTokenization = Callable[[Vocabulary], Any]


def make_preprocessing_fn(vocab: Vocabulary, seq_length: int, make_tokenization: MakeTokenization) -> Any:
    """The tensorflow-transform ``preprocessing_fn``: ``{src_raw, tgt_raw}`` (string, batch) ->
    ``{src_input_word_ids, src_input_mask, src_input_type_ids, tgt_...}`` (int64, batch x seq_length)."""

    def preprocessing_fn(inputs: Mapping[str, Any]) -> dict[str, Any]:
        import tensorflow as tf

        tokenization = make_tokenization(vocab)
        out = {}
        for side in SIDES:
            packed = tokenization(inputs[f"{side}_raw"], seq_length=seq_length, out_dtype=tf.int64)
            out.update({f"{side}_{name}": value for name, value in packed.items()})
        return out

    return preprocessing_fn


def raw_metadata() -> Any:
    import tensorflow as tf
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    spec = {name: tf.io.FixedLenFeature([], tf.string) for name in RAW_FEATURES}
    return dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))


class _Tokenize(beam.DoFn):
    """Applies the written ``transform_fn`` to batches of ``(sort_key, TranslationPair)``; emits encoded records."""

    def __init__(self, transform_dir: str, spec: FeatureSpec) -> None:
        self._dir = transform_dir
        self._spec = spec
        self._layer: Any = None

    def process(self, batch: list[tuple[bytes, TranslationPair]], _published: Any) -> Iterator[tuple[bytes, bytes]]:
        import tensorflow as tf
        import tensorflow_transform as tft

        if self._layer is None:  # the side input guarantees the transform_fn is published by now
            self._layer = tft.TFTransformOutput(self._dir).transform_features_layer()
        features = {f"{side}_raw": tf.constant([getattr(p, side) for _, p in batch]) for side in SIDES}
        result = {name: value.numpy() for name, value in self._layer(features).items()}
        names = self._spec.names
        for i, (key, _) in enumerate(batch):
            yield key, self._spec.encode({name: result[name][i].tolist() for name in names})


class MaterializeTokens(beam.PTransform):
    """``{split: (copy_index, TranslationPair)}`` -> ``DIR/transform_fn``, ``DIR/transformed_metadata`` and
    ``DIR/SPLIT/pairs-*.tfrecord.gz`` of ``tokenized_pairs_spec(seq_length, vocab.params())`` (spec,
    with the vocabulary's fingerprint and casing, written beside), sorted by the same seeded keys as
    the raw shards."""

    def __init__(self, directory: str, vocab: Vocabulary, seq_length: int, seed: int,
                 make_tokenization: MakeTokenization, num_shards: int = 0, records_per_shard: int = 200_000,
                 temp_dir: str | None = None, batch_size: int = 256) -> None:
        super().__init__()
        self._dir, self._vocab, self._len = directory, vocab, seq_length
        self._make_tokenization = make_tokenization
        self._spec = tokenized_pairs_spec(seq_length, vocab.params())
        self._seed, self._num_shards, self._per_shard = seed, num_shards, records_per_shard
        self._temp = temp_dir or FileSystems.join(directory, "tmp")
        self._batch = batch_size

    def expand(self, written: Mapping[str, beam.PCollection]) -> dict[str, beam.PCollection]:
        import tensorflow_transform.beam as tft_beam

        pipeline = next(iter(written.values())).pipeline
        seed = self._seed
        keyed = {split: pcoll | f"SortKey{split.title()}" >> beam.Map(
            lambda ip: (sort_key(seed, pair_key(ip[1]), ip[0]), ip[1])) for split, pcoll in written.items()}
        with tft_beam.Context(temp_dir=self._temp, force_tf_compat_v1=False):
            analyze_on = (
                pipeline
                | "NoAnalyzerInput" >> beam.Create([{"src_raw": b"", "tgt_raw": b""}])
            )
            transform_fn = (analyze_on, raw_metadata()) | "Analyze" >> tft_beam.AnalyzeDataset(
                make_preprocessing_fn(self._vocab, self._len, self._make_tokenization))
            published = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(self._dir)
        counts = {}
        for split, pcoll in sorted(keyed.items()):
            directory = FileSystems.join(self._dir, split)
            _ = pcoll.pipeline | f"Spec{split.title()}" >> WriteSpec(self._spec, directory)
            counts[split] = (
                pcoll
                | f"Batch{split.title()}" >> beam.BatchElements(min_batch_size=self._batch, max_batch_size=self._batch)
                | f"Tokenize{split.title()}" >> beam.ParDo(_Tokenize(self._dir, self._spec),
                                                           beam.pvalue.AsSingleton(published))
                | f"Write{split.title()}" >> WriteShards(FileSystems.join(directory, "pairs"), ".tfrecord.gz",
                                                        "tfrecord", "gzip", self._num_shards, self._per_shard)
            )
        return counts
