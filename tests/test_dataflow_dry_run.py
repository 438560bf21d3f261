"""Every pipeline builds a Dataflow job offline (``--dry_run=True``): fake project, region and gs://
temp location, the real ``--setup_file``; the job graph must serialise and name our transforms.

What this catches: DoFns or lambdas that do not pickle, construction-time I/O against gs:// outputs,
option clashes with Beam's own flags, a setup.py that does not build, and workers that would install
other versions than the lock pins (the staged ``requirements.txt`` is read back from the job).
"""

from __future__ import annotations

import importlib
import pathlib

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_runner_api_pb2

from specs import pins
from specs.errors import ConfigError
from transforms.core.runners import make_pipeline, pin_workers

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
    _assert_builds_for_dataflow(name, argv, expected_label)


@pytest.mark.slow
def test_scoring_translation_job_graph_serialises_for_dataflow(fake_text_embedder):
    """--score_with adds RunInference with our own ModelHandler; the export is a local folder here (a
    real job names a gs:// one), read at start-up to check it is a text embedder, never loaded."""
    argv, _ = JOBS["translation_pairs"]
    _assert_builds_for_dataflow("translation_pairs", [*argv, f"--score_with={fake_text_embedder}", "--min_margin=1.05"],
                                "ScorePairs/Embed")


@pytest.mark.slow
def test_mining_job_graph_serialises_for_dataflow(fake_text_embedder, tmp_path):
    """mine_pairs: RunInference, the block-pair CoGroupByKey and the neighbour CombineFn must pickle."""
    (tmp_path / "de.txt").write_text("Hallo Welt\n", encoding="utf-8")
    (tmp_path / "en.txt").write_text("Hello world\n", encoding="utf-8")
    _assert_builds_for_dataflow("mine_pairs", [f"--source={tmp_path / 'de.txt'}", "--source_language=deu",
                                               f"--target={tmp_path / 'en.txt'}", "--target_language=eng",
                                               f"--score_with={fake_text_embedder}", f"--output_dir={OUT}/mined"],
                                "MinePairs/BlockNeighbours")


def _assert_builds_for_dataflow(name: str, argv: list[str], expected_label: str) -> None:
    module = importlib.import_module(f"pipelines.{name}")
    options = PipelineOptions([*argv, *DATAFLOW])
    assert pin_workers(options, dry_run=True) == str(pins.DATAFLOW)  # as runtime._run does, before building
    pipeline = make_pipeline(options)
    module.build(pipeline, options)
    result = pipeline.run()
    job = result.job
    proto = job.proto_pipeline
    labels = [t.unique_name for t in proto.components.transforms.values()]
    assert len(labels) > 20
    assert any(expected_label in label for label in labels), labels[:20]
    assert job.json()  # the request Dataflow would receive serialises
    staged = _staged(proto)
    assert set(staged) >= {"requirements.txt", "workflow.tar.gz"}, staged
    _assert_pins_are_the_locks(pins.read_pins(staged["requirements.txt"]))


def _staged(proto) -> dict[str, str]:
    """``{staged name: local file}`` of every artifact the job's environments would stage."""
    found = {}
    for env in proto.components.environments.values():
        for artifact in env.dependencies:
            role = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(artifact.role_payload)
            found[role.staged_name] = beam_runner_api_pb2.ArtifactFilePayload.FromString(artifact.type_payload).path
    return found


def _assert_pins_are_the_locks(staged: dict[str, str]) -> None:
    lock = pins.read_pins(pins.LOCK)
    for name in pins.WORKER_CRITICAL:
        assert staged.get(name) == lock[name], (name, staged.get(name), lock[name])
    assert {n: v for n, v in staged.items() if lock.get(n) != v} == {}
    assert len(staged) > 100  # the whole closure of the pipeline's requirements, not a few names


def test_launcher_and_staged_pins_must_agree(tmp_path):
    """A requirements file pinning another Beam than the launcher's stops at start-up, in one line."""
    other = tmp_path / "requirements.txt"
    other.write_text("apache-beam[gcp]==2.0.0\nsix\n")
    options = PipelineOptions([*DATAFLOW, f"--requirements_file={other}"])
    with pytest.raises(ConfigError, match=r"^--requirements_file=.*apache-beam \S+ here, 2\.0\.0 pinned") as e:
        pin_workers(options, dry_run=True)
    assert "\n" not in str(e.value)
    missing = PipelineOptions([*DATAFLOW, f"--requirements_file={tmp_path / 'nope.txt'}"])
    with pytest.raises(ConfigError, match=r"nope\.txt: No such file"):
        pin_workers(missing, dry_run=True)
    # A custom container brings its own packages; the local runner stages nothing.
    assert pin_workers(PipelineOptions([*DATAFLOW, "--sdk_container_image=gcr.io/p/img:1"]), dry_run=True) is None
    assert pin_workers(PipelineOptions([]), dry_run=False) is None


def test_a_pin_mismatch_stops_the_job_before_its_run_folder_is_touched(tmp_path, capsys):
    from pipelines import vocab
    from transforms.core import runtime

    other = tmp_path / "requirements.txt"
    other.write_text("numpy==1.0.0\n")
    out = tmp_path / "out"
    argv = [f"--input_patterns={JOBS['vocab'][0][0].split('=', 1)[1]}", f"--output_dir={out}",
            *[a for a in DATAFLOW if a != "--dry_run=True"], f"--requirements_file={other}"]
    assert runtime.main("vocab", vocab.build, argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vocab: error: --requirements_file=") and "numpy" in err and "\n" not in err
    assert not out.exists()


@pytest.mark.slow
def test_the_documented_command_dry_run_says_what_workers_install(tmp_path, capsys):
    """docs/cloud.md's flags with --dry_run=True through the job's entry point: exit 0, and the workers'
    requirements are the lock's subset."""
    from pipelines import vocab
    from transforms.core import runtime

    argv = [f"--input_patterns={JOBS['vocab'][0][0].split('=', 1)[1]}", f"--output_dir={OUT}/vocab",
            "--vocab_size=1000", *DATAFLOW, "--requirements_file=requirements/dataflow.txt"]
    assert runtime.main("vocab", vocab.build, argv) == 0
    assert "  workers would install: requirements/dataflow.txt" in capsys.readouterr().out.splitlines()
