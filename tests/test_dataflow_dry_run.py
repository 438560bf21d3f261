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

from transforms.runtime import make_pipeline

REPO = pathlib.Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
DATAFLOW = ["--runner=DataflowRunner", "--project=polyembed-test", "--region=us-central1",
            "--temp_location=gs://polyembed-test-bucket/tmp", "--dry_run=True", f"--setup_file={REPO / 'setup.py'}",
            "--experiments=use_runner_v2"]

JOBS = {
    "stackexchange": ([f"--input={SAMPLES / 'stackexchange' / 'cycling.example.stackexchange.com'}",
                       "--output_dir=gs://polyembed-test-bucket/out/se", "--dedup=near"], "ParseRows"),
}


@pytest.mark.parametrize("name", sorted(JOBS))
def test_job_graph_serialises_for_dataflow(name):
    argv, expected_label = JOBS[name]
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
