"""Every pipeline builds a Dataflow job offline (``--dry_run=True``): fake project, region and gs://
temp location, the real ``--setup_file``; the job graph must serialise and name our transforms.

What this catches: DoFns or lambdas that do not pickle, construction-time I/O against gs:// outputs,
option clashes with Beam's own flags, and a setup.py that does not build.
"""

from __future__ import annotations

import importlib
import pathlib

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from transforms.core.runtime import make_pipeline

REPO = pathlib.Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
DATAFLOW = ["--runner=DataflowRunner", "--project=polyembed-test", "--region=us-central1",
            "--temp_location=gs://polyembed-test-bucket/tmp", "--dry_run=True", f"--setup_file={REPO / 'setup.py'}",
            "--experiments=use_runner_v2"]

OUT = "gs://polyembed-test-bucket/out"
TEXT = SAMPLES / "text" / "cycling.multilingual.txt"
JOBS = {
    "stackexchange": ([f"--input={SAMPLES / 'stackexchange' / 'cycling.example.stackexchange.com'}",
                       f"--output_dir={OUT}/se", "--dedup=near"], "ParseRows"),
    "translation_pairs": ([f"--input={SAMPLES / 'translation'}/*.tsv", f"--output_dir={OUT}/tp",
                           f"--exclude={SAMPLES / 'translation' / 'cycling.deu-eng.tsv'}"], "Clean"),
    "dedup": ([f"--input={SAMPLES / 'text' / 'cycling.multilingual.jsonl'}", "--text_fields=text",
               f"--output_dir={OUT}/dedup", "--with_clusters"], "Near"),
    "vocab": ([f"--input_patterns={TEXT}", f"--output_dir={OUT}/vocab", "--vocab_size=1000"], "Count"),
    "pretrain_data": ([f"--input_patterns={TEXT}", f"--output_dir={OUT}/pretrain", "--max_seq_length=64",
                       "--max_predictions_per_seq=10"], "CreateExamples"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(JOBS))
def test_job_graph_serialises_for_dataflow(name, shared_data):
    argv, expected_label = JOBS[name]
    if name == "pretrain_data":
        argv = [*argv, f"--vocab_file={shared_data / 'vocab' / 'bert-base-multilingual-cased.vocab.txt'}"]
    module = importlib.import_module(f"pipelines.{name}")
    options = PipelineOptions([*argv, *DATAFLOW])
    pipeline = make_pipeline(options)
    module.build(pipeline, options)
    result = pipeline.run()
    job = result.job
    proto = job.proto_pipeline
    labels = [t.unique_name for t in proto.components.transforms.values()]
    assert len(labels) > 20
    assert any(expected_label in label for label in labels), labels[:20]
    assert job.json()  # the request Dataflow would receive serialises
