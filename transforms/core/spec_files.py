"""A spec's files next to the data it describes: ``schema.pbtxt`` (TF Metadata) and
``feature_spec.json``."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from specs import SCHEMA_FILE, SPEC_FILE, FeatureSpec


def write_spec_files(spec: FeatureSpec, directory: str) -> None:
    """Writes ``schema.pbtxt`` (TF Metadata) and ``feature_spec.json`` into ``directory``."""
    for name, text in ((SCHEMA_FILE, spec.to_schema_text()), (SPEC_FILE, spec.to_json())):
        with FileSystems.create(FileSystems.join(directory, name)) as f:
            f.write(text.encode("utf-8"))


class WriteSpec(beam.PTransform):
    """Writes a spec's files next to the data as a step of the pipeline (not at construction, so that
    building a job, e.g. a Dataflow ``--dry_run``, touches no storage)."""

    def __init__(self, spec: FeatureSpec, directory: str) -> None:
        super().__init__()
        self._spec, self._dir = spec, directory

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        spec, directory = self._spec, self._dir
        return (pbegin | "Spec" >> beam.Create([directory])
                | "WriteSpecFiles" >> beam.Map(lambda d: write_spec_files(spec, d) or d))
