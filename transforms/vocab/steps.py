"""The vocabulary job on Beam: words counted per language in bounded memory, weighted and pruned to the
learner's input, the learner run once, and its vocabulary checked against the training text."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from transforms.core.accounting import Accounted, AccountedDoFn, DeadLetter, apply_accounted
from transforms.core.lines import LineBatch, ReadLineBatches
from transforms.core.records import BadRecordError
from transforms.vocab.learner import weighted_count
from transforms.vocab.pretokenize import pre_tokenize
from transforms.vocab.records import JSONL, InputConfig, decode_line, parse_jsonl_record


class _CountWords(AccountedDoFn):
    """Pre-tokenises each line (a sentence, or a JSONL document) and counts words per language.

    Outputs ``((language, word), count)`` summed over a bundle; the combiner downstream does the
    rest. Each line is one record: out if it has words, filtered if blank (a document
    boundary in the BERT format) or without words, dead-lettered if it is an unusable JSONL line.
    """

    stage = "count_words"
    # Counts are combined over the whole bundle before they leave the DoFn (a Beam element costs
    # microseconds, a dict update nanoseconds); past this many distinct keys they are flushed, which
    # bounds the memory a bundle can take.
    FLUSH_AT = 200_000

    def __init__(self, inputs: InputConfig, lower: bool) -> None:
        self._inputs = inputs
        self._lower = lower

    def start_bundle(self) -> None:
        super().start_bundle()
        self._counts: dict[str, collections.Counter] = {}
        self._keys = 0

    def _flush(self) -> Iterator[tuple[tuple[str, str], int]]:
        for lang, counts in self._counts.items():
            for word, n in counts.items():
                yield (lang, word), n
        self._counts = {}
        self._keys = 0

    def finish_bundle(self) -> Iterator[Any]:
        for kv in self._flush():
            yield WindowedValue(kv, MIN_TIMESTAMP, [GlobalWindow()])
        yield from super().finish_bundle()

    def process(self, batch: LineBatch) -> Iterator[Any]:
        cfg = self._inputs
        fmt = cfg.format_of(batch.path)
        path_lang = cfg.language_of_path(batch.path)
        for offset, raw in batch.lines:
            self.took_in(batch.path)
            if not raw.strip():
                self.filtered(batch.path, "blank_line")
                continue
            if fmt == JSONL:
                try:
                    lang, text = parse_jsonl_record(raw, cfg.text_field, cfg.language_field, path_lang)
                except BadRecordError as e:
                    yield self.dead_letter(batch.path, DeadLetter.make(
                        self.stage, e.reason, raw, source=batch.path, offset=offset, detail=str(e)))
                    continue
            else:
                lang, text = path_lang, decode_line(raw)
            words = pre_tokenize(text, self._lower)
            if not words:
                self.filtered(batch.path, "no_words")
                continue
            self.out(batch.path)
            counts = self._counts.get(lang)
            if counts is None:
                counts = self._counts[lang] = collections.Counter()
            before = len(counts)
            counts.update(words)
            self._keys += len(counts) - before
        if self._keys >= self.FLUSH_AT:
            yield from self._flush()


class CountWordsByLanguage(beam.PTransform):
    """Files -> ``((language, word), count)`` over the whole corpus, in bounded memory (a combiner)."""

    def __init__(self, paths: Sequence[str], inputs: InputConfig, lower: bool) -> None:
        super().__init__()
        self._paths = list(paths)
        self._inputs = inputs
        self._lower = lower

    def expand(self, pbegin: beam.pvalue.PBegin) -> Accounted:
        lines = pbegin | "ReadLines" >> ReadLineBatches(self._paths)
        res = apply_accounted(lines.out, "PreTokenize", _CountWords(self._inputs, self._lower))
        counts = res.out | "SumPerLanguageWord" >> beam.CombinePerKey(sum)
        return Accounted(counts, (lines.tally, res.tally) | "Tallies" >> beam.Flatten(),
                         (lines.dead_letter, res.dead_letter) | "DeadLetters" >> beam.Flatten())


# --- from counts to the learner's input -----------------------------------------------------------

class SumTuples(beam.CombineFn):
    """Element-wise sum of fixed-length integer tuples.

    Kept rather than Beam's ``beam.combiners.TupleCombineFn``, which is slower here: summing 1e6
    tuples of width 5 on the DirectRunner (CPU of the combine alone), ours 511k tuples/s with
    CombineGlobally and 644k/s with CombinePerKey (50 keys, as the job sums per language);
    TupleCombineFn(sum, ...) 0.31x and 0.27x of that, TupleCombineFn of Beam's SumInt64Fn 0.79x and
    0.35x (whole pipeline: 0.95x and 0.70x) (``python bench/sum_tuples.py``, Beam 2.77).
    """

    def __init__(self, width: int) -> None:
        self._width = width

    def create_accumulator(self) -> tuple[int, ...]:
        return (0,) * self._width

    def add_input(self, acc: tuple[int, ...], x: Sequence[int]) -> tuple[int, ...]:
        return tuple(a + b for a, b in zip(acc, x, strict=True))

    def merge_accumulators(self, accs: Iterable[tuple[int, ...]]) -> tuple[int, ...]:
        out = (0,) * self._width
        for acc in accs:
            out = tuple(a + b for a, b in zip(out, acc, strict=True))
        return out

    def extract_output(self, acc: tuple[int, ...]) -> tuple[int, ...]:
        return acc


def language_totals(lang_word_counts: beam.PCollection) -> beam.PCollection:
    """``(language, (words, distinct_words, characters))`` per language, characters counted without
    whitespace. Characters, not words, measure a language's size for smoothing: Thai, Khmer, Burmese
    and Japanese do not separate words by spaces, so their pre-tokens are phrases and a word count
    would call them tiny."""
    return (
        lang_word_counts
        | "PerLanguage" >> beam.Map(lambda kv: (kv[0][0], (kv[1], 1, kv[1] * len(kv[0][1]))))
        | "SumPerLanguage" >> beam.CombinePerKey(SumTuples(3))
    )


class SelectLearnerWords(beam.PTransform):
    """``((language, word), count)`` -> the learner's input: words and characters with weighted counts.

    Counts are multiplied by the language weights (a small side input) and summed over languages.
    Words below ``min_word_count`` are dropped (rare words are mostly typos, numbers and names and cost
    learner time) and the ``max_words`` most frequent remain (``Top`` keeps bounded accumulators).
    Characters are counted over all words, pruned ones included, and the ``max_chars`` most frequent
    form the alphabet: the learner would otherwise only know characters of the words it sees, and a
    rare CJK character missing from the vocabulary makes its whole word ``[UNK]``.

    Returns ``(words, chars, stats)``: two sorted singleton lists of ``(string, count)`` and
    ``(all_words, all_mass, kept_words, kept_mass)`` for the report.
    """

    def __init__(self, min_word_count: int, max_words: int, max_chars: int) -> None:
        super().__init__()
        self._min = min_word_count
        self._max = max_words
        self._max_chars = max_chars

    def expand(self, inputs: tuple[beam.PCollection, beam.PCollection]) -> tuple[beam.PCollection, ...]:
        lang_word_counts, weights = inputs
        min_count = self._min
        weighted = (
            lang_word_counts
            | "Weight" >> beam.Map(lambda kv, w: (kv[0][1], weighted_count(kv[1], w.get(kv[0][0], 1.0))),
                                   beam.pvalue.AsSingleton(weights))
            | "SumOverLanguages" >> beam.CombinePerKey(sum)
        )
        stats = (
            weighted
            | "PruneStats" >> beam.Map(lambda kv: (1, kv[1], int(kv[1] >= min_count), kv[1] * (kv[1] >= min_count)))
            | "SumPruneStats" >> beam.CombineGlobally(SumTuples(4))
        )
        words = (
            weighted
            | "DropRare" >> beam.Filter(lambda kv: kv[1] >= min_count)
            | "MostFrequentWords" >> beam.combiners.Top.Of(self._max, key=lambda kv: (kv[1], kv[0]))
            | "SortWords" >> beam.Map(lambda kvs: sorted(kvs, key=lambda kv: (-kv[1], kv[0])))
        )
        chars = (
            weighted
            | "Characters" >> beam.FlatMap(lambda kv: [(ch, kv[1] * k) for ch, k in collections.Counter(kv[0]).items()])
            | "SumCharacters" >> beam.CombinePerKey(sum)
            | "MostFrequentChars" >> beam.combiners.Top.Of(self._max_chars, key=lambda kv: (kv[1], kv[0]))
            | "SortChars" >> beam.Map(lambda kvs: sorted(kvs, key=lambda kv: (-kv[1], kv[0])))
        )
        return words, chars, stats


