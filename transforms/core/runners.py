"""Which runner runs a job, and what a remote runner's workers install.

The DirectRunner request goes to Beam's in-process FnApiRunner (``local_runner``); any other runner
(Dataflow) gets its workers pinned to the launcher's versions (``pin_workers``): the lock's
``requirements/dataflow.txt`` unless the job names its own requirements or a custom container, and a
one-line refusal when the staged pins and the launcher differ. ``runtime`` calls both for every job.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions, WorkerOptions

from specs import pins
from specs.errors import ConfigError


def local_runner() -> Any:
    """The runner used when the DirectRunner is asked for.

    Beam's DirectRunner first tries the Prism runner, which downloads a Go binary at run time (not
    possible offline) and ignores ``--direct_running_mode``/``--direct_num_workers``; batch pipelines
    then fall back to the FnApiRunner anyway. We go to the FnApiRunner directly: same semantics, no
    download, and the multi-process mode the determinism tests need.
    """
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    return fn_runner.FnApiRunner()


LOCAL_RUNNERS = (None, "DirectRunner", "direct", "FnApiRunner")


def make_pipeline(options: PipelineOptions) -> beam.Pipeline:
    if options.view_as(StandardOptions).runner in LOCAL_RUNNERS:
        return beam.Pipeline(runner=local_runner(), options=options)
    return beam.Pipeline(options=options)


def pin_workers(options: PipelineOptions, dry_run: bool) -> str | None:
    """Makes a remote runner's workers install the versions this launcher runs; returns the
    requirements file they install (None: local runner, or a custom container that brings its own).

    Without ``--requirements_file`` the workers get ``requirements/dataflow.txt``, the lock's pins for
    the pipeline's packages, installed from PyPI at worker start-up (``--requirements_cache=skip``
    unless given; a cache folder stages them instead, for workers without internet access). Whatever
    file is staged, the packages in ``specs.pins.WORKER_CRITICAL`` it pins must be the versions
    installed here (Dataflow picks its worker image by the launcher's Beam and Python), else a
    ConfigError names them. A dry run never downloads: it skips the cache too.
    """
    if options.view_as(StandardOptions).runner in LOCAL_RUNNERS:
        return None
    setup = options.view_as(SetupOptions)
    skip_cache = dry_run  # nothing is downloaded for a dry run
    if setup.requirements_file is None:
        if options.view_as(WorkerOptions).sdk_container_image:
            return None
        if not pins.DATAFLOW.is_file():
            raise ConfigError(f"{pins.DATAFLOW} not found: give --requirements_file (the workers' pinned "
                              "packages) or --sdk_container_image")
        setup.requirements_file = str(pins.DATAFLOW)
        skip_cache = True  # the workers install our pins from PyPI at start-up
    if skip_cache and setup.requirements_cache is None:
        setup.requirements_cache = "skip"
    try:
        staged = pins.read_pins(setup.requirements_file)
    except OSError as e:
        raise ConfigError(f"--requirements_file={setup.requirements_file}: {e.strerror}") from None
    mismatches = pins.launcher_mismatches(staged)
    if mismatches:
        raise ConfigError(f"--requirements_file={setup.requirements_file} would give workers other versions "
                          f"than this launcher runs ({'; '.join(mismatches)}): install the lock (`make install`) "
                          "or pin the launcher's versions")
    return setup.requirements_file
