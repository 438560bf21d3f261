"""Which files of ``--input`` are StackExchange dumps: site folders, dump files and ``.7z`` archives."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from apache_beam.io.filesystems import FileSystems

from specs.errors import ConfigError

POSTS, POSTLINKS = "Posts", "PostLinks"


_KIND = re.compile(r"^(Posts|PostLinks)(?:-\d+)?\.xml(?:\.gz|\.bz2)?$")


def site_and_kind(path: str) -> tuple[str, str] | None:
    """``(site, "Posts"|"PostLinks")`` for a dump file, from its folder and name, else None.

    ``.../askubuntu.com/Posts.xml.gz`` -> ``("askubuntu.com", "Posts")``; transcoded 7z shards
    ``.../askubuntu.com/PostLinks-00003.xml`` are recognised too.
    """
    parts = path.replace("\\", "/").rstrip("/").split("/")
    if len(parts) < 2:
        return None
    m = _KIND.match(parts[-1])
    if not m or not parts[-2]:
        return None
    return parts[-2], m.group(1)


def site_of_archive(path: str) -> tuple[str, str | None] | None:
    """For ``askubuntu.com.7z`` -> ``("askubuntu.com", None)`` (a whole site), for
    ``stackoverflow.com-Posts.7z`` -> ``("stackoverflow.com", "Posts")``; None if not a .7z."""
    name = path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    if not name.endswith(".7z"):
        return None
    stem = name[:-3]
    for kind in (POSTLINKS, POSTS):
        if stem.endswith("-" + kind):
            return stem[: -len(kind) - 1], kind
    return stem, None


def is_meta_site(site: str) -> bool:
    return site.startswith("meta.") or ".meta." in site


@dataclasses.dataclass
class DumpInputs:
    """What ``--input`` resolved to: plain dump files, 7z archives, and meta sites left out."""

    files: list[str] = dataclasses.field(default_factory=list)
    archives: list[tuple[str, str, str | None]] = dataclasses.field(default_factory=list)
    skipped_meta_sites: list[str] = dataclasses.field(default_factory=list)

    @property
    def sites(self) -> list[str]:
        return sorted({site_and_kind(f)[0] for f in self.files} | {a[1] for a in self.archives})


def discover_dump_files(inputs: Sequence[str], include_meta: bool) -> DumpInputs:
    """Resolves ``--input`` entries (site folders, globs of them, dump files, .7z archives; local or
    gs://) at start-up. An entry that yields no dump file, or a site with links but no posts, is a
    configuration error with a one-line message."""
    found = DumpInputs()
    skipped: set[str] = set()
    seen: set[str] = set()
    for entry in inputs:
        candidates: list[str] = []
        for pattern in (entry, entry.rstrip("/") + "/*", entry.rstrip("/") + "/*/*"):
            try:
                candidates += [m.path for m in FileSystems.match([pattern])[0].metadata_list]
            except Exception as e:  # a listing failure is a configuration error, reported below
                raise ConfigError(f"--input: cannot list {pattern!r}: {type(e).__name__}: {e}".splitlines()[0]) \
                    from None
        matched = 0
        for path in sorted(set(candidates)):
            sk, arch = site_and_kind(path), site_of_archive(path)
            site = sk[0] if sk else arch[0] if arch else None
            if site is None:
                continue
            matched += 1
            if is_meta_site(site) and not include_meta:
                skipped.add(site)
                continue
            if path in seen:
                continue
            seen.add(path)
            if sk:
                found.files.append(path)
            else:
                found.archives.append((path, arch[0], arch[1]))
        if not matched:
            raise ConfigError(f"--input: no Posts.xml, PostLinks.xml or .7z archive found at {entry!r}")
    kinds: dict[str, set[str]] = {}
    for f in found.files:
        site, kind = site_and_kind(f)
        kinds.setdefault(site, set()).add(kind)
    for site, ks in sorted(kinds.items()):
        if POSTS not in ks and not any(a[1] == site for a in found.archives):
            raise ConfigError(f"--input: site {site!r} has PostLinks but no Posts file")
    found.files.sort()
    found.archives.sort()
    found.skipped_meta_sites = sorted(skipped)
    return found
