"""The pretraining job's records (no Beam): documents as read and as tokenised, their keys and
languages, a JSON line as a document, and a tokenised document as bytes for a spilled run."""

from __future__ import annotations

import dataclasses
import json
import re
import struct
from typing import NamedTuple

import numpy as np

from transforms.core.records import BadRecordError, RecordFiltered, language_of_path
from transforms.core.seeding import stable_hash128
from transforms.text.sentences import split_sentences

UNDETERMINED = "und"  # the language of a document that names none


class RawDocument(NamedTuple):
    """A document as read: its sentences, where it came from, and how many input records (lines,
    JSON lines, TFRecords) it accounts for beyond its sentences (blank separator lines)."""

    source: str
    offset: int
    language: str
    sentences: list[str]
    separators: int = 0


class Document(NamedTuple):
    """A tokenised document: sentence ``i`` is ``ids[bounds[i]:bounds[i + 1]]``."""

    key: bytes
    language: str
    ids: np.ndarray
    bounds: np.ndarray


def document_key(doc: RawDocument) -> bytes:
    """Identity of a document for seeding: its text and its byte offset, not its path, so the same
    files give the same records wherever they are stored."""
    return stable_hash128("\n".join(doc.sentences), doc.offset)


def language_from_path(pattern: re.Pattern[str] | None, path: str) -> str:
    """A document's language by ``--language_pattern`` (``core.records.language_of_path``), else ``und``."""
    return language_of_path(pattern, path, UNDETERMINED)


@dataclasses.dataclass(frozen=True)
class JsonDocumentParser:
    """A JSON line (``{"text": ..., "lang": ...}``) -> a ``RawDocument`` split into sentences (the parse
    function of ``core.parse_lines.ParseLines``): a line that is not JSON, or has no string text field,
    is a bad record; a text without sentences is filtered (``empty_text``). The language is the
    record's field, else the one ``language_pattern`` finds in the path."""

    text_field: str
    language_field: str
    language_pattern: re.Pattern[str] | None

    def __call__(self, path: str, offset: int, raw: bytes) -> RawDocument:
        try:
            record = json.loads(raw)
        except ValueError as e:
            raise BadRecordError("invalid_json", str(e)) from None
        text = record.get(self.text_field) if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise BadRecordError("missing_text_field", f"no string field {self.text_field!r}")
        sentences = split_sentences(text)
        if not sentences:
            raise RecordFiltered("empty_text")
        lang = record.get(self.language_field)
        language = lang if isinstance(lang, str) and lang else language_from_path(self.language_pattern, path)
        return RawDocument(path, offset, language, sentences)


_DOC_HEADER = struct.Struct(">HH")  # language length, ids dtype length


def encode_document(doc: Document) -> bytes:
    """A tokenised document as bytes for a spilled run (its key travels beside it)."""
    language, dtype = doc.language.encode("utf-8"), doc.ids.dtype.str.encode("ascii")
    bounds = np.asarray(doc.bounds, dtype="<i8")
    return b"".join((_DOC_HEADER.pack(len(language), len(dtype)), language, dtype,
                     len(bounds).to_bytes(4, "big"), bounds.tobytes(), doc.ids.tobytes()))


def decode_document(key: bytes, data: bytes) -> Document:
    lang_len, dtype_len = _DOC_HEADER.unpack_from(data)
    pos = _DOC_HEADER.size
    language = data[pos:pos + lang_len].decode("utf-8")
    dtype = np.dtype(data[pos + lang_len:pos + lang_len + dtype_len].decode("ascii"))
    pos += lang_len + dtype_len
    n = int.from_bytes(data[pos:pos + 4], "big")
    bounds = np.frombuffer(data, dtype="<i8", count=n, offset=pos + 4)
    ids = np.frombuffer(data, dtype=dtype, offset=pos + 4 + 8 * n)
    return Document(key, language, ids, bounds)
