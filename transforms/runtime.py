"""Launching a polyembed pipeline: common options, the runner, dead letters and the run summary.

A pipeline module defines its options and a ``build(pipeline, options) -> Built`` function that
composes transforms and returns the accounting side outputs; ``run_pipeline`` does the rest the same
way for every job: validates configuration before anything runs (one-line errors), runs, writes the
dead letters and ``summary.json``, and prints the summary.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from specs import SpecError
from transforms.accounting import WriteRunSummary, format_summary, read_summary
from transforms.errors import ConfigError
from transforms.files import WriteDeadLetters

SUMMARY_FILE = "summary.json"


class CommonOptions(PipelineOptions):
    """Options every polyembed pipeline takes, and the base of every pipeline's own options class.

    Derive pipeline options from this class, not from PipelineOptions directly. Beam gathers the flags
    of all *direct* subclasses of PipelineOptions into one argparse parser when a pipeline runs, so two
    pipelines imported into one process (a test session, the demo) that both define, say,
    ``--input_format`` with different choices would collide there. Grandchildren are left out of that
    parser and still parsed by ``options.view_as(TheirClass)``.
    """

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument("--output_dir", default=None,
                            help="Where outputs, dead letters, specs and summary.json go (local or gs://).")
        parser.add_argument("--seed", type=int, default=12345,
                            help="Job seed; every random decision is seeded from it and the element.")


class _KnownJobFlags(logging.Filter):
    """Drops Beam's "Unparseable argument" warnings for flags that a polyembed options class defines
    (Beam's global parser does not see them, by design: see CommonOptions); typos still get Beam's
    warning with its suggestions."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if not msg.startswith("Unparseable argument: --"):
            return True
        name = msg[len("Unparseable argument: "):].split()[0].split("=", 1)[0]
        return name not in _job_flags()


def _job_flags() -> set[str]:
    import argparse

    flags: set[str] = set()
    pending = list(CommonOptions.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        parser = argparse.ArgumentParser(add_help=False)
        cls._add_argparse_args(parser)
        flags.update(o for a in parser._actions for o in a.option_strings)
    return flags


logging.getLogger("apache_beam.options.pipeline_options").addFilter(_KnownJobFlags())


@dataclasses.dataclass
class Built:
    """What a pipeline's ``build`` returns: the accounting side outputs and where outputs go."""

    tallies: list[beam.PCollection]
    dead_letters: list[beam.PCollection]
    outputs: dict[str, str] = dataclasses.field(default_factory=dict)


def local_runner() -> Any:
    """The runner used when the DirectRunner is asked for.

    Beam's DirectRunner first tries the Prism runner, which downloads a Go binary at run time (not
    possible offline) and ignores ``--direct_running_mode``/``--direct_num_workers``; batch pipelines
    then fall back to the FnApiRunner anyway. We go to the FnApiRunner directly: same semantics, no
    download, and the multi-process mode the determinism tests need.
    """
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    return fn_runner.FnApiRunner()


def make_pipeline(options: PipelineOptions) -> beam.Pipeline:
    runner_name = options.view_as(StandardOptions).runner
    if runner_name in (None, "DirectRunner", "direct", "FnApiRunner"):
        return beam.Pipeline(runner=local_runner(), options=options)
    return beam.Pipeline(options=options)


def run_pipeline(name: str, argv: Sequence[str] | None,
                 build: Callable[[beam.Pipeline, PipelineOptions], Built]) -> dict[str, Any]:
    """Builds, runs and summarises one job; returns the summary (also written as summary.json)."""
    options = PipelineOptions(list(argv) if argv is not None else sys.argv[1:])
    common = options.view_as(CommonOptions)
    if not common.output_dir:
        raise ConfigError("--output_dir is required")
    summary_path = FileSystems.join(common.output_dir, SUMMARY_FILE)
    pipeline = make_pipeline(options)
    built = build(pipeline, options)
    tallies = tuple(built.tallies) | "AllTallies" >> beam.Flatten(pipeline=pipeline)
    _ = tallies | "WriteRunSummary" >> WriteRunSummary(summary_path)
    letters = tuple(built.dead_letters) | "AllDeadLetters" >> beam.Flatten(pipeline=pipeline)
    _ = letters | "WriteDeadLetters" >> WriteDeadLetters(common.output_dir)
    pipeline.run().wait_until_finish()
    summary = read_summary(summary_path)
    print(f"\n{name}: run summary ({summary_path})")
    print(format_summary(summary))
    for what, where in built.outputs.items():
        print(f"{what}: {where}")
    return summary


def main(name: str, build: Callable[[beam.Pipeline, PipelineOptions], Built],
         argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m pipelines.X``: configuration errors print one line, exit 2;
    an unbalanced account exits 1."""
    logging.getLogger().setLevel(logging.WARNING)
    try:
        summary = run_pipeline(name, argv, build)
    except (ConfigError, SpecError) as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 2
    return 0 if summary["balanced"] else 1
