"""What the pretraining job writes beside its shards: the feature spec and ``params.json``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

import specs
from transforms.pretraining.sampling import language_pass_rates

PARAMS_FILE = "params.json"
SHARD_PREFIX = "pretrain"
SIDECARS = (specs.SCHEMA_FILE, specs.SPEC_FILE, PARAMS_FILE)


class WriteSidecars(beam.DoFn):
    """Writes the spec and the parameters next to the data once it is written."""

    def __init__(self, output_dir: str, spec: specs.FeatureSpec, params: dict[str, Any]) -> None:
        self._dir, self._spec, self._params = output_dir, spec, params

    def process(self, written: int, doc_counts: dict[str, int], instance_counts: dict[str, int]) -> Iterator[str]:
        """Yields each path written."""
        def put(name: str, text: str) -> str:
            path = FileSystems.join(self._dir, name)
            with FileSystems.create(path) as f:
                f.write(text.encode("utf-8"))
            return path

        alpha, dupe = self._params["language_alpha"], self._params["dupe_factor"]
        rates = language_pass_rates(doc_counts, alpha, dupe) if alpha != 1.0 else dict.fromkeys(doc_counts, dupe)
        params = {**self._params, "records_written": written,
                  "languages": {lang: {"documents": doc_counts[lang], "passes_per_document": rates[lang],
                                       "examples": instance_counts.get(lang, 0)} for lang in sorted(doc_counts)},
                  "tlm_examples": {k: v for k, v in sorted(instance_counts.items()) if k.startswith("tlm:")}}
        yield put(specs.SCHEMA_FILE, self._spec.to_schema_text())
        yield put(specs.SPEC_FILE, self._spec.to_json())
        yield put(PARAMS_FILE, json.dumps(params, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        print("examples per language: " + ", ".join(f"{k}={v}" for k, v in sorted(instance_counts.items())))
