"""Pairs -> one folder per pair type, as jsonl.gz and TFRecords with their spec (Beam)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from specs import FeatureSpec, text_pair_spec
from transforms.core.shards import WriteShards, sort_key
from transforms.core.spec_files import WriteSpec
from transforms.stackexchange.pairs import NUM_TEXTS, PostPair


class _EncodePairs(beam.DoFn):
    """PostPair -> its sort key and its bytes in every output format, sent on in batches per (type, format).

    One DoFn call per pair does what would otherwise be a keying, a partition and an encoding step
    per format; batches cross the shuffle into ``WriteShards(batched=True)`` as one element each.
    A batch is bounded (``_BATCH`` pairs) and flushed at the end of the bundle, so memory does not
    depend on the corpus and the bytes written do not depend on where bundles end. (Encoding per pair
    then ``beam.BatchElements`` per output writes the same bytes, but one more step per record and
    output measured slower with the default 14 outputs: ``bench/stackexchange.py --scale 10``, marginal
    2,181 against 4,206 rows/s per core, on a shared machine.)
    """

    _BATCH = 500

    def __init__(self, specs: dict[str, FeatureSpec], formats: Sequence[str], with_metadata: bool,
                 seed: int) -> None:
        self._specs, self._formats, self._meta, self._seed = specs, list(formats), with_metadata, seed

    def start_bundle(self) -> None:
        self._buffers: dict[str, list[tuple[bytes, bytes]]] = {}

    def _add(self, tag: str, record: tuple[bytes, bytes]) -> Iterator[beam.pvalue.TaggedOutput]:
        buf = self._buffers.setdefault(tag, [])
        buf.append(record)
        if len(buf) >= self._BATCH:
            yield beam.pvalue.TaggedOutput(tag, buf)
            self._buffers[tag] = []

    def process(self, pair: PostPair) -> Iterator[beam.pvalue.TaggedOutput]:
        t = pair.pair_type
        key = sort_key(self._seed, pair.site, t, *pair.ids)
        if "jsonl" in self._formats:
            yield from self._add(f"{t}/jsonl", (key, pair.to_json(self._meta).encode("utf-8")))
        if "tfrecord" in self._formats:
            yield from self._add(f"{t}/tfrecord", (key, encode_texts(self._specs[t], pair.texts)))

    def finish_bundle(self) -> Iterator[beam.pvalue.TaggedOutput]:
        for tag, buf in sorted(self._buffers.items()):
            if buf:
                yield beam.pvalue.TaggedOutput(tag, WindowedValue(buf, MIN_TIMESTAMP, [GlobalWindow()]))
        self._buffers.clear()


class WritePostPairs(beam.PTransform):
    """Writes each pair type to its own folder, shuffled deterministically by a seeded hash:

    ``OUT/<pair_type>/jsonl/<pair_type>-SSSSS-of-NNNNN.jsonl.gz`` (a JSON list of texts per line, what
    sentence-transformers reads; objects with attribution under ``--with_metadata``) and
    ``OUT/<pair_type>/tfrecord/<pair_type>-SSSSS-of-NNNNN.tfrecord.gz`` (``src_raw``/``tgt_raw``[/``neg_raw``]
    Examples) with ``schema.pbtxt`` and ``feature_spec.json`` beside them.
    """

    def __init__(self, output_dir: str, pair_types: Sequence[str], formats: Sequence[str], with_metadata: bool,
                 seed: int, num_shards: int = 0, records_per_shard: int = 200_000, gzip_level: int = 6) -> None:
        super().__init__()
        self._out, self._types, self._formats = output_dir, list(pair_types), list(formats)
        self._meta, self._seed = with_metadata, seed
        self._shards, self._per_shard, self._gzip_level = num_shards, records_per_shard, gzip_level

    def folders(self) -> dict[str, str]:
        return {t: FileSystems.join(self._out, t) for t in self._types}

    def expand(self, pairs: beam.PCollection) -> dict[str, beam.PCollection]:
        tags = [f"{t}/{fmt}" for t in self._types for fmt in self._formats]
        specs = {t: text_pair_spec(NUM_TEXTS[t], name=f"stackexchange_{t}") for t in self._types}
        encoded = pairs | "Encode" >> beam.ParDo(
            _EncodePairs(specs, self._formats, self._meta, self._seed)).with_outputs(*tags)
        counts = {}
        for t in self._types:
            folder = FileSystems.join(self._out, t)
            for fmt in self._formats:
                if fmt == "tfrecord":
                    _ = pairs.pipeline | f"Spec[{t}]" >> WriteSpec(specs[t], FileSystems.join(folder, "tfrecord"))
                suffix, frame = (".jsonl.gz", "lines") if fmt == "jsonl" else (".tfrecord.gz", "tfrecord")
                counts[t] = encoded[f"{t}/{fmt}"] | f"Write{fmt.title()}[{t}]" >> WriteShards(
                    FileSystems.join(folder, fmt, t), suffix, frame, "gzip", self._shards, self._per_shard,
                    batched=True, gzip_level=self._gzip_level)
        return counts


def encode_texts(spec: FeatureSpec, texts: Sequence[str]) -> bytes:
    """Anchor, positive (and negative) texts as a ``src_raw``/``tgt_raw``(/``neg_raw``) Example."""
    return spec.encode(dict(zip(("src_raw", "tgt_raw", "neg_raw"), texts, strict=False)))
