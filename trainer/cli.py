"""Command lines of the trainer's commands, answerable before TensorFlow is imported.

``python -m trainer.X --help`` (or a mistyped flag) should answer at once, not after the seconds that
importing TensorFlow takes, so the parsers live here, in a module that imports neither TensorFlow nor
Beam nor YAML; each command module parses its arguments with them first thing (``parse_early``) and
imports its heavy dependencies after. ``StrictParser`` is also the project's one argparse policy for
commands that are not Beam jobs (``pipelines.inspect``) and the source of the help formatting and the
unknown-flag message Beam jobs use (``transforms.core.runtime``): every flag listed with its default and a
one-line meaning, no abbreviations, and an unknown flag answered in one line naming the closest one.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

EXPORT_TYPES = ("model", "model_with_mlm", "preprocessing", "classifier", "text_classifier")
POOLERS = ("trained", "untrained", "copy_from_nsp", "identity")
MODES = ("train", "eval", "train_and_eval", "export", "predict")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after every flag that has a default worth showing."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34, width=110)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if default in (None, [], "") or default is argparse.SUPPRESS or "%(default)" in text:
            return text
        if isinstance(default, str) and (not default.isprintable() or default.strip() != default):
            return f"{text} (default: {default!r})".replace("%", "%%")  # a newline or a space, shown as such
        return super()._get_help_string(action)


def flag_names(parser: argparse.ArgumentParser) -> list[str]:
    return [o for a in parser._actions for o in a.option_strings if o.startswith("--")]


def unknown_flag_message(unknown: Sequence[str], known: Sequence[str]) -> str | None:
    """One line for the first unknown argument (``--flag`` with the closest known flag, difflib), or
    None when there is none."""
    for arg in unknown:
        if arg == "--":
            return None
        flag = arg.split("=", 1)[0]
        if not flag.startswith("-"):
            return f"unexpected argument {arg!r} (flags are --name=value; --help lists them)"
        close = difflib.get_close_matches(flag, list(known), n=1)
        return f"unknown flag {flag}" + (f"; did you mean {close[0]}?" if close else "; --help lists every flag")
    return None


class StrictParser(argparse.ArgumentParser):
    """argparse without abbreviations, with defaults in ``--help``, whose errors are one line on stderr
    (exit 2) and which names the closest known flag for an unknown one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        args = sys.argv[1:] if args is None else list(args)
        known = flag_names(self)
        # unknown flags first: a typo of a required flag should be named as a typo, not as a missing flag
        flags = [a for a in args[:args.index("--") if "--" in args else len(args)] if a.startswith("--")]
        message = unknown_flag_message([f for f in flags if f.split("=", 1)[0] not in known], known)
        if message:
            self.error(message)
        parsed, unknown = self.parse_known_args(args, namespace)
        message = unknown_flag_message(unknown, known)
        if message:
            self.error(message)
        return parsed


def flag_bool(value: str) -> bool:
    """absl-style booleans (``--flag``, ``--flag=true``, ``--flag=False``, ``--flag=0``), so reference
    command lines such as ``--do_lower_case=True`` work unchanged."""
    v = value.strip().lower()
    if v in ("1", "true", "t", "yes", "y"):
        return True
    if v in ("0", "false", "f", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _experiments() -> list[str]:
    # the registry imports no TensorFlow; kept out of this module's imports so Beam workers never need it
    from trainer.experiments import NAMES

    return sorted(NAMES)


def _config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config_file", action="append", default=[],
                   help="YAML config, applied in order over the experiment's defaults (repeatable).")
    p.add_argument("--params_override", action="append", default=[],
                   help="a.b=c,d.e=f overrides applied after the config files (repeatable).")


def task_parser() -> StrictParser:
    p = StrictParser(prog="python -m trainer.task",
                     description="Trains, evaluates or exports an experiment (Model Garden style config).")
    p.add_argument("--experiment", required=True, choices=_experiments(), help="The named experiment.")
    p.add_argument("--mode", required=True, choices=MODES,
                   help="train, eval (the latest checkpoint), train_and_eval, export (the experiment's export: a "
                        "TF Hub encoder, or the classifier) or predict (bert/sentence_prediction: a GLUE "
                        "submission TSV).")
    p.add_argument("--model_dir", default="", help="Checkpoints, summaries, params.yaml; default $AIP_MODEL_DIR.")
    _config_flags(p)
    p.add_argument("--tpu", default="", help='TPU name, or "local" on a Vertex TPU VM; overrides the runtime.')
    return p


def export_parser() -> StrictParser:
    p = StrictParser(prog="python -m trainer.export_tfhub",
                     description="Exports a trained model as TF Hub SavedModels (encoder, MLM, preprocessing, "
                                 "classifier).")
    p.add_argument("--experiment", required=True, help="The experiment the model was trained with.")
    p.add_argument("--model_dir", default="", help="The training run (its latest checkpoint is exported).")
    p.add_argument("--checkpoint_path", default="", help="A specific checkpoint instead of the latest.")
    _config_flags(p)
    p.add_argument("--export_type", default="model", choices=EXPORT_TYPES,
                   help="model (encoder), model_with_mlm (+ mlm signature), preprocessing, or for "
                        "bert/sentence_prediction classifier (encoder inputs -> logits) or text_classifier "
                        "(strings -> logits).")
    p.add_argument("--export_path", required=True, help="Where the SavedModel is written.")
    p.add_argument("--vocab_file", default="", help="Defaults to the run's task.train_data.vocab_file.")
    p.add_argument("--do_lower_case", default="", choices=("", "true", "false"),
                   help="Defaults to the run's task.train_data.lower_case (true for an uncased vocabulary).")
    p.add_argument("--pooler", default="trained", choices=POOLERS,
                   help="The pooled_output: trained, untrained, copy_from_nsp or identity ([CLS]).")
    return p


def _encoder_flags(p: argparse.ArgumentParser, seq_length: int) -> None:
    p.add_argument("--model", required=True, help="An encoder export (trainer.export_tfhub --export_type=model).")
    p.add_argument("--preprocessor", default="", help="A preprocessing export (else the encoder's vocab_file).")
    p.add_argument("--seq_length", type=int, default=seq_length, help="Tokens per sentence.")


def evaluate_parser() -> StrictParser:
    p = StrictParser(prog="python -m trainer.evaluate",
                     description="Tatoeba-style retrieval precision@1 of an exported encoder, both directions.")
    _encoder_flags(p, 64)
    p.add_argument("--pairs", action="append", default=[], help="SRC_FILE:TGT_FILE (repeatable).")
    p.add_argument("--tatoeba_dir", default="", help="A LASER Tatoeba directory (tatoeba.xxx-eng.{xxx,eng}).")
    p.add_argument("--langs", default="", help="Comma-separated languages of --tatoeba_dir.")
    p.add_argument("--skip_lines", type=int, default=0, help="Lines to skip at the start of each file.")
    p.add_argument("--max_lines", type=int, default=0, help="Lines to score per file after skipping (0: all).")
    p.add_argument("--batch_size", type=int, default=256, help="Sentences embedded per call.")
    p.add_argument("--output_json", default="", help="Also write the scores to this file.")
    return p


def similarity_parser() -> StrictParser:
    p = StrictParser(prog="python -m trainer.similarity",
                     description="A cosine-similarity table of translation pairs under an exported encoder.")
    _encoder_flags(p, 32)
    p.add_argument("--tsv", required=True, help="src<TAB>tgt lines (a translation-pair TSV).")
    p.add_argument("--rows", type=int, default=5, help="Pairs shown (the first lines of --tsv).")
    p.add_argument("--held_out_from", default="",
                   help="A translation_pairs run folder or a file of its training split: fails when a shown "
                        "sentence is in that split, and the table says the sentences are held out.")
    p.add_argument("--output", default="", help="Also write the table to this file.")
    return p


PARSERS = {"task": task_parser, "export_tfhub": export_parser, "evaluate": evaluate_parser,
           "similarity": similarity_parser}


def parse_early(command: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses a command's arguments (``--help`` answers and exits here, as does a bad flag)."""
    return PARSERS[command]().parse_args(sys.argv[1:] if argv is None else list(argv))


def one_line_errors(body: Callable[[], object]) -> int:
    """Runs a command's ``body``: 0 when it returns; a configuration or spec error (``ConfigError``,
    ``specs.SpecError``) becomes its one line on stderr and exit status 2, before or instead of work."""
    import specs
    from trainer.config import ConfigError

    try:
        body()
    except (ConfigError, specs.SpecError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
