"""Files on any storage Beam's FileSystems reach (local, gs://): matching the inputs at start-up,
reading a small file, and a transform's temporary folder."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from specs.errors import ConfigError


def read_bytes(path: str) -> bytes:
    """A small file's bytes (a vocabulary, a sidecar) through Beam's FileSystems: local, gs:// or any
    filesystem the pipeline's options configure."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def match_files(patterns: Sequence[str], flag: str = "--input") -> list[str]:
    """Expands files and globs (local or gs://) to a sorted list of paths; fails with one line if a
    pattern matches nothing or cannot be listed."""
    paths: set[str] = set()
    for pattern in patterns:
        try:
            result = FileSystems.match([pattern])[0]
        except Exception as e:  # any listing failure is a configuration error here
            raise ConfigError(f"{flag}: cannot list {pattern!r}: {type(e).__name__}: {e}".splitlines()[0]) from None
        found = [m.path for m in result.metadata_list]
        if not found:
            raise ConfigError(f"{flag}: no file matches {pattern!r}")
        paths.update(found)
    return sorted(paths)


def temp_folder(directory: str, name: str) -> str:
    """A hidden folder for one transform's temporary files in ``directory`` (unique per pipeline
    construction, so two writers or two runs never share one; readers' ``NAME-*`` globs miss it)."""
    return FileSystems.join(directory, f".temp-{name}-{uuid.uuid4().hex[:12]}")


def remove_folder(folder: str) -> None:
    """Deletes a folder and everything under it, locally or on object stores (where a folder is a
    name prefix)."""
    if FileSystems.get_scheme(folder) in (None, "file"):
        if FileSystems.exists(folder):
            FileSystems.delete([folder])
    else:
        FileSystems.delete([folder.rstrip("/") + "/"])
