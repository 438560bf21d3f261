"""Nothing lost: per-reason counters, dead letters and the run summary.

Every stage that can drop or reject a record derives from ``AccountedDoFn``. For each record it
consumes it calls exactly one of ``self.out``, ``self.filtered`` or ``self.dead_letter`` (after
``self.took_in``), so that for every stage and scope (usually an input file)::

    in == out + filtered + dead_lettered

Each call increments a Beam counter named ``<stage>/<outcome>[/<reason>]`` (visible in the Dataflow
UI and in ``PipelineResult.metrics()``), and the same tallies travel as data on a side output: they are
summed per key in the pipeline and written as ``summary.json``. Data, not metrics, is the source of
the summary because it is exact on every runner (a retried bundle's outputs are discarded together
with its tallies) and because it survives the launcher disconnecting from a long Dataflow job.
"""

from __future__ import annotations

import collections
import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

NAMESPACE = "polyembed"
TALLY = "tally"
DEAD_LETTER = "dead_letter"

IN, OUT, FILTERED, DEAD = "in", "out", "filtered", "dead_lettered"

# A dead letter keeps at most this many characters of the offending record: enough to see what went
# wrong, bounded so that one pathological 100 MB line cannot blow up the dead-letter files.
MAX_DEAD_LETTER_RECORD_CHARS = 4000


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """A record that could not be processed, with enough context to find and fix it."""

    stage: str
    reason: str
    source: str = ""
    offset: int = -1  # byte offset of the record in the (decompressed) source, -1 if unknown
    line: int = -1  # 1-based line number in the source, -1 if unknown or not resolved yet
    detail: str = ""
    record: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def make(cls, stage: str, reason: str, record: bytes | str, **kwargs: Any) -> DeadLetter:
        if isinstance(record, bytes):
            record = record.decode("utf-8", errors="backslashreplace")
        if len(record) > MAX_DEAD_LETTER_RECORD_CHARS:
            record = record[:MAX_DEAD_LETTER_RECORD_CHARS] + f"... [{len(record)} chars]"
        return cls(stage=stage, reason=reason, record=record, **kwargs)


def _key(stage: str, scope: str, outcome: str, reason: str) -> tuple[str, str, str, str]:
    return (stage, scope, outcome, reason)


class AccountedDoFn(beam.DoFn):
    """Base for DoFns that must account for every record they take in.

    Subclasses set ``stage`` (a short name such as ``"parse_posts"``) and call the methods below in
    ``process``; ``dead_letter`` and ``out`` return values to ``yield``. Tallies are summed per bundle
    and emitted on the ``TALLY`` output at the end of the bundle, so the side channel costs a few
    elements per bundle, not one per record.
    """

    stage = "unnamed"

    def start_bundle(self) -> None:
        self._tallies: collections.Counter = collections.Counter()
        if not hasattr(self, "_counters"):
            self._counters: dict[str, Any] = {}

    def _count(self, scope: str, outcome: str, reason: str = "", n: int = 1, stage: str | None = None) -> None:
        if n == 0:
            return
        stage = stage or self.stage
        self._tallies[_key(stage, scope, outcome, reason)] += n
        name = f"{stage}/{outcome}" + (f"/{reason}" if reason else "")
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = Metrics.counter(NAMESPACE, name)
        counter.inc(n)

    # ``stage`` overrides the class's stage for DoFns that account for two levels at once (e.g.
    # question threads and the pairs made from them).
    def took_in(self, scope: str, n: int = 1, *, stage: str | None = None) -> None:
        self._count(scope, IN, "", n, stage)

    def out(self, scope: str, n: int = 1, *, stage: str | None = None) -> None:
        self._count(scope, OUT, "", n, stage)

    def filtered(self, scope: str, reason: str, n: int = 1, *, stage: str | None = None) -> None:
        self._count(scope, FILTERED, reason, n, stage)

    def dead_letter(self, scope: str, letter: DeadLetter, *, stage: str | None = None) -> beam.pvalue.TaggedOutput:
        self._count(scope, DEAD, letter.reason, 1, stage)
        return beam.pvalue.TaggedOutput(DEAD_LETTER, letter)

    def finish_bundle(self) -> Iterator[beam.pvalue.TaggedOutput]:
        for key, n in sorted(self._tallies.items()):
            yield beam.pvalue.TaggedOutput(TALLY, WindowedValue((key, n), MIN_TIMESTAMP, [GlobalWindow()]))
        self._tallies.clear()


class Accounted(NamedTuple):
    """What an accounted composite transform returns: its main output and its two side channels.

    Pipelines collect ``tally`` and ``dead_letter`` of every stage into ``runtime.Built``.
    """

    out: beam.PCollection
    tally: beam.PCollection
    dead_letter: beam.PCollection


def apply_accounted(pcoll: beam.PCollection, label: str, dofn: AccountedDoFn, *args: Any,
                    **kwargs: Any) -> Accounted:
    """``pcoll | label >> ParDo(dofn)`` with the tally and dead-letter outputs split off."""
    res = pcoll | label >> beam.ParDo(dofn, *args, **kwargs).with_outputs(TALLY, DEAD_LETTER, main="out")
    return Accounted(res.out, res[TALLY], res[DEAD_LETTER])


def summarize(tallies: Iterable[tuple[tuple[str, str, str, str], int]]) -> dict[str, Any]:
    """Turns summed tallies into the run summary: per stage and scope the counts by outcome and
    reason, whether ``in == out + filtered + dead_lettered`` holds, and totals per stage."""
    stages: dict[str, dict[str, dict[str, Any]]] = {}
    for (stage, scope, outcome, reason), n in tallies:
        entry = stages.setdefault(stage, {}).setdefault(
            scope, {IN: 0, OUT: 0, FILTERED: {}, DEAD: {}})
        if outcome in (IN, OUT):
            entry[outcome] += n
        else:
            entry[outcome][reason] = entry[outcome].get(reason, 0) + n
    result: dict[str, Any] = {"balanced": True, "stages": {}}
    for stage in sorted(stages):
        scopes = {}
        total = {IN: 0, OUT: 0, FILTERED: collections.Counter(), DEAD: collections.Counter()}
        for scope in sorted(stages[stage]):
            e = stages[stage][scope]
            e[FILTERED] = dict(sorted(e[FILTERED].items()))
            e[DEAD] = dict(sorted(e[DEAD].items()))
            e["balanced"] = e[IN] == e[OUT] + sum(e[FILTERED].values()) + sum(e[DEAD].values())
            result["balanced"] &= e["balanced"]
            scopes[scope] = e
            total[IN] += e[IN]
            total[OUT] += e[OUT]
            total[FILTERED].update(e[FILTERED])
            total[DEAD].update(e[DEAD])
        result["stages"][stage] = {
            "total": {IN: total[IN], OUT: total[OUT], FILTERED: dict(sorted(total[FILTERED].items())),
                      DEAD: dict(sorted(total[DEAD].items()))},
            "scopes": scopes,
        }
    return result


def _elide(text: str, width: int) -> str:
    """``text`` cut in the middle to ``width`` characters (the ends of a path say the most)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def format_summary(summary: Mapping[str, Any], max_scopes: int = 12, max_scope_width: int = 72) -> str:
    """A human-readable table: per stage the totals with reasons, then one line per scope (usually an
    input file) unless a stage has more than ``max_scopes`` balanced scopes (summary.json has them all).
    Columns are as wide as their longest entry, so long stage names, scope names and counts stay
    aligned; scopes longer than ``max_scope_width`` are cut in the middle (summary.json has them whole)."""
    def counts(stage: str, scope: str, e: Mapping[str, Any]) -> tuple[str, str, int, int, int, int]:
        return stage, scope, e[IN], e[OUT], sum(e[FILTERED].values()), sum(e[DEAD].values())

    rows: list[tuple[str, str, int, int, int, int] | str] = []
    for stage, s in summary["stages"].items():
        rows.append(counts(stage, "TOTAL", s["total"]))
        rows.extend(f"filtered {reason}: {n}" for reason, n in s["total"][FILTERED].items())
        rows.extend(f"dead-lettered {reason}: {n}" for reason, n in s["total"][DEAD].items())
        scopes = s["scopes"]
        shown = [k for k, e in scopes.items() if len(scopes) <= max_scopes or not e["balanced"]]
        rows.extend(counts(stage, _elide(k, max_scope_width), scopes[k]) for k in shown)
        if len(shown) < len(scopes):
            rows.append(f"({len(scopes) - len(shown)} more scopes, all balanced: see summary.json)")
    table = [r for r in rows if not isinstance(r, str)]
    w = [max([len(str(r[i])) for r in table] + [1]) for i in range(6)]
    lines = []
    for row in rows:
        if isinstance(row, str):
            lines.append(f"{'':<{w[0]}}   {row}")
            continue
        stage, scope, n_in, n_out, nf, nd = row
        ok = "ok" if n_in == n_out + nf + nd else "UNBALANCED"
        lines.append(f"{stage:<{w[0]}}  {scope:<{w[1]}}  in={n_in:<{w[2]}}  out={n_out:<{w[3]}}  "
                     f"filtered={nf:<{w[4]}}  dead_lettered={nd:<{w[5]}}  {ok}")
    verdict = "in == out + filtered + dead_lettered holds for every stage and scope" if summary["balanced"] \
        else "ACCOUNTING IS UNBALANCED: some records were neither output, filtered nor dead-lettered"
    return "\n".join([*lines, verdict])


class _WriteJson(beam.DoFn):
    def __init__(self, path: str) -> None:
        self._path = path

    def process(self, summary: dict[str, Any]) -> Iterator[str]:
        with FileSystems.create(self._path) as f:
            f.write((json.dumps(summary, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        yield self._path


class WriteRunSummary(beam.PTransform):
    """Sums the tallies (a PCollection of ``TALLY`` outputs, flattened) and writes ``summary.json``."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def expand(self, tallies: beam.PCollection) -> beam.PCollection:
        return (
            tallies
            | "SumPerKey" >> beam.CombinePerKey(sum)
            | "AllTallies" >> beam.combiners.ToList()
            | "Summarize" >> beam.Map(lambda ts: summarize(sorted(ts)))
            | "Write" >> beam.ParDo(_WriteJson(self._path))
        )


def read_summary(path: str) -> dict[str, Any]:
    with FileSystems.open(path) as f:
        return json.loads(f.read().decode("utf-8"))
