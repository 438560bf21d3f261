"""A join of keyed PCollections by one GroupByKey that copies no group into memory.

Generic: nothing here knows about records or duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam


class Tagged:
    """The values of one tag in a grouped tagged union, re-iterable without being copied (on
    Dataflow a GroupByKey's values are paged in, so a group never has to fit in memory)."""

    def __init__(self, values: Iterable[tuple[str, Any]], tag: str) -> None:
        self._values, self._tag = values, tag

    def __iter__(self) -> Iterator[Any]:
        return (v for t, v in self._values if t == self._tag)

    def first(self) -> Any:
        return next(iter(self), None)


class StreamingJoin(beam.PTransform):
    """``{tag: PCollection[(key, value)]}`` -> ``(key, {tag: Tagged})`` by one GroupByKey.

    Like CoGroupByKey, except that nothing is copied into per-tag lists (Beam Python's CoGroupByKey
    builds them): a key with a million values (a boilerplate text's records, a hub node's edges)
    costs no memory. Consumers iterate a tag's values as often as they need."""

    def expand(self, inputs: dict[str, beam.PCollection]) -> beam.PCollection:
        tags = sorted(inputs)
        tagged = tuple(inputs[t] | f"Tag{t.title()}" >> beam.Map(lambda kv, t=t: (kv[0], (t, kv[1]))) for t in tags)
        return (
            tagged
            | "Union" >> beam.Flatten()
            | "Group" >> beam.GroupByKey()
            | "Split" >> beam.Map(lambda kv: (kv[0], {t: Tagged(kv[1], t) for t in tags}))
        )
