"""Submit ``python -m trainer.task`` to Vertex AI as a CustomJob.

    python -m trainer.submit --project=P --region=us-central1 --staging_bucket=gs://B \\
        --experiment=labse/train --tpu_type=v3-8 [--dry_run] -- --config_file=... --params_override=...

Builds the trainer-only wheel (``polyembed-trainer``: trainer/ and specs/, no TensorFlow pins; see
setup.py), uploads it to the staging bucket, and creates a CustomJob with one worker pool: a Python
package spec on a prebuilt TensorFlow image (``--executor_image_uri``), or with ``--container_uri`` a
custom container (see ``Dockerfile``) that already has the trainer installed from the lock's pins.
Prebuilt images carry TensorFlow but not tensorflow-text or tf-keras, so for a prebuilt image the wheels
of every pin in ``requirements/trainer.txt`` (the lock's pins for the trainer) but TensorFlow itself are
fetched from PyPI and uploaded beside ours; the image must run the lock's TensorFlow minor version and
Python, else the submission stops at start-up. Everything after ``--`` is passed to ``trainer.task``.
``--dry_run`` builds the wheel and prints the job spec as JSON without downloading, uploading or needing
credentials (companion wheels appear as their pins).

Vertex sets ``AIP_MODEL_DIR``, ``AIP_CHECKPOINT_DIR`` and ``AIP_TENSORBOARD_LOG_DIR`` under
``--base_output_dir`` (default ``STAGING_BUCKET/polyembed/<display name>``); the trainer honours them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from specs import pins
from trainer.experiments import NAMES

REPO = pathlib.Path(__file__).resolve().parents[2]
PYTHON_MODULE = "trainer.task"
EXPERIMENTS = tuple(NAMES)


def lock_tensorflow_and_python() -> tuple[str, str]:
    """The TensorFlow minor version (``2.21``) and Python (``3.11``) the lock pins: what a prebuilt
    image must run."""
    return ".".join(pins.read_pins(pins.TRAINER)["tensorflow"].split(".")[:2]), pins.lock_python()


def default_image(kind: str) -> str:
    """Vertex AI's prebuilt training image of the lock's TensorFlow minor version and Python, for
    ``kind`` cpu, gpu or tpu."""
    tf_minor, python = lock_tensorflow_and_python()
    return (f"us-docker.pkg.dev/vertex-ai/training/tf-{kind}.{tf_minor.replace('.', '-')}."
            f"py{python.replace('.', '')}:latest")


@dataclasses.dataclass(frozen=True)
class Tpu:
    machine_type: str
    accelerator_type: str | None = None
    accelerator_count: int = 0
    topology: str | None = None


# TPU VM shapes as Vertex AI names them: v2/v3 as "cloud-tpu" with an accelerator count, later
# generations as their own machine types with a topology.
TPU_TYPES = {
    "v2-8": Tpu("cloud-tpu", "TPU_V2", 8),
    "v3-8": Tpu("cloud-tpu", "TPU_V3", 8),
    "v4-8": Tpu("ct4p-hightpu-4t", topology="2x2x1"),
    "v5e-1": Tpu("ct5lp-hightpu-1t", topology="1x1"),
    "v5e-4": Tpu("ct5lp-hightpu-4t", topology="2x2"),
    "v5e-8": Tpu("ct5lp-hightpu-8t", topology="2x4"),
    "v6e-1": Tpu("ct6e-standard-1t", topology="1x1"),
    "v6e-4": Tpu("ct6e-standard-4t", topology="2x2"),
    "v6e-8": Tpu("ct6e-standard-8t", topology="2x4"),
}

# A machine type that can hold the GPUs, when --machine_type is not given.
GPU_MACHINES = {
    "NVIDIA_TESLA_T4": {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32"},
    "NVIDIA_TESLA_V100": {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32", 8: "n1-standard-64"},
    "NVIDIA_L4": {1: "g2-standard-8", 2: "g2-standard-24", 4: "g2-standard-48", 8: "g2-standard-96"},
    "NVIDIA_TESLA_A100": {1: "a2-highgpu-1g", 2: "a2-highgpu-2g", 4: "a2-highgpu-4g", 8: "a2-highgpu-8g"},
    "NVIDIA_A100_80GB": {1: "a2-ultragpu-1g", 2: "a2-ultragpu-2g", 4: "a2-ultragpu-4g", 8: "a2-ultragpu-8g"},
    "NVIDIA_H100_80GB": {8: "a3-highgpu-8g"},
}


class SubmitError(ValueError):
    """A bad combination of flags, reported in one line before anything is built or uploaded."""


def machine_spec(tpu_type: str | None, gpu_type: str | None, gpu_count: int, machine_type: str | None) -> dict:
    if tpu_type and gpu_type:
        raise SubmitError("--tpu_type and --gpu_type are exclusive")
    if tpu_type:
        if tpu_type not in TPU_TYPES:
            raise SubmitError(f"--tpu_type {tpu_type!r}: choose from {', '.join(TPU_TYPES)}")
        t = TPU_TYPES[tpu_type]
        spec: dict[str, Any] = {"machine_type": machine_type or t.machine_type}
        if t.accelerator_type:
            spec.update(accelerator_type=t.accelerator_type, accelerator_count=t.accelerator_count)
        if t.topology:
            spec["tpu_topology"] = t.topology
        return spec
    if gpu_type:
        gpu_type = gpu_type.upper()
        if gpu_count < 1:
            raise SubmitError("--gpu_count must be at least 1")
        if not machine_type:
            options = GPU_MACHINES.get(gpu_type, {})
            if gpu_count not in options:
                raise SubmitError(f"no default machine type for {gpu_count} x {gpu_type}; pass --machine_type")
            machine_type = options[gpu_count]
        return {"machine_type": machine_type, "accelerator_type": gpu_type, "accelerator_count": gpu_count}
    return {"machine_type": machine_type or "n1-standard-8"}


def trainer_args(experiment: str, passthrough: Sequence[str], tpu: bool) -> list[str]:
    args = [f"--experiment={experiment}", *passthrough]
    if not any(a == "--mode" or a.startswith("--mode=") for a in passthrough):
        args.append("--mode=train_and_eval")
    if tpu and not any(a == "--tpu" or a.startswith("--tpu=") for a in passthrough):
        args.append("--tpu=local")  # Vertex TPU VMs: TPUClusterResolver(tpu="local")
    return args


def job_spec(*, display_name: str, experiment: str, passthrough: Sequence[str], package_uris: Sequence[str],
             container_uri: str | None, executor_image_uri: str | None, tpu_type: str | None,
             gpu_type: str | None, gpu_count: int, machine_type: str | None, base_output_dir: str,
             service_account: str | None = None, tensorboard: str | None = None) -> dict:
    """The CustomJob as the Vertex AI API takes it (``google.cloud.aiplatform_v1.types.CustomJob``)."""
    spec = machine_spec(tpu_type, gpu_type, gpu_count, machine_type)
    args = trainer_args(experiment, passthrough, tpu=bool(tpu_type))
    pool: dict[str, Any] = {"machine_spec": spec, "replica_count": 1,
                            "disk_spec": {"boot_disk_type": "pd-ssd", "boot_disk_size_gb": 100}}
    if container_uri:
        pool["container_spec"] = {"image_uri": container_uri,
                                  "command": ["python", "-m", PYTHON_MODULE], "args": args}
    else:
        pool["python_package_spec"] = {"executor_image_uri": executor_image_uri,
                                       "package_uris": list(package_uris), "python_module": PYTHON_MODULE,
                                       "args": args}
    job: dict[str, Any] = {
        "display_name": display_name,
        "job_spec": {"worker_pool_specs": [pool], "base_output_directory": {"output_uri_prefix": base_output_dir}},
    }
    if service_account:
        job["job_spec"]["service_account"] = service_account
    if tensorboard:
        job["job_spec"]["tensorboard"] = tensorboard
    return job


def validate_spec(job: dict) -> str:
    """Round-trips the spec through the Vertex AI API types (catching misspelt fields) and returns it
    as the API's JSON."""
    from google.cloud.aiplatform_v1.types import CustomJob

    return CustomJob.to_json(CustomJob(job), indent=2, use_integers_for_enums=False)


def build_trainer_wheel(out_dir: pathlib.Path) -> pathlib.Path:
    """Builds the ``polyembed-trainer`` wheel without network access."""
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out_dir), str(REPO)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   env={**os.environ, "POLYEMBED_DIST": "trainer"})
    (wheel,) = sorted(out_dir.glob("polyembed_trainer-*.whl"))
    return wheel


def companion_requirements(executor_image_uri: str) -> list[str]:
    """The lock's pins for the trainer (``requirements/trainer.txt``) but TensorFlow, which the prebuilt
    image brings: after checking that the image (``.../tf-gpu.2-21.py311:latest``) runs the lock's
    TensorFlow minor version and Python."""
    m = re.search(r"tf-(?:cpu|gpu|tpu)\.(\d+)-(\d+)\.py3(\d+)", executor_image_uri)
    if not m:
        raise SubmitError(f"--executor_image_uri={executor_image_uri}: cannot tell its TensorFlow and Python "
                          "versions (expected a Vertex AI prebuilt image name such as tf-cpu.2-21.py311); "
                          "use --container_uri (see Dockerfile)")
    image = f"{m.group(1)}.{m.group(2)}", f"3.{m.group(3)}"
    trainer_pins = pins.read_pins(pins.TRAINER)
    if image != lock_tensorflow_and_python():
        raise SubmitError(f"--executor_image_uri={executor_image_uri} runs TensorFlow {image[0]} on Python "
                          f"{image[1]}; the lock pins TensorFlow {trainer_pins['tensorflow']} on Python "
                          f"{pins.lock_python()}: give an image of those or use --container_uri (see Dockerfile)")
    return [f"{name}=={version}" for name, version in sorted(trainer_pins.items()) if name != "tensorflow"]


def download_wheels(requirements: Sequence[str], out_dir: pathlib.Path) -> list[pathlib.Path]:
    """The wheels of pinned ``requirements`` for the image's platform (Linux x86-64, the lock's Python)."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "--platform=manylinux_2_28_x86_64", f"--python-version={pins.lock_python()}",
                    "-d", str(out_dir), *requirements], check=True, stdout=subprocess.DEVNULL)
    return sorted(out_dir.glob("*.whl"))


def submit(args: argparse.Namespace, passthrough: Sequence[str]) -> int:
    """Builds (or names) what the job runs, writes its spec and, unless ``--dry_run``, uploads and submits
    it (``python -m trainer.submit``'s flags: ``trainer.cli.submit_parser``). Returns the exit status."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = args.display_name or f"polyembed-{args.experiment.replace('/', '-')}-{stamp}"
    bucket = args.staging_bucket.rstrip("/")
    base_output = args.base_output_dir or f"{bucket}/polyembed/{name}"
    image = args.executor_image_uri or default_image("tpu" if args.tpu_type else "gpu" if args.gpu_type else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        uploads: list[tuple[pathlib.Path, str]] = []
        package_uris: list[str] = []
        try:
            if not args.container_uri:
                wheel = build_trainer_wheel(pathlib.Path(tmp))
                uploads.append((wheel, f"{bucket}/polyembed/{name}/{wheel.name}"))
                companions = companion_requirements(image)
                if args.dry_run:
                    package_uris = [uploads[0][1], *companions]
                else:
                    for w in download_wheels(companions, pathlib.Path(tmp) / "deps"):
                        uploads.append((w, f"{bucket}/polyembed/{name}/deps/{w.name}"))
                    package_uris = [uri for _, uri in uploads]
            job = job_spec(display_name=name, experiment=args.experiment, passthrough=passthrough,
                           package_uris=package_uris, container_uri=args.container_uri, executor_image_uri=image,
                           tpu_type=args.tpu_type, gpu_type=args.gpu_type, gpu_count=args.gpu_count,
                           machine_type=args.machine_type, base_output_dir=base_output,
                           service_account=args.service_account, tensorboard=args.tensorboard)
        except SubmitError as e:
            print(f"trainer.submit: error: {e}", file=sys.stderr)
            return 2
        spec_json = validate_spec(job)
        if args.dry_run:
            print(spec_json)
            return 0
        from google.cloud import aiplatform, storage

        client = storage.Client(project=args.project)
        for path, uri in uploads:
            bucket_name, _, key = uri[len("gs://"):].partition("/")
            client.bucket(bucket_name).blob(key).upload_from_filename(str(path))
        aiplatform.init(project=args.project, location=args.region, staging_bucket=bucket)
        custom_job = aiplatform.CustomJob(
            display_name=name, worker_pool_specs=job["job_spec"]["worker_pool_specs"], base_output_dir=base_output)
        custom_job.submit(service_account=args.service_account, tensorboard=args.tensorboard)
        print(json.dumps({"job": custom_job.resource_name, "base_output_dir": base_output}))
    return 0

