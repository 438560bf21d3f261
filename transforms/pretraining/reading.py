"""Reading the pretraining job's inputs on Beam: documents in one of three formats, accounted per
file, and the ``tf.train.Example`` records both documents and translation pairs may come as."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam

from transforms.core import accounting
from transforms.core import input_checks as checks
from transforms.core.accounting import Accounted, AccountedDoFn, DeadLetter
from transforms.core.formats import JSONL, TEXT
from transforms.core.lines import ReadLineBatches
from transforms.core.parse_lines import ParseLines
from transforms.core.seeding import stable_hash64
from transforms.core.tfrecords import ReadTFRecords
from transforms.pretraining.bert_text import ReadBertText
from transforms.pretraining.records import JsonDocumentParser, RawDocument, language_from_path
from transforms.text.sentences import split_sentences


class _CountTextLines(AccountedDoFn):
    """Accounts for the lines of the BERT text format: each is a sentence of a document or a
    blank separator line. The reader's checks are accounted as in every pipeline: stage
    ``read_input`` takes in every line (and each problem) and dead-letters the problems."""

    stage = "read_text"

    def process(self, doc: RawDocument | checks.InputProblem) -> Iterator[Any]:
        if isinstance(doc, checks.InputProblem):
            self.took_in(doc.path, stage=checks.READ_STAGE)
            yield self.dead_letter(doc.path, doc.letter(), stage=checks.READ_STAGE)
            return
        lines = len(doc.sentences) + doc.separators
        self.took_in(doc.source, lines, stage=checks.READ_STAGE)
        self.out(doc.source, lines, stage=checks.READ_STAGE)
        self.took_in(doc.source, lines)
        self.out(doc.source, len(doc.sentences))
        self.filtered(doc.source, "blank_line", doc.separators)
        if doc.sentences:
            yield doc


class ExampleRecordDoFn(AccountedDoFn):
    """``(path, serialized tf.train.Example)`` -> what ``from_features`` makes of the record's
    features, accounted per file under ``stage``; a record that is not an Example is a dead letter
    (``invalid_example``): a corrupt record is bad data, not a reason to stop the job."""

    def process(self, item: tuple[str, bytes]) -> Iterator[Any]:
        from tensorflow.core.example import example_pb2

        path, raw = item
        self.took_in(path)
        try:
            feats = example_pb2.Example.FromString(raw).features.feature
        except Exception as e:
            yield self.dead_letter(path, DeadLetter.make(self.stage, "invalid_example", raw[:200], source=path,
                                                         detail=str(e)))
            return
        yield from self.from_features(path, raw, feats)

    def from_features(self, path: str, raw: bytes, feats: Any) -> Iterator[Any]:
        """The outputs of one record (``feats``: its feature map); it has been taken in, and must
        now be counted out, filtered or dead-lettered."""
        raise NotImplementedError


class _ParseExampleDocuments(ExampleRecordDoFn):
    """``tf.train.Example`` documents: a bytes feature holding the text (one value: split into
    sentences; several: one sentence each) and optionally one holding the language."""

    stage = "read_tfrecord"

    def __init__(self, text_feature: str, language_feature: str, language_pattern: re.Pattern[str] | None) -> None:
        self._text, self._lang, self._pattern = text_feature, language_feature, language_pattern

    def from_features(self, path: str, raw: bytes, feats: Any) -> Iterator[Any]:
        if self._text not in feats or not feats[self._text].bytes_list.value:
            yield self.dead_letter(path, DeadLetter.make(self.stage, "missing_text_feature", raw[:200], source=path,
                                                         detail=f"no bytes feature {self._text!r}"))
            return
        raw_values = feats[self._text].bytes_list.value
        error = next(filter(None, (checks.utf8_error(v, f"feature {self._text!r}") for v in raw_values)), None)
        if error:
            yield self.dead_letter(path, DeadLetter.make(self.stage, checks.INVALID_UTF8, raw[:200], source=path,
                                                         detail=error))
            return
        values = [v.decode("utf-8") for v in raw_values]
        sentences = split_sentences(values[0]) if len(values) == 1 else [s.strip() for s in values if s.strip()]
        if not sentences:
            self.filtered(path, "empty_text")
            return
        lang_values = feats[self._lang].bytes_list.value if self._lang in feats else []
        language = lang_values[0].decode("utf-8", "ignore") if lang_values else language_from_path(self._pattern, path)
        self.out(path)
        yield RawDocument(path, stable_hash64(raw), language, sentences)


class ReadDocuments(beam.PTransform):
    """Input files of one format to ``RawDocument`` s, accounted per file.

    ``fmt`` is ``text`` (the BERT format), ``jsonl`` or ``tfrecord``.
    """

    def __init__(self, paths: Sequence[str], fmt: str, *, max_sentences: int = 10_000,
                 language_pattern: re.Pattern[str] | None = None, text_field: str = "text",
                 language_field: str = "lang") -> None:
        super().__init__()
        self._paths, self._fmt, self._max = list(paths), fmt, max_sentences
        self._pattern, self._text, self._lang = language_pattern, text_field, language_field

    def expand(self, pbegin: beam.pvalue.PBegin) -> Accounted:
        if self._fmt == TEXT:
            docs = pbegin | "ReadBertText" >> ReadBertText(self._paths, self._max, self._pattern)
            return accounting.apply_accounted(docs, "CountLines", _CountTextLines())
        if self._fmt == JSONL:
            frames = pbegin | "ReadJsonLines" >> ReadLineBatches(self._paths)
            docs = accounting.apply_accounted(frames.out, "ParseJson", ParseLines(
                "read_jsonl", JsonDocumentParser(self._text, self._lang, self._pattern)))
        else:
            frames = pbegin | "ReadRecords" >> ReadTFRecords(self._paths)
            docs = accounting.apply_accounted(frames.out, "ParseExamples",
                                              _ParseExampleDocuments(self._text, self._lang, self._pattern))
        return Accounted(docs.out, (frames.tally, docs.tally) | "Tallies" >> beam.Flatten(),
                         (frames.dead_letter, docs.dead_letter) | "DeadLetters" >> beam.Flatten())
