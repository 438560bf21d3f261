"""Vocabulary job inputs: which files are text or JSONL, their languages, and a line as ``(language, text)``."""

from __future__ import annotations

import dataclasses
import json

from specs.errors import ConfigError
from transforms.core import formats
from transforms.core.formats import JSONL, TEXT
from transforms.core.records import BadRecordError, language_of_path, language_pattern


@dataclasses.dataclass(frozen=True)
class InputConfig:
    """How input lines become ``(language, text)``."""

    fmt: str = "auto"  # "text" (sentence per line), "jsonl", or "auto" (by file name)
    text_field: str = "text"
    language_field: str = ""
    language_pattern: str = ""  # regex on the file path; group 1 is the language
    default_language: str = "und"

    def validate(self) -> None:
        if self.fmt not in ("auto", TEXT, JSONL):
            raise ConfigError(f"--input_format must be auto, text or jsonl, not {self.fmt!r}")
        language_pattern(self.language_pattern)

    def format_of(self, path: str) -> str:
        """``--input_format``; with ``auto``, JSONL by the file's name (``formats.format_of``), else text."""
        if self.fmt != "auto":
            return self.fmt
        return formats.format_of(path, (JSONL,)) or TEXT

    def language_of_path(self, path: str) -> str:
        """The file's language by ``--language_pattern``, else ``--default_language``."""
        return language_of_path(language_pattern(self.language_pattern), path, self.default_language)



def parse_jsonl_record(line: bytes, text_field: str, language_field: str, default_language: str) -> tuple[str, str]:
    """``(language, text)`` of one JSONL document; raises ``BadRecordError`` for unusable lines."""
    try:
        doc = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRecordError("invalid_json", str(e)) from None
    if not isinstance(doc, dict):
        raise BadRecordError("not_an_object", type(doc).__name__)
    if text_field not in doc:
        raise BadRecordError("missing_text_field", f"no {text_field!r} in {sorted(doc)[:10]}")
    text = doc[text_field]
    if not isinstance(text, str):
        raise BadRecordError("text_not_a_string", type(text).__name__)
    lang = default_language
    if language_field:
        value = doc.get(language_field)
        if isinstance(value, str) and value.strip():
            lang = value.strip()
        elif value is not None and not isinstance(value, str):
            raise BadRecordError("language_not_a_string", type(value).__name__)
    return lang, text



def decode_line(raw: bytes) -> str:
    """UTF-8 with invalid bytes dropped, as the BERT reference reads its input."""
    return raw.decode("utf-8", errors="ignore")

