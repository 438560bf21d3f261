"""What ``pipelines.stackexchange`` does besides composing: its flags checked against each other and
the inputs at start-up, and where ``.7z`` archives are transcoded to."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from apache_beam.io.filesystems import FileSystems

from specs.errors import ConfigError
from transforms.stackexchange.dumps import DumpInputs, discover_dump_files
from transforms.stackexchange.pairs import PAIR_TYPES, PairOptions

FORMATS = ("jsonl", "tfrecord")


@dataclasses.dataclass(frozen=True)
class JobSettings:
    """The stackexchange job's inputs and pair settings, checked: what ``build`` composes from."""

    dumps: DumpInputs
    pair_types: list[str]
    formats: list[str]
    watermark_ids: frozenset[int]
    pair_options: PairOptions


def _items(flag_value: str) -> list[str]:
    return [v.strip() for v in flag_value.split(",") if v.strip()]


def job_settings(inputs: Sequence[str], pair_types: str, output_formats: str, watermark_post_ids: str,
                 include_meta: bool, pair_flags: Any) -> JobSettings:
    """The flags of ``pipelines.stackexchange`` checked (``inputs`` already split at commas, the
    other lists as given); a ``ConfigError`` naming the flag otherwise. ``pair_flags`` (the job's
    options) has an attribute for every field of ``PairOptions``."""
    if not inputs:
        raise ConfigError("--input is required (a site folder, dump file, glob or .7z archive)")
    types = list(PAIR_TYPES) if pair_types == "all" else _items(pair_types)
    unknown = sorted(set(types) - set(PAIR_TYPES))
    if unknown or not types:
        raise ConfigError(f"--pair_types: unknown {unknown or 'empty list'}; choose from {', '.join(PAIR_TYPES)}")
    formats = _items(output_formats)
    if not formats or set(formats) - set(FORMATS):
        raise ConfigError(f"--output_formats: {output_formats!r}; use jsonl, tfrecord or both")
    try:
        watermarks = frozenset(int(x) for x in _items(watermark_post_ids))
    except ValueError:
        raise ConfigError(f"--watermark_post_ids: {watermark_post_ids!r} is not a list of integers") from None
    pair_options = PairOptions(**{f: getattr(pair_flags, f) for f in PairOptions.__dataclass_fields__})
    dumps = discover_dump_files(inputs, include_meta)
    if not dumps.files and not dumps.archives:
        raise ConfigError(f"--input: only meta sites found ({', '.join(dumps.skipped_meta_sites)}); "
                          "add --include_meta to read them")
    return JobSettings(dumps, types, formats, watermarks, pair_options)


def transcode_folder(transcode_dir: str | None, temp_location: str | None, output_dir: str) -> str:
    """``--transcode_dir``, else ``--temp_location/polyembed-7z``, else ``OUTPUT_DIR/_transcoded``."""
    if transcode_dir:
        return transcode_dir
    return FileSystems.join(temp_location, "polyembed-7z") if temp_location \
        else FileSystems.join(output_dir, "_transcoded")
