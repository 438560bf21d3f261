"""Launching a polyembed pipeline: the command line, the run folder, the runner, dead letters and the
run summary.

A pipeline module defines its options class and a ``build(pipeline, options) -> Built`` function that
composes transforms and returns the accounting side outputs; ``run_pipeline`` does the rest the same
way for every job, in this order:

1. the command line is parsed strictly (``parse_command_line``): ``--help`` lists every flag with its
   default, an unknown flag stops with one line naming the closest known one, and Beam's and
   Dataflow's own options pass through;
2. the run folder is claimed (a file in the way, a folder of something else: one line, nothing
   touched; else a previous run of the same job is removed and ``_RUN_STARTED.json`` written, see
   ``specs.run_folder``);
3. ``build`` composes the job and validates its flags (one-line ``ConfigError``; the folder is then
   left visibly unfinished);
4. the job runs, outputs are moved to their final names where the job asks for it (pretrain_data's
   ``--output_file``), the summary is printed, and ``_RUN_COMPLETE.json`` is written last. A run
   whose inputs yielded no record at all, or whose output got none (every record filtered or
   dead-lettered: ``Built.empty_outputs``), ends with a warning, exit 1 and no marker unless
   ``--allow_empty``. ``--dry_run=True`` only checks the folder, stops after building (Dataflow:
   after the offline job request) and prints what would run.

On a remote runner (Dataflow) the workers are pinned to the launcher's versions before the job is
built: without ``--requirements_file`` or ``--sdk_container_image`` they install
``requirements/dataflow.txt`` (the lock's pins, see ``specs.pins``), and a launcher whose own versions
differ from the staged pins stops at start-up with one line (``runners.pin_workers``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, TestOptions

from specs import SpecError, run_folder
from specs.command_line import HelpFormatter, flag_names, unknown_flag_message
from specs.errors import ConfigError
from transforms.core import flags, runners
from transforms.core.accounting import DEAD_LETTER, TALLY, Accounted, WriteRunSummary, format_summary, read_summary
from transforms.core.dead_letters import WriteDeadLetters
from transforms.core.shards import holds_data

SUMMARY_FILE = "summary.json"
DEAD_LETTER_DIR = "dead_letter"
BEAM_OPTIONS_URL = "https://cloud.google.com/dataflow/docs/reference/pipeline-options"


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
                            help="The run folder (local or gs://): absent, empty, or holding a previous run of "
                                 "this job, which is removed at start-up. Outputs, dead letters, specs, "
                                 "summary.json and the completion marker go there.")
        parser.add_argument("--seed", type=int, default=12345,
                            help="Job seed; every random decision is seeded from it and the element.")
        flags.add_boolean(parser, "allow_empty", False,
                          "Finish with exit 0 and the completion marker even when the inputs yield no "
                          "record at all or the output gets none (else: a warning, exit 1, no marker).")
        flags.add_boolean(parser, "allow_incomplete", False,
                          "Read inputs from a polyembed run without its completion marker (an "
                          "unfinished run), or our formats produced elsewhere.")

    def run_folder(self) -> tuple[str, list[str] | None]:
        """The run folder and, when the job owns only some names in it, those names (None: all of it)."""
        if not self.output_dir:
            raise ConfigError("--output_dir is required")
        return self.output_dir, None


# --- the command line ----------------------------------------------------------------------------

class _OneLineParser(argparse.ArgumentParser):
    """argparse with errors raised as one-line ConfigErrors instead of usage text and exit."""

    def error(self, message: str) -> Any:
        raise ConfigError(message)


def _is_polyembed(cls: type) -> bool:
    return issubclass(cls, CommonOptions)


def _beam_parser() -> argparse.ArgumentParser:
    """Every flag Beam's registered options classes (runners, IO, Dataflow, ...) define."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    class Parser(_BeamArgumentParser):
        def error(self, message: str) -> Any:
            raise ConfigError(message)

    parser = Parser(prog="Beam and Dataflow options", allow_abbrev=False, add_help=False,
                    formatter_class=HelpFormatter)
    seen: dict[str, type] = {}
    for cls in PipelineOptions.__subclasses__():
        if not _is_polyembed(cls):
            seen.setdefault(str(cls), cls)
    for cls in seen.values():
        cls._add_argparse_args(parser)
    return parser


def job_parser(name: str, options_cls: type[CommonOptions]) -> argparse.ArgumentParser:
    """The job's own flags, then the common ones, with defaults, for ``--help`` and strict parsing."""
    parser = _OneLineParser(
        prog=f"python -m pipelines.{name}", allow_abbrev=False, formatter_class=HelpFormatter,
        usage=f"python -m pipelines.{name} --flag=value ... [Beam/Dataflow options]",
        description=(sys.modules[options_cls.__module__].__doc__ or "").strip().split("\n\n")[0],
        epilog="Beam and Dataflow options pass through unchanged (--runner, --project, --region, --temp_location, "
               "--setup_file, --direct_num_workers, --experiments, ...): --help_beam lists them all; see also "
               f"{BEAM_OPTIONS_URL}. --dry_run=True builds the job, prints what would run and exits.")
    parser.add_argument("--help_beam", action="store_true", help="List Beam's and Dataflow's options and exit.")
    if options_cls is not CommonOptions:
        options_cls._add_argparse_args(parser.add_argument_group(f"{name} flags"))
    CommonOptions._add_argparse_args(parser.add_argument_group("common flags (every polyembed job)"))
    return parser


def check_flags(name: str, options_cls: type[CommonOptions], argv: Sequence[str]) -> argparse.Namespace:
    """Parses ``argv`` strictly: ``--help``/``--help_beam`` print and exit 0; an unknown flag or a bad
    value raises a one-line ConfigError naming it (and the closest known flag). Returns the job's and
    common flags."""
    parser = job_parser(name, options_cls)
    beam_parser = _beam_parser()
    if "--help_beam" in argv:
        beam_parser.print_help()
        raise SystemExit(0)
    known, rest = parser.parse_known_args(list(argv))
    _, unknown = beam_parser.parse_known_args(rest)
    message = unknown_flag_message(unknown, flag_names(parser) + flag_names(beam_parser))
    if message:
        raise ConfigError(message)
    return known


def options_class(build: Callable[..., Any]) -> type[CommonOptions]:
    """The options class the module of ``build`` defines (a pipeline module defines one)."""
    module = sys.modules.get(getattr(build, "__module__", ""), None)
    found = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, CommonOptions)
             and v.__module__ == module.__name__] if module else []
    return found[0] if len(found) == 1 else CommonOptions


def parse_command_line(name: str, options_cls: type[CommonOptions], argv: Sequence[str]) -> PipelineOptions:
    """Checks ``argv`` (see ``check_flags``) and returns Beam's PipelineOptions over it."""
    check_flags(name, options_cls, argv)
    return PipelineOptions(list(argv))


class _KnownJobFlags(logging.Filter):
    """Drops Beam's "Unparseable argument" warnings for flags that a polyembed options class defines
    (Beam's global parser does not see them, by design: see CommonOptions); typos still get Beam's
    warning with its suggestions."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if not msg.startswith("Unparseable argument: --"):
            return True
        # Beam writes "--flag=value" as given, but a bare "--flag" with a closing full stop.
        name = msg[len("Unparseable argument: "):].split()[0].split("=", 1)[0].rstrip(".")
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
    """What a pipeline's ``build`` returns: the accounting side outputs, where outputs go, and what the
    launcher does after the run and before it writes the completion marker:

    - ``final_names``: files moved to their final names (``{written: final}``, pretrain_data's
      ``--output_file``);
    - ``data_files``: ``{what: file patterns}`` of the outputs that must hold data; one whose files hold
      not a byte (``shards.holds_data``: every record filtered or dead-lettered) leaves the run unfinished
      with exit 1, as a run without any record does, unless ``--allow_empty``;
    - ``empty_outputs``: where a job knows otherwise which parts of its output got no record
      (finetune_data's splits, from its meta data: a trainer must never be handed an empty one), their
      names, with the same effect;
    - ``finish``: writes what the job makes of its shards (finetune_data's reference files) and returns
      them as ``{what: path}`` for the marker's outputs.
    """

    tallies: list[beam.PCollection]
    dead_letters: list[beam.PCollection]
    outputs: dict[str, str] = dataclasses.field(default_factory=dict)
    final_names: dict[str, str] = dataclasses.field(default_factory=dict)
    data_files: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    empty_outputs: Callable[[], list[str]] | None = None
    finish: Callable[[], dict[str, str]] | None = None

    def empty(self) -> list[str]:
        """The outputs that got no record (``data_files``, then ``empty_outputs``), read after the run."""
        return ([what for what, patterns in self.data_files.items() if not holds_data(patterns)] +
                (self.empty_outputs() if self.empty_outputs else []))


@dataclasses.dataclass
class Ledger:
    """The accounting side channels of one pipeline, gathered while its ``build`` composes, so a step
    reads like Beam's wordcount and no ``build`` keeps lists by hand::

        ledger = runtime.Ledger()
        lines = ledger.add(paths | "ReadLines" >> ReadLineBatches())
        rows = ledger.add(lines | "ParseRows" >> beam.ParDo(Parse()).with_outputs(TALLY, DEAD_LETTER, main="rows"))
        ...
        return ledger.built(outputs={"pairs": folder})

    ``add`` takes what an accounted step returns and gives back its main output: the ``out`` of an
    ``Accounted``, else the result itself (results with several outputs beside ``tally`` and
    ``dead_letter``, such as ``DedupResult``, or a ``ParDo(...).with_outputs(TALLY, DEAD_LETTER, ...)``)."""

    tallies: list[beam.PCollection] = dataclasses.field(default_factory=list)
    dead_letters: list[beam.PCollection] = dataclasses.field(default_factory=list)

    def add(self, result: Any) -> Any:
        tagged = isinstance(result, beam.pvalue.DoOutputsTuple)
        self.tallies.append(result[TALLY] if tagged else result.tally)
        self.dead_letters.append(result[DEAD_LETTER] if tagged else result.dead_letter)
        return result.out if isinstance(result, Accounted) else result

    def built(self, outputs: dict[str, str] | None = None, final_names: dict[str, str] | None = None,
              data_files: dict[str, list[str]] | None = None, empty_outputs: Callable[[], list[str]] | None = None,
              finish: Callable[[], dict[str, str]] | None = None) -> Built:
        """What ``build`` returns: every stage added so far, with the run's outputs and after-run steps."""
        return Built(list(self.tallies), list(self.dead_letters), dict(outputs or {}), dict(final_names or {}),
                     dict(data_files or {}), empty_outputs, finish)


class BeamFileSystem:
    """``specs.run_folder``'s file-system interface over Beam's FileSystems (gs://, s3://, local)."""

    def exists(self, path: str) -> bool:
        return FileSystems.exists(path)

    def is_file(self, path: str) -> bool:
        return FileSystems.exists(path) and not path.endswith("/")

    def _entries(self, folder: str) -> list[tuple[str, str]]:
        prefix = folder.rstrip("/") + "/"
        found = FileSystems.match([prefix + "**"])[0].metadata_list
        return [(m.path[len(prefix):].split("/", 1)[0], m.path) for m in found if m.path.startswith(prefix)]

    def names(self, folder: str) -> list[str]:
        return sorted({name for name, _ in self._entries(folder)})

    def read(self, path: str) -> str:
        with FileSystems.open(path) as f:
            return f.read().decode("utf-8")

    def write(self, path: str, text: str) -> None:
        with FileSystems.create(path) as f:
            f.write(text.encode("utf-8"))

    def remove(self, folder: str, names: Sequence[str]) -> None:
        paths = [path for name, path in self._entries(folder) if name in set(names)]
        if paths:
            FileSystems.delete(paths)


def _fs_for(path: str) -> BeamFileSystem | None:
    """Beam's file systems for remote paths; local paths use run_folder's own (which sees folders)."""
    return BeamFileSystem() if "://" in path else None


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "t", "yes", "y")


def produced_nothing(summary: dict[str, Any]) -> bool:
    """True when no stage let a single record out: the inputs yielded no record at all (empty files,
    or files of another format whose every line was dead-lettered)."""
    return not any(s["total"]["out"] for s in summary.get("stages", {}).values())


def _claim(name: str, folder: str, owned: list[str] | None, argv: Sequence[str], dry_run: bool) -> None:
    flag = "--output_file" if owned is not None else "--output_dir"
    try:
        run_folder.claim(folder, name, argv, flag, owned, dry_run=dry_run, fs=_fs_for(folder))
    except run_folder.RunFolderError as e:
        raise ConfigError(str(e)) from None


def check_inputs_complete(paths: Iterable[str], flag: str, options: PipelineOptions, ours: bool) -> None:
    """Refuses inputs from an unfinished polyembed run (a run folder without its completion marker);
    with ``ours`` (formats only polyembed writes, e.g. TFRecords with a spec beside them) also inputs
    from no polyembed run at all. ``--allow_incomplete`` reads them anyway."""
    if options.view_as(CommonOptions).allow_incomplete:
        return
    for path in paths:
        found = run_folder.find_run(path, _fs_for(path))
        if found is None and not ours:
            continue
        try:
            run_folder.require_complete(path, flag, fs=_fs_for(path))
        except run_folder.RunFolderError as e:
            raise ConfigError(str(e)) from None


def _run(name: str, argv: Sequence[str] | None,
         build: Callable[[beam.Pipeline, PipelineOptions], Built]) -> tuple[dict[str, Any], int]:
    args = list(argv) if argv is not None else sys.argv[1:]
    cls = options_class(build)
    options = parse_command_line(name, cls, args)
    folder, owned = options.view_as(cls).run_folder()
    if owned is not None:  # what the launcher itself writes there
        owned = [*owned, SUMMARY_FILE, DEAD_LETTER_DIR]
    if not options.view_as(CommonOptions).output_dir:
        options = PipelineOptions([*args, f"--output_dir={folder}"])
    common = options.view_as(CommonOptions)
    dry_run = _truthy(options.view_as(TestOptions).dry_run)
    worker_pins = runners.pin_workers(options, dry_run)  # before the folder is claimed: a mismatch touches nothing
    if dry_run:
        if "://" not in folder:  # Beam's dry run stays offline; so does ours
            _claim(name, folder, owned, args, dry_run=True)  # only checks
    else:
        # Claimed before the job is composed: composing may create folders there (tensorflow-transform's
        # temp dir), and those must not be taken for someone else's files or removed as the old run's.
        _claim(name, folder, owned, args, dry_run=False)
    summary_path = FileSystems.join(folder, SUMMARY_FILE)
    pipeline = runners.make_pipeline(options)
    built = build(pipeline, options)
    tallies = tuple(built.tallies) | "AllTallies" >> beam.Flatten(pipeline=pipeline)
    _ = tallies | "WriteRunSummary" >> WriteRunSummary(summary_path)
    letters = tuple(built.dead_letters) | "AllDeadLetters" >> beam.Flatten(pipeline=pipeline)
    _ = letters | "WriteDeadLetters" >> WriteDeadLetters(folder)
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    outputs = {**built.outputs, **{f"file {i}": p for i, p in enumerate(built.final_names.values())}}
    if dry_run:
        if options.view_as(StandardOptions).runner not in runners.LOCAL_RUNNERS:
            pipeline.run()  # Beam's dry run: the job request is built offline, nothing is submitted
        print(f"{name}: dry run on {runner}: {len(pipeline.to_runner_api().components.transforms)} steps; "
              f"run folder {folder}; nothing was run or written")
        if worker_pins:
            print(f"  workers would install: {worker_pins}")
        for what, where in outputs.items():
            print(f"  would write {what}: {where}")
        return {"dry_run": True}, 0
    pipeline.run().wait_until_finish()
    if built.final_names:
        FileSystems.rename(list(built.final_names), list(built.final_names.values()))
    summary = read_summary(summary_path)
    print(f"\n{name}: run summary ({summary_path})")
    print(format_summary(summary))
    for what, where in outputs.items():
        print(f"{what}: {where}")
    empty = built.empty()
    nothing = produced_nothing(summary)  # the root cause, named first where both hold
    if (empty or nothing) and not common.allow_empty:
        what = ("the inputs yielded no records at all" if nothing else
                f"{', '.join(empty)} yielded no records (empty or header-only input, or every row filtered or "
                f"dead-lettered: see {summary_path})")
        print(f"{name}: warning: {what}; the run is left unfinished (no {run_folder.COMPLETE_FILE}); "
              "--allow_empty accepts an empty result", file=sys.stderr)
        return summary, 1
    if built.finish:
        for what, where in built.finish().items():
            print(f"{what}: {where}")
            outputs[what] = where
    run_folder.write_complete(folder, name, summary, outputs, fs=_fs_for(folder))
    return summary, 0 if summary["balanced"] else 1


def run_pipeline(name: str, argv: Sequence[str] | None,
                 build: Callable[[beam.Pipeline, PipelineOptions], Built]) -> dict[str, Any]:
    """Checks, builds, runs and summarises one job; returns the summary (also written as summary.json)."""
    return _run(name, argv, build)[0]


def main(name: str, build: Callable[[beam.Pipeline, PipelineOptions], Built],
         argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m pipelines.X``: configuration errors (flags, the run folder) print one
    line and exit 2; an unbalanced account or an input without records exits 1."""
    logging.getLogger().setLevel(logging.WARNING)
    try:
        return _run(name, argv, build)[1]
    except (ConfigError, SpecError) as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 2
