"""Masked-LM examples from tokenised documents on Beam: documents are counted per language, placed
in bounded shuffle buckets (grouped on Dataflow, spilled to run files elsewhere), and each bucket's
documents become instances, masked and encoded in batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np

import specs
from transforms.core import accounting
from transforms.core.accounting import Accounted, AccountedDoFn
from transforms.core.memory import release_free_memory
from transforms.core.placement import shard_of
from transforms.core.seeding import element_rng
from transforms.core.shards import resolve_write_method
from transforms.core.spill import SpillRun, SpillRuns, read_group
from transforms.core.storage import remove_folder, temp_folder
from transforms.pretraining.encoding import InstanceBatch
from transforms.pretraining.pairs import Pool, create_segment_pairs
from transforms.pretraining.params import InstanceParams, VocabInfo
from transforms.pretraining.records import Document, decode_document, encode_document
from transforms.pretraining.sampling import bucket_count, bucket_hash, language_pass_rates, passes_for

INSTANCE_COUNTS = "instance_counts"  # the tagged output of ``(language, examples made)``
BATCH_INSTANCES = 2048  # instances masked and encoded together, and sent to the writer as one element


class _SpillDocuments(SpillRuns):
    """Documents to spilled runs, placed by their bucket hash and sorted in a bucket by key."""

    def __init__(self, folder: str, seed: int) -> None:
        super().__init__(folder)
        self._seed = seed

    def process(self, doc: Document) -> Iterator[SpillRun]:
        return self.add(np.array([bucket_hash(self._seed, doc.key)], dtype=np.uint64), [doc.key],
                        [encode_document(doc)])


class _KeyByBucket(beam.DoFn):
    """The shuffle method's bucket key: ``shard_of`` the bucket hash, as the spilled runs are read."""

    def __init__(self, seed: int, docs_per_bucket: int) -> None:
        self._seed, self._per_bucket = seed, docs_per_bucket

    def process(self, doc: Document, counts: dict[str, int]) -> Iterator[tuple[int, Document]]:
        yield shard_of(bucket_hash(self._seed, doc.key), bucket_count(counts, self._per_bucket)), doc


class _CreateInstances(AccountedDoFn):
    """One shuffle bucket of documents to lists of encoded examples, every document with every pass.

    The bucket arrives grouped (``(index, documents)``, the shuffle method) or as its index, read
    from the spilled runs (the spill method); either way its documents are sorted by key, so the
    result depends on neither the method nor the order of arrival. Each document first gets its
    number of passes (``language_pass_rates``; a document of an over-represented language may get
    none and is filtered as ``language_downsampled``); the documents with passes are the pool that
    random next segments come from. Each document and pass has its own generator (job seed,
    document key, pass), which also draws each example's sort key (the writer's seeded global
    shuffle). Examples leave in lists of about ``BATCH_INSTANCES``: a Beam element costs more than
    making an example, and the writer takes lists.
    """

    stage = "sample_languages"

    def __init__(self, seed: int, params: InstanceParams, vocab: VocabInfo, spec: specs.FeatureSpec,
                 alpha: float, docs_per_bucket: int) -> None:
        self._seed, self._params, self._vocab, self._spec = seed, params, vocab, spec
        self._alpha, self._per_bucket = alpha, docs_per_bucket

    def process(self, bucket: int | tuple[int, Iterable[Document]], counts: dict[str, int],
                runs: list[SpillRun] | None = None) -> Iterator[Any]:
        if runs is None:
            docs = sorted(bucket[1], key=lambda d: d.key)
        else:
            docs = [decode_document(k, v) for k, v in read_group(runs, bucket, bucket_count(counts, self._per_bucket))]
        rates = language_pass_rates(counts, self._alpha, self._params.dupe_factor)
        members: list[tuple[Document, int]] = []
        for doc in docs:
            self.took_in(doc.language)
            n = passes_for(rates[doc.language], self._seed, doc.key) if self._alpha != 1.0 else self._params.dupe_factor
            if n == 0:
                self.filtered(doc.language, "language_downsampled")
                continue
            self.out(doc.language)
            members.append((doc, n))
        yield from self._instances(members)
        del docs, members  # the bucket is done: its memory goes back to the system
        release_free_memory()

    def _instances(self, members: list[tuple[Document, int]]) -> Iterator[Any]:
        pool = Pool.from_arrays([(doc.ids, doc.bounds) for doc, _ in members])
        batch = InstanceBatch(self._params, self._vocab, self._spec)
        counts: dict[str, int] = {}
        for index, (doc, passes) in enumerate(members):
            made = 0
            for p in range(passes):
                rng = element_rng(self._seed, doc.key, p)
                pairs = create_segment_pairs(pool, index, self._params, rng)
                batch.add(pool, pairs, rng)
                made += len(pairs)
                if len(batch) >= BATCH_INSTANCES:  # after a pass, not a document: a batch stays bounded
                    yield batch.encode(pool)
            counts[doc.language] = counts.get(doc.language, 0) + made
        if len(batch):
            yield batch.encode(pool)
        for lang, n in sorted(counts.items()):
            yield beam.pvalue.TaggedOutput(INSTANCE_COUNTS, (lang, n))


class CreatePretrainingExamples(beam.PTransform):
    """Tokenised documents to lists of ``(sort_key, serialized Example)`` pairs, plus per-language
    counts.

    Documents are counted per language (a small side input) and placed by a seeded hash into
    ``round(N / docs_per_bucket)`` buckets (``placement.shard_of``, equal ranges of the hash); each
    bucket is the bounded pool the random next segments are drawn from. Off Dataflow (``spill``,
    see ``shards.WriteShards``) the documents go to run files in a hidden folder of ``temp_dir``
    (removed when the examples are made) and each bucket is read back from them, so the local
    runner never holds the tokenised corpus; on Dataflow a ``GroupByKey`` groups them. The
    examples are the same either way.
    """

    def __init__(self, seed: int, params: InstanceParams, vocab: VocabInfo, spec: specs.FeatureSpec,
                 language_alpha: float = 1.0, docs_per_bucket: int = 1000, temp_dir: str = "",
                 method: str = "auto") -> None:
        super().__init__()
        self._seed, self._params, self._vocab, self._spec = seed, params, vocab, spec
        self._alpha, self._per_bucket = language_alpha, docs_per_bucket
        self._temp_dir, self._method = temp_dir, method

    def expand(self, docs: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection, Accounted,
                                                      beam.PCollection]:
        """Returns the examples, ``(language, documents)`` counts, the sampling stage's accounting and
        ``(language, examples)`` counts."""
        counts = (docs | "Language" >> beam.Map(lambda d: d.language)
                  | "CountPerLanguage" >> beam.combiners.Count.PerElement())
        as_counts = beam.pvalue.AsDict(counts)
        create = _CreateInstances(self._seed, self._params, self._vocab, self._spec, self._alpha, self._per_bucket)
        outputs = (accounting.TALLY, accounting.DEAD_LETTER, INSTANCE_COUNTS)
        method = resolve_write_method(self._method, docs.pipeline)
        if method == "shuffle":
            made = (
                docs
                | "KeyByBucket" >> beam.ParDo(_KeyByBucket(self._seed, self._per_bucket), as_counts)
                | "GroupBuckets" >> beam.GroupByKey()
                | "CreateInstances" >> beam.ParDo(create, as_counts).with_outputs(*outputs, main="examples")
            )
        else:
            if not self._temp_dir:
                raise ValueError("CreatePretrainingExamples needs temp_dir to spill documents")
            temp = temp_folder(self._temp_dir, "documents")
            per_bucket = self._per_bucket
            runs = (docs | "SpillDocuments" >> beam.ParDo(_SpillDocuments(temp, self._seed))
                    | "ListRuns" >> beam.combiners.ToList())
            made = (
                runs
                | "BucketIndices" >> beam.FlatMap(lambda _, c: list(range(bucket_count(c, per_bucket))), as_counts)
                | "SpreadBuckets" >> beam.Reshuffle()
                | "CreateInstances" >> beam.ParDo(create, as_counts, beam.pvalue.AsSingleton(runs)).with_outputs(
                    *outputs, main="examples")
            )
            _ = (made[INSTANCE_COUNTS] | "BucketsDone" >> beam.combiners.Count.Globally()
                 | "RemoveTemp" >> beam.Map(lambda _, folder=temp: remove_folder(folder)))
        instances = made[INSTANCE_COUNTS] | "SumInstances" >> beam.CombinePerKey(sum)
        sampled = Accounted(made.examples, made[accounting.TALLY], made[accounting.DEAD_LETTER])
        return made.examples, counts, sampled, instances
