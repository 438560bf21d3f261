"""Connected components of a graph of ``(u, v)`` edges on Beam (Kiveris et al., 2014).

Generic: nothing here knows about records or duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from specs.errors import ConfigError
from transforms.core.accounting import NAMESPACE


def _canonical(edge: tuple[bytes, bytes]) -> Iterator[tuple[bytes, bytes]]:
    u, v = edge
    if u != v:
        yield (u, v) if u < v else (v, u)


def _both_ways(edge: tuple[bytes, bytes]) -> Iterator[tuple[bytes, bytes]]:
    yield edge
    yield edge[1], edge[0]


def large_star(item: tuple[bytes, Iterable[bytes]]) -> Iterator[tuple[bytes, bytes]]:
    """Kiveris et al. (2014) large-star: link every larger neighbour of ``u`` to the smallest node of
    ``u``'s closed neighbourhood. Two passes over the neighbours, nothing stored."""
    u, neighbours = item
    m = min(neighbours, default=u)
    m = min(m, u)
    for v in neighbours:
        if v > u:
            yield (m, v)


def small_star(item: tuple[bytes, Iterable[bytes]]) -> Iterator[tuple[bytes, bytes]]:
    """Small-star, for node ``u`` and its smaller neighbours: link them and ``u`` to the smallest.

    The neighbours arrive with repeats (large-star emits one edge per occurrence); they are made
    distinct here, in memory proportional to ``u``'s degree, instead of by a shuffle per step."""
    u, smaller = item
    distinct = set(smaller)
    m = min(distinct)
    for v in sorted(distinct):
        if v != m:
            yield (m, v)
    yield (m, u)


def star_labels(item: tuple[bytes, Iterable[tuple[bool, bytes]]]) -> Iterator[tuple[bytes, bytes] | Any]:
    """For one node of the final edge set ``(center, leaf)``: its label, and whether the star-forest
    property that marks convergence fails at it (a leaf with two centres, or a leaf that is itself a
    centre). Emits ``(node, label)`` and, if unconverged, a tagged 1."""
    node, roles = item
    centres: set[bytes] = set()
    is_centre = False
    for as_leaf, other in roles:
        if as_leaf:
            centres.add(other)
        else:
            is_centre = True
    yield (node, min(centres) if centres else node)
    if centres and (is_centre or len(centres) > 1):
        yield beam.pvalue.TaggedOutput("unconverged", 1)


class ComponentLabels(NamedTuple):
    labels: beam.PCollection  # (node, label) for every node that has an edge
    unconverged: beam.PCollection  # one int: nodes where the star-forest check failed (0 = converged)


class ConnectedComponents(beam.PTransform):
    """Connected components of an undirected graph given as ``(u, v)`` edges of bytes node ids.

    ``rounds`` unrolled rounds of large-star then small-star (Kiveris et al., "Connected Components
    in MapReduce and Beyond", 2014): two GroupByKeys per round, edges made distinct in the
    small-star step (a repeated edge only costs its copies, never changes the result). Every component
    then is a star around its smallest node, which becomes its label. The rounds are fixed (a Beam
    graph has no loops); the result is checked: the number of nodes where the star-forest property
    fails is output (0 when converged), logged as a warning and counted as
    ``polyembed/<stage>/components_not_converged``. An unconverged result can split a component,
    never merge two, so duplicates can only be kept too often, never removed wrongly.
    """

    def __init__(self, rounds: int = 8, stage: str = "components") -> None:
        super().__init__()
        if rounds < 1:
            raise ConfigError(f"connected components need at least 1 round, got {rounds}")
        self._rounds = rounds
        self._stage = stage

    def expand(self, edges: beam.PCollection) -> ComponentLabels:
        edges = edges | "Canonical" >> beam.FlatMap(_canonical) | "Distinct" >> beam.Distinct()
        for r in range(self._rounds):
            edges = (
                edges
                | f"LargeStarEmit{r}" >> beam.FlatMap(_both_ways)
                | f"LargeStarGroup{r}" >> beam.GroupByKey()
                | f"LargeStar{r}" >> beam.FlatMap(large_star)
                | f"SmallStarEmit{r}" >> beam.Map(lambda e: (e[1], e[0]))
                | f"SmallStarGroup{r}" >> beam.GroupByKey()
                | f"SmallStar{r}" >> beam.FlatMap(small_star)
            )
        checked = (
            edges
            | "Roles" >> beam.FlatMap(lambda e: [(e[1], (True, e[0])), (e[0], (False, b""))])
            | "GroupRoles" >> beam.GroupByKey()
            | "Labels" >> beam.FlatMap(star_labels).with_outputs("unconverged", main="labels")
        )
        unconverged = (
            checked.unconverged
            | "CountUnconverged" >> beam.CombineGlobally(sum)
            | "Report" >> beam.Map(_report_convergence, self._stage, self._rounds)
        )
        return ComponentLabels(checked.labels, unconverged)


def _report_convergence(n: int, stage: str, rounds: int) -> int:
    if n:
        Metrics.counter(NAMESPACE, f"{stage}/components_not_converged").inc(n)
        logging.warning("%s: connected components did not converge in %d rounds at %d nodes; some "
                        "clusters may be split (raise the number of rounds)", stage, rounds, n)
    return n
