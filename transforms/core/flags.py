"""Flags several jobs declare alike, declared once, and reading flag values the way every job's
options accept them.

Each ``add_*`` function adds one group to a job's parser (``_add_argparse_args``) with the names,
types and help wording the jobs share; what differs between jobs (a default, the sentence that says
what a job does with the flag) is a parameter. A job's ``--help`` lists the group where it is added.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from specs.command_line import flag_bool


def add_inputs(parser: Any, help: str, *, reference_names: bool = False) -> None:
    """A job's input files or globs, repeatable or comma-separated (read with ``flag_list``):
    ``--input``, or with ``reference_names`` ``--input_patterns`` with the reference's ``--input_file``
    as its other name (BERT's ``create_pretraining_data.py``)."""
    names = ("--input_patterns", "--input_file") if reference_names else ("--input",)
    parser.add_argument(*names, dest=names[0][2:], action="append", default=[], help=help)


def add_boolean(parser: Any, name: str, default: bool, help: str, *, negated_help: str | None = None) -> None:
    """``--NAME`` as absl reads booleans (``--NAME``, ``--NAME=true``, ``--NAME=False``), so reference
    command lines work unchanged; with ``negated_help`` also absl's ``--noNAME``."""
    parser.add_argument(f"--{name}", type=flag_bool, nargs="?", const=True, default=default, help=help)
    if negated_help is not None:
        parser.add_argument(f"--no{name}", dest=name, action="store_false", default=argparse.SUPPRESS,
                            help=negated_help)


def add_sharding(parser: Any, *, records_per_shard: int, shards_help: str, shards_flag: str = "--num_shards") -> None:
    """How ``WriteShards`` sizes a job's output: ``shards_flag`` (``--num_shards``, or the reference's
    ``--num_output_shards``) shards, or with 0 one per ``--records_per_shard`` records."""
    parser.add_argument(shards_flag, type=int, default=0, help=shards_help)
    parser.add_argument("--records_per_shard", type=int, default=records_per_shard,
                        help=f"Records per shard when {shards_flag} is 0.")


def add_decontamination(parser: Any, *, exclude_help: str, ngram: int, ngram_help: str) -> None:
    """What ``Decontaminate`` (transforms.dedup) takes from a command line: ``--exclude``, the
    evaluation files (repeatable, or comma-separated: read with ``flag_list``), and
    ``--exclude_ngram``, the n-gram length that counts as overlap with them (default ``ngram``)."""
    parser.add_argument("--exclude", action="append", default=[], help=exclude_help)
    parser.add_argument("--exclude_ngram", type=int, default=ngram, help=ngram_help)


def add_language_pattern(parser: Any, *, default: str | None, fallback: str) -> None:
    """``--language_pattern``, with the one meaning every job gives it (``records.language_pattern``
    checks it, ``records.language_of_path`` applies it); ``fallback`` names the job's language of a
    file the pattern does not name."""
    parser.add_argument("--language_pattern", default=default,
                        help="Regex searched in each input file's path; its group 1 is the file's language "
                             "(a pattern without a group stops at start-up), e.g. '/(\\w+)\\.txt$'. A "
                             f"record's language field wins; a path it does not match, or an empty group, "
                             f"gets {fallback}.")


def flag_list(values: Sequence[str] | str | None) -> list[str]:
    """Repeatable, comma-separated flag values as one list (a plain string too, in case another
    pipeline in the process defined the flag without ``action="append"``)."""
    if isinstance(values, str):
        values = [values]
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]
