"""Vertex AI submission: job specs for TPU, GPU and container pools, and the trainer-only wheel."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

from specs import pins
from trainer.launch import vertex as submit

REPO = pathlib.Path(__file__).resolve().parent.parent

COMMON = dict(display_name="j", experiment="labse/train", passthrough=["--params_override=a.b=1"],
              package_uris=["gs://b/p/polyembed_trainer-0.1.0-py3-none-any.whl", "tensorflow-text==2.17.*"],
              container_uri=None, executor_image_uri="us-docker.pkg.dev/vertex-ai/training/tf-tpu.2-17.py310:latest",
              gpu_count=1, machine_type=None, base_output_dir="gs://b/out")


def _pool(**kw):
    job = submit.job_spec(**{**COMMON, **kw})
    spec = json.loads(submit.validate_spec(job))  # the Vertex API types accept it
    (pool,) = spec["jobSpec"]["workerPoolSpecs"]
    return spec, pool


def test_tpu_pools():
    spec, pool = _pool(tpu_type="v3-8", gpu_type=None)
    assert pool["machineSpec"]["machineType"] == "cloud-tpu"
    assert pool["machineSpec"]["acceleratorType"] == "TPU_V3" and pool["machineSpec"]["acceleratorCount"] == 8
    args = pool["pythonPackageSpec"]["args"]
    assert args[0] == "--experiment=labse/train" and "--tpu=local" in args and "--mode=train_and_eval" in args
    assert spec["jobSpec"]["baseOutputDirectory"]["outputUriPrefix"] == "gs://b/out"
    _, pool = _pool(tpu_type="v5e-4", gpu_type=None)
    assert pool["machineSpec"]["machineType"] == "ct5lp-hightpu-4t" and pool["machineSpec"]["tpuTopology"] == "2x2"


def test_gpu_and_container_pools():
    _, pool = _pool(tpu_type=None, gpu_type="nvidia_tesla_v100", gpu_count=2)
    assert pool["machineSpec"] == {**pool["machineSpec"], "machineType": "n1-standard-16",
                                   "acceleratorType": "NVIDIA_TESLA_V100", "acceleratorCount": 2}
    assert "--tpu=local" not in pool["pythonPackageSpec"]["args"]
    _, pool = _pool(tpu_type=None, gpu_type="NVIDIA_L4", container_uri="us-docker.pkg.dev/p/r/polyembed:1")
    assert pool["containerSpec"]["imageUri"] == "us-docker.pkg.dev/p/r/polyembed:1"
    assert pool["containerSpec"]["command"] == ["python", "-m", "trainer.task"]
    assert "pythonPackageSpec" not in pool or not pool["pythonPackageSpec"].get("pythonModule")


def test_bad_combinations_fail_in_one_line():
    with pytest.raises(submit.SubmitError, match="no default machine type"):
        submit.machine_spec(None, "NVIDIA_H100_80GB", 3, None)
    with pytest.raises(submit.SubmitError, match="exclusive"):
        submit.machine_spec("v3-8", "NVIDIA_L4", 1, None)
    with pytest.raises(submit.SubmitError, match=r"runs TensorFlow 2\.17 on Python 3\.10; the lock pins TensorFlow"):
        submit.companion_requirements(COMMON["executor_image_uri"])
    with pytest.raises(submit.SubmitError, match="cannot tell its TensorFlow and Python versions"):
        submit.companion_requirements("gcr.io/p/my-image:1")


def test_prebuilt_image_companions_are_the_locks_pins():
    """A prebuilt image of the lock's TensorFlow gets every trainer pin but TensorFlow, as the lock pins it."""
    lock = pins.read_pins(pins.LOCK)
    for kind in ("cpu", "gpu", "tpu"):
        image = submit.default_image(kind)
        assert f"tf-{kind}.{'-'.join(lock['tensorflow'].split('.')[:2])}.py3" in image
        companions = dict(r.split("==") for r in submit.companion_requirements(image))
        assert {"tensorflow-text", "tf-keras", "tensorflow-hub", "pyyaml"} <= set(companions)
        assert "tensorflow" not in companions
        assert {n: v for n, v in companions.items() if lock.get(n) != v} == {}


@pytest.mark.slow
def test_dry_run_builds_the_trainer_wheel_and_prints_the_spec(tmp_path):
    r = subprocess.run([sys.executable, "-m", "trainer.submit", "--project=p", "--region=us-central1",
                        "--staging_bucket=gs://bkt", "--experiment=bert/pretraining", "--tpu_type=v3-8",
                        "--dry_run", "--", "--config_file=bert_tiny.yaml"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    spec = json.loads(r.stdout)
    uris = spec["jobSpec"]["workerPoolSpecs"][0]["pythonPackageSpec"]["packageUris"]
    assert uris[0].startswith("gs://bkt/polyembed/") and uris[0].endswith("-py3-none-any.whl")
    lock = pins.read_pins(pins.LOCK)
    companions = dict(u.split("==") for u in uris[1:])
    assert companions["tensorflow-text"] == lock["tensorflow-text"] and companions["tf-keras"] == lock["tf-keras"]
    assert {n: v for n, v in companions.items() if lock.get(n) != v} == {}
    wheel = submit.build_trainer_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert any(n.startswith("trainer/") for n in names) and any(n.startswith("specs/") for n in names)
    assert not any(n.startswith(("pipelines/", "transforms/")) for n in names)
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert requires and not any(x in " ".join(requires) for x in ("apache-beam", "tensorflow>", "tensorflow-text"))


def test_trainer_and_specs_import_nothing_from_the_pipeline_side():
    """The trainer wheel holds trainer/ and specs/ only, and training containers have no Beam."""
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parent.parent
    offenders = []
    for path in [*root.glob("trainer/**/*.py"), *root.glob("specs/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            offenders += [f"{path.relative_to(root)}: {n}" for n in names
                          if n.split(".")[0] in ("apache_beam", "pipelines", "transforms")]
    assert offenders == []


def test_container_install_uses_the_locks_pins(tmp_path):
    """The Dockerfile's install step (scripts/install_pins.sh), run with a pip that records its calls:
    TensorFlow as the chosen build at the lock's version, then every other pin exactly, without deps."""
    log = tmp_path / "calls.txt"
    fake = tmp_path / "pip"
    fake.write_text('#!/bin/sh\necho "CALL $*" >> "$LOG"\nfor a; do [ -f "$a" ] && cat "$a" >> "$LOG"; done\n'
                    'exit 0\n')
    fake.chmod(0o755)
    r = subprocess.run(["sh", str(REPO / "scripts" / "install_pins.sh"), str(pins.TRAINER), "tensorflow-tpu",
                        "-f", "https://example.invalid/index.html"], capture_output=True, text=True,
                       env={**os.environ, "PIP": str(fake), "LOG": str(log)})
    assert r.returncode == 0, r.stderr
    text = log.read_text()
    calls = [line for line in text.splitlines() if line.startswith("CALL ")]
    lock = pins.read_pins(pins.LOCK)
    assert calls[0].startswith(f"CALL install tensorflow-tpu=={lock['tensorflow']} -c ")
    assert calls[0].endswith("-f https://example.invalid/index.html")
    assert calls[1].startswith("CALL install --no-deps -r ") and len(calls) == 2
    # What the second call installs is the whole of trainer.txt but tensorflow, each as the lock pins it.
    installed = pins.read_pins(_write(tmp_path / "second.txt", text.split(calls[1], 1)[1]))
    assert set(installed) == set(pins.read_pins(pins.TRAINER)) - {"tensorflow"}
    assert {n: v for n, v in installed.items() if lock.get(n) != v} == {}
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "scripts/install_pins.sh requirements/trainer.txt" in dockerfile


def _write(path, text):
    path.write_text(text)
    return path
