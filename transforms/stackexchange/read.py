"""Dump files -> posts keyed by question and duplicate links, every line accounted (Beam)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import apache_beam as beam

from transforms.core.accounting import DEAD_LETTER, TALLY, AccountedDoFn, DeadLetter, apply_accounted
from transforms.core.lines import LineBatch, ReadLineBatches
from transforms.stackexchange.dumps import POSTLINKS, POSTS, DumpInputs, site_and_kind
from transforms.stackexchange.rows import (
    DUPLICATE_LINK_TYPE,
    RowError,
    int_field,
    parse_row,
    post_filter_reason,
    post_from_attrs,
)
from transforms.stackexchange.sevenzip import TranscodeArchives


class ParseDumpRows(AccountedDoFn):
    """LineBatch -> Posts (keyed by (site, question id)) or duplicate links, one outcome per line.

    Scope: the input file. Filtered: the XML envelope, non-Q&A post types, watermarks, Answer Bot,
    links that are not duplicates. Dead-lettered: malformed rows.
    """

    stage = "parse_rows"

    def __init__(self, drop_answer_bot: bool, watermark_ids: frozenset[int], keep_code_blocks: bool) -> None:
        self._drop_answer_bot = drop_answer_bot
        self._watermark_ids = watermark_ids
        self._keep_code = keep_code_blocks

    def process(self, batch: LineBatch) -> Iterator[Any]:
        site, kind = site_and_kind(batch.path)
        scope = batch.path
        for offset, line in batch.lines:
            self.took_in(scope)
            try:
                attrs = parse_row(line)
                if attrs is None:
                    self.filtered(scope, "xml_envelope")
                    continue
                if kind == POSTS:
                    reason = post_filter_reason(attrs, self._drop_answer_bot, self._watermark_ids)
                    if reason:
                        self.filtered(scope, reason)
                        continue
                    post = post_from_attrs(site, attrs, self._keep_code)
                    self.out(scope)
                    yield beam.pvalue.TaggedOutput(POSTS, ((site, post.parent_id), post))
                else:
                    link_type = int_field(attrs, "LinkTypeId", 0)
                    post_id, related = int_field(attrs, "PostId"), int_field(attrs, "RelatedPostId")
                    if post_id is None or related is None:
                        raise RowError("bad_field", "link lacks PostId or RelatedPostId")
                    if link_type != DUPLICATE_LINK_TYPE:
                        self.filtered(scope, f"link_type_{link_type}")
                        continue
                    if post_id == related:
                        self.filtered(scope, "self_link")
                        continue
                    self.out(scope)
                    yield beam.pvalue.TaggedOutput(POSTLINKS, (site, int_field(attrs, "Id", 0) or 0, post_id, related))
            except RowError as e:
                yield self.dead_letter(scope, DeadLetter.make(
                    self.stage, e.reason, line, source=batch.path, offset=offset, detail=e.detail[:500]))


class DumpRows(NamedTuple):
    """What ``ReadDumps`` returns: ``Accounted``'s fields, with posts and links for ``out``."""

    posts: beam.PCollection  # ((site, question id), Post)
    links: beam.PCollection  # (site, link id, post id, related post id), duplicate links only
    tally: beam.PCollection
    dead_letter: beam.PCollection


class ReadDumps(beam.PTransform):
    """The dump files and ``.7z`` archives ``discover_dump_files`` found -> posts and duplicate links.

    Archives are first transcoded (one worker each) to line-aligned plain shards under
    ``transcode_dir``, which are then read like every dump file: splittably, in batches of lines,
    each line parsed on its own by ``ParseDumpRows``."""

    def __init__(self, dumps: DumpInputs, transcode_dir: str, shard_bytes: int, drop_answer_bot: bool,
                 watermark_ids: frozenset[int], keep_code_blocks: bool) -> None:
        super().__init__()
        self._dumps, self._transcode_dir, self._shard_bytes = dumps, transcode_dir, shard_bytes
        self._parse = ParseDumpRows(drop_answer_bot, watermark_ids, keep_code_blocks)

    def expand(self, pbegin: beam.pvalue.PBegin) -> DumpRows:
        tallies, dead = [], []
        paths = pbegin | "DumpFiles" >> beam.Create(self._dumps.files)
        if self._dumps.archives:
            shards = apply_accounted(
                pbegin | "Archives" >> beam.Create(self._dumps.archives) | "Reshuffle" >> beam.Reshuffle(),
                "TranscodeArchives", TranscodeArchives(self._transcode_dir, self._shard_bytes))
            tallies.append(shards.tally)
            dead.append(shards.dead_letter)
            paths = (paths, shards.out) | "AllDumpFiles" >> beam.Flatten()
        lines = paths | "ReadLines" >> ReadLineBatches()
        rows = lines.out | "ParseRows" >> beam.ParDo(self._parse).with_outputs(POSTS, POSTLINKS, TALLY, DEAD_LETTER)
        tallies += [lines.tally, rows[TALLY]]
        dead += [lines.dead_letter, rows[DEAD_LETTER]]
        return DumpRows(rows[POSTS], rows[POSTLINKS], tuple(tallies) | "Tallies" >> beam.Flatten(),
                        tuple(dead) | "DeadLetters" >> beam.Flatten())
