"""Tokenising on Beam in batches: the WordPiece tokenizer is fast per batch of a few thousand
sentences and slow per call, so elements are buffered per bundle and tokenised together."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from transforms.core import accounting
from transforms.core.accounting import Accounted, AccountedDoFn
from transforms.pretraining.records import Document, RawDocument, document_key
from transforms.text.bert_tokenization import BertTokenizer


class BatchingDoFn(AccountedDoFn):
    """Buffers elements of a bundle and processes them together (the tokenizer is fast per batch,
    slow per call); results leave at the latest when the bundle finishes."""

    batch_lines = 4096

    def start_bundle(self) -> None:
        super().start_bundle()
        self._buffer: list[Any] = []
        self._buffered = 0

    def _size(self, element: Any) -> int:
        raise NotImplementedError

    def _flush(self) -> list[Any]:
        raise NotImplementedError

    def process(self, element: Any) -> Iterator[Any]:
        self._buffer.append(element)
        self._buffered += self._size(element)
        if self._buffered >= self.batch_lines:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[Any]:
        for out in self._flush():
            if isinstance(out, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(out.tag, WindowedValue(out.value, MIN_TIMESTAMP, [GlobalWindow()]))
            else:
                yield WindowedValue(out, MIN_TIMESTAMP, [GlobalWindow()])
        yield from super().finish_bundle()


class _TokenizeDocuments(BatchingDoFn):
    """Sentences to WordPiece ids; a sentence without tokens is dropped as the reference drops it,
    a document left without sentences is dropped after it."""

    stage = "tokenize"

    def __init__(self, tokenizer: BertTokenizer) -> None:
        self._tokenizer = tokenizer

    def _size(self, doc: RawDocument) -> int:
        return len(doc.sentences)

    def _flush(self) -> list[Any]:
        docs, self._buffer, self._buffered = self._buffer, [], 0
        if not docs:
            return []
        ids = self._tokenizer.tokenize_batch([s for d in docs for s in d.sentences])
        out: list[Any] = []
        k = 0
        for doc in docs:
            sentences = [a for a in ids[k:k + len(doc.sentences)] if len(a)]
            k += len(doc.sentences)
            self.took_in(doc.source, len(doc.sentences))
            self.out(doc.source, len(sentences))
            self.filtered(doc.source, "no_tokens", len(doc.sentences) - len(sentences))
            if sentences:
                lengths = np.fromiter((len(a) for a in sentences), dtype=np.int64, count=len(sentences))
                bounds = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
                out.append(Document(document_key(doc), doc.language, np.concatenate(sentences), bounds))
        return out


class TokenizeDocuments(beam.PTransform):
    """``RawDocument`` s to ``Document`` s of ids, tokenised in batches of a few thousand lines."""

    def __init__(self, tokenizer: BertTokenizer) -> None:
        super().__init__()
        self._tokenizer = tokenizer

    def expand(self, docs: beam.PCollection) -> Accounted:
        return accounting.apply_accounted(docs, "Tokenize", _TokenizeDocuments(self._tokenizer))
