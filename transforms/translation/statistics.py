"""``stats.json`` and ``stats.png`` of the translation job: counts per language pair, stage and input
file, token-length histograms of what was written, balancing targets against what was realised."""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from transforms.core import accounting
from transforms.translation.cleaning import count_tokens
from transforms.translation.records import CLEAN_STAGE, READ_STAGE, TranslationPair
from transforms.translation.sampling import LENGTH_BINS, length_bin, unordered_lang_pair

# --- Beam: statistics --------------------------------------------------------------------------

STATS_JSON, STATS_PNG = "stats.json", "stats.png"


def length_keys(split: str, pair: TranslationPair) -> Iterator[tuple[str, str, str, int]]:
    """The histogram keys one written pair counts towards: the pair, and each side's length bin."""
    yield split, pair.lang_pair, "pairs", 0
    yield split, pair.lang_pair, "src", length_bin(count_tokens(pair.src))
    yield split, pair.lang_pair, "tgt", length_bin(count_tokens(pair.tgt))


class _CountLengths(beam.DoFn):
    """Histogram counts summed per bundle (a few elements per bundle instead of three per pair)."""

    def __init__(self, split: str) -> None:
        self._split = split

    def start_bundle(self) -> None:
        self._counts: collections.Counter = collections.Counter()

    def process(self, item: tuple[int, TranslationPair]) -> Iterable[tuple[tuple[str, str, str, int], int]]:
        """Emits nothing itself: the counts leave in ``finish_bundle``. The return type names them, since
        Beam reads a DoFn's element type from ``process`` (and refuses ``-> None`` since 2.78)."""
        self._counts.update(length_keys(self._split, item[1]))
        return ()

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for key, n in sorted(self._counts.items()):
            yield WindowedValue((key, n), MIN_TIMESTAMP, [GlobalWindow()])
        self._counts.clear()


def build_statistics(tallies: Iterable[tuple[tuple[str, str, str, str], int]],
                     lengths: Iterable[tuple[tuple[str, str, str, int], int]],
                     targets: Mapping[str, Any]) -> dict[str, Any]:
    """The statistics document: per language pair and stage the counts in/out by reason, per input
    file what was read, per split and language pair what was written with token-length histograms
    (bins are lower edges of LENGTH_BINS), and the balancing targets against what was realised."""
    per_lp: dict[str, dict[str, dict[str, Any]]] = {}
    per_file: dict[str, dict[str, Any]] = {}
    for (stage, scope, outcome, reason), n in sorted(tallies):
        where = per_file.setdefault(scope, {}) if stage == READ_STAGE else \
            per_lp.setdefault(scope, {}).setdefault(stage, {})
        if outcome in (accounting.IN, accounting.OUT):
            where[outcome] = where.get(outcome, 0) + n
        else:
            bucket = where.setdefault(outcome, {})
            bucket[reason] = bucket.get(reason, 0) + n
    written: dict[str, dict[str, Any]] = {}
    for (split, lp, what, edge), n in sorted(lengths):
        entry = written.setdefault(split, {}).setdefault(lp, {"pairs": 0, "src_tokens": {}, "tgt_tokens": {}})
        if what == "pairs":
            entry["pairs"] += n
        else:
            entry[f"{what}_tokens"][str(edge)] = n
    realised: dict[str, int] = {}
    for lp, entry in written.get("train", {}).items():
        src_lang, tgt_lang = lp.split("-", 1) if "-" in lp else (lp, "")
        key = unordered_lang_pair(src_lang, tgt_lang)
        realised[key] = realised.get(key, 0) + entry["pairs"]
    balance = {lp: {**t, "realised": realised.get(lp, 0)} for lp, t in sorted(targets.items())}
    return {"language_pairs": per_lp, "inputs": per_file, "written": written, "balance_train": balance,
            "length_bins": list(LENGTH_BINS)}


def draw_statistics(stats: Mapping[str, Any], path: str) -> None:
    """A PNG with pairs read/kept/written per language pair and the token-length histograms.

    Readable at 100% zoom: 10-12 pt text at 100 dpi, the figure as tall as its language pairs need;
    the three counts of a language pair are bars side by side (never drawn over each other, so a
    bar equal to or larger than another stays visible) with their values written at their ends, and
    the legend sits below the axes, over no bar."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    lps = sorted(stats["language_pairs"])
    took = [stats["language_pairs"][lp].get(CLEAN_STAGE, {}).get(accounting.IN, 0) for lp in lps]
    kept = [stats["language_pairs"][lp].get(CLEAN_STAGE, {}).get(accounting.OUT, 0) for lp in lps]
    written = [sum(s.get(lp, {}).get("pairs", 0) for s in stats["written"].values()) for lp in lps]
    series = (("read", took, "#bdbdbd"), ("after cleaning", kept, "#6baed6"), ("written (all splits)", written,
                                                                                "#08519c"))
    bar = 0.27
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, max(5.0, 0.95 * len(lps) + 2.0)),
                                   gridspec_kw={"width_ratios": [3, 2]})
    top = max([*took, *kept, *written, 1])
    for k, (label, values, color) in enumerate(series):
        ys = [i + (k - 1) * bar for i in range(len(lps))]
        ax1.barh(ys, values, height=bar, color=color, label=label)
        for y, v in zip(ys, values, strict=True):
            ax1.text(v + top * 0.01, y, f"{v:,}", va="center", fontsize=9)
    ax1.set_xlim(0, top * 1.15)
    ax1.set_yticks(list(range(len(lps))), lps, fontsize=11)
    ax1.invert_yaxis()
    ax1.set_xlabel("pairs", fontsize=11)
    ax1.tick_params(axis="x", labelsize=10)
    ax1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=10, frameon=False)
    ax1.set_title("pairs per language pair", fontsize=12)
    for side, color in (("src", "#3182bd"), ("tgt", "#e6550d")):
        hist = [0] * len(LENGTH_BINS)
        for split in stats["written"].values():
            for entry in split.values():
                for edge, n in entry[f"{side}_tokens"].items():
                    hist[LENGTH_BINS.index(int(edge))] += n
        offset = -0.2 if side == "src" else 0.2
        ax2.bar([i + offset for i in range(len(LENGTH_BINS))], hist, width=0.4, color=color, label=side)
    ax2.set_xticks(range(len(LENGTH_BINS)), [f">={b}" for b in LENGTH_BINS], fontsize=10, rotation=45)
    ax2.tick_params(axis="y", labelsize=10)
    ax2.set_xlabel("tokens per side", fontsize=11)
    ax2.set_ylabel("written pairs", fontsize=11)
    ax2.legend(fontsize=10)
    ax2.set_title("length histogram", fontsize=12)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    with FileSystems.create(path) as f:
        f.write(buf.getvalue())


class _WriteStatistics(beam.DoFn):
    def __init__(self, directory: str, chart: bool) -> None:
        self._dir, self._chart = directory, chart

    def process(self, tallies: list[Any], lengths: list[Any], targets: Mapping[str, Any]) -> Iterator[str]:
        stats = build_statistics(tallies, lengths, targets)
        path = FileSystems.join(self._dir, STATS_JSON)
        with FileSystems.create(path) as f:
            f.write((json.dumps(stats, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        yield path
        if self._chart:
            png = FileSystems.join(self._dir, STATS_PNG)
            draw_statistics(stats, png)
            yield png


class WriteStatistics(beam.PTransform):
    """``stats.json`` (and ``stats.png``) from the job's tallies, the written pairs of every split
    and the balancing targets. Everything it combines is small: counts per key."""

    def __init__(self, directory: str, chart: bool = True) -> None:
        super().__init__()
        self._dir, self._chart = directory, chart

    def expand(self, inputs: tuple[beam.PCollection, Mapping[str, beam.PCollection], beam.PCollection]
               ) -> beam.PCollection:
        tallies, written, targets = inputs
        pipeline = tallies.pipeline
        lengths = (
            tuple(pcoll | f"Lengths{split.title()}" >> beam.ParDo(_CountLengths(split))
                  for split, pcoll in sorted(written.items()))
            | "AllLengths" >> beam.Flatten(pipeline=pipeline)
            | "SumLengths" >> beam.CombinePerKey(sum)
            | "LengthList" >> beam.combiners.ToList()
        )
        tally_list = (
            tallies
            | "SumTallies" >> beam.CombinePerKey(sum)
            | "TallyList" >> beam.combiners.ToList()
        )
        return tally_list | "Write" >> beam.ParDo(
            _WriteStatistics(self._dir, self._chart), beam.pvalue.AsSingleton(lengths),
            beam.pvalue.AsSingleton(targets))
