"""Reading the BERT text format (a sentence per line, blank lines between documents) on Beam,
splittably by byte range."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io import filebasedsource
from apache_beam.io.filesystem import CompressionTypes

from transforms.core import input_checks as checks
from transforms.core.lines import CheckedTextSource, lines_from
from transforms.pretraining.records import RawDocument, language_from_path


class _BertTextSource(CheckedTextSource):
    """Reads the BERT text format (a sentence per line, blank lines between documents) as
    ``RawDocument`` s, splittably.

    A document belongs to the byte range holding the blank line just before it (the first
    document of a file to the range holding offset 0), and a reader continues past the end of its
    range to finish its last document, the way line-based text reading treats lines. Each blank
    line is claimed as a split point and accounted for by the document it starts (consecutive blank
    lines give empty documents that carry only their separator). A document longer than
    ``max_sentences`` lines is cut into parts so no worker ever holds an unbounded one.

    The checks every reader makes (``transforms.core.input_checks``) come out as ``InputProblem`` s: a
    file that is not text gives one and no documents, a line that is not UTF-8 gives one and is
    left out of its document, and a compressed stream that breaks off gives one in place of its
    partial last line.
    """

    def __init__(self, file_pattern: str, max_sentences: int, language: str, **kwargs: Any) -> None:
        super().__init__(file_pattern, **kwargs)
        self._max = max_sentences
        self._language = language

    def read_text(self, file_name: str, range_tracker: Any, start: int,
                  cr_only: bool) -> Iterator[RawDocument | checks.InputProblem]:
        sentences: list[str] | None = None  # None: skipping lines of a document another range owns
        offset, separators = 0, 0
        if start == 0:
            if not range_tracker.try_claim(0):
                return
            sentences = []
        try:
            with checks.open_checked(file_name) as f:
                for off, raw in lines_from(f, start, cr_only):
                    if raw.strip():
                        if sentences is None:
                            continue
                        try:  # decoded once; only a line that fails goes through the shared check
                            sentence = raw.decode("utf-8").strip()
                        except UnicodeDecodeError:
                            yield checks.utf8_problem(file_name, off, raw)
                            continue
                        if not sentences and not separators:
                            offset = off
                        sentences.append(sentence)
                        if len(sentences) >= self._max:
                            yield RawDocument(file_name, offset, self._language, sentences, separators)
                            sentences, separators = [], 0
                        continue
                    if sentences is not None and (sentences or separators):
                        yield RawDocument(file_name, offset, self._language, sentences, separators)
                    if not (off == 0 and start == 0) and not range_tracker.try_claim(off):
                        return
                    sentences, offset, separators = [], off, 1
        except checks.TruncatedInputError as e:
            if sentences or separators:  # the whole lines before the break are read as usual
                yield RawDocument(file_name, offset, self._language, sentences or [], separators)
            yield e.problem(file_name)
            return
        if sentences or separators:
            yield RawDocument(file_name, offset, self._language, sentences or [], separators)


class ReadBertText(beam.PTransform):
    """Files in the BERT text format to ``RawDocument`` s, split across workers by byte range."""

    def __init__(self, paths: Sequence[str], max_sentences: int, language_pattern: re.Pattern[str] | None,
                 desired_bundle_size: int = 64 << 20) -> None:
        super().__init__()
        self._paths = list(paths)
        self._max = max_sentences
        self._pattern = language_pattern
        self._bundle = desired_bundle_size

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        max_sentences, pattern = self._max, self._pattern

        def source_from_file(path: str) -> _BertTextSource:
            return _BertTextSource(path, max_sentences, language_from_path(pattern, path),
                                   compression_type=CompressionTypes.AUTO, validate=False)

        return (
            pbegin
            | "Paths" >> beam.Create(self._paths)
            | "ReadRanges" >> filebasedsource.ReadAllFiles(
                True, CompressionTypes.AUTO, self._bundle, 1 << 20, source_from_file, False)
        )
