"""Element-wise tuple sums: the vocab job's ``SumTuples`` against Beam's ``TupleCombineFn``.

    python bench/sum_tuples.py [--records 1000000] [--width 5] [--keys 50] [--repeat 3]

The vocab job sums fixed-width integer tuples (3 per language, 4 for the pruning report, 5 per
language for coverage) with ``beam.CombineGlobally`` and ``beam.CombinePerKey``. Each variant runs
the same pipeline on the DirectRunner (the in-process FnApiRunner): ``--records`` tuples generated
in 100 bundles (seeded, so every variant sums the same numbers) and combined; each variant's result is
first checked against a plain Python sum on a small run.
``generate only`` runs the pipeline with Beam's ``Count`` in place of the sum, so ``combine s`` (the
run's CPU time less that baseline's) is what the sum itself costs. Each figure is the least of
``--repeat`` runs; the ratio is against ``SumTuples`` in the same run.
"""

from __future__ import annotations

import argparse
import pathlib
import random
import sys
import time
from collections.abc import Callable, Iterator

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import cy_combiners

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from transforms.core.runners import local_runner  # noqa: E402
from transforms.vocab import SumTuples  # noqa: E402

BUNDLES = 100


def _tuples(bundle: int, per_bundle: int, width: int, keys: int) -> Iterator[tuple[int, tuple[int, ...]]]:
    rng = random.Random(bundle)
    for _ in range(per_bundle):
        yield rng.randrange(keys), tuple(rng.randrange(1000) for _ in range(width))


def _run(records: int, width: int, keys: int, per_key: bool, combine: Callable[[], beam.PTransform],
         expect: list | None = None) -> float:
    """CPU seconds of one pipeline run (this process: the FnApiRunner runs in it); with ``expect``,
    the run also checks its output."""
    start = time.process_time()
    with beam.Pipeline(runner=local_runner()) as p:
        rows = (p | beam.Create(range(BUNDLES))
                | beam.FlatMap(_tuples, records // BUNDLES, width, keys))
        if not per_key:
            rows = rows | beam.Values()
        out = rows | combine()
        if expect is not None:
            assert_that(out, equal_to(expect))
    return time.process_time() - start


def _expected(records: int, width: int, keys: int, per_key: bool) -> list:
    sums: dict[int, list[int]] = {}
    for bundle in range(BUNDLES):
        for key, t in _tuples(bundle, records // BUNDLES, width, keys):
            acc = sums.setdefault(key if per_key else 0, [0] * width)
            acc[:] = [a + b for a, b in zip(acc, t, strict=True)]
    return [(k, tuple(v)) for k, v in sums.items()] if per_key else [tuple(sums[0])]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=1_000_000, help="tuples summed per run")
    p.add_argument("--width", type=int, default=5, help="tuple width (the vocab job's are 3, 4 and 5)")
    p.add_argument("--keys", type=int, default=50, help="keys of the per-key runs (languages)")
    p.add_argument("--repeat", type=int, default=3, help="runs per figure; the least CPU time counts")
    a = p.parse_args()
    w = a.width
    variants: dict[str, Callable[[], beam.CombineFn]] = {
        "SumTuples": lambda: SumTuples(w),
        "TupleCombineFn(sum, ...)": lambda: beam.combiners.TupleCombineFn(*(sum,) * w),
        "TupleCombineFn(SumInt64Fn(), ...)": lambda: beam.combiners.TupleCombineFn(
            *(cy_combiners.SumInt64Fn() for _ in range(w))),
    }
    print(f"{a.records:,} tuples of width {w}; per key: {a.keys} keys; least CPU of {a.repeat} runs; "
          f"beam {beam.__version__}, {BUNDLES} bundles")
    for per_key, label in ((False, "CombineGlobally"), (True, "CombinePerKey")):
        count = (lambda: beam.combiners.Count.PerKey()) if per_key else (lambda: beam.combiners.Count.Globally())
        base = min(_run(a.records, w, a.keys, per_key, count) for _ in range(a.repeat))
        print(f"\n{label}: generate only {base:.2f} s CPU")
        print(f"{'combiner':<36} {'run s':>7} {'combine s':>10} {'records/s':>12} {'vs ours':>8}")
        ours = None
        for name, fn in variants.items():
            make = (lambda fn=fn: beam.CombinePerKey(fn())) if per_key else (lambda fn=fn: beam.CombineGlobally(fn()))
            _run(10_000, w, a.keys, per_key, make, _expected(10_000, w, a.keys, per_key))
            cpu = min(_run(a.records, w, a.keys, per_key, make) for _ in range(a.repeat))
            combine = max(cpu - base, 1e-9)
            ours = ours or combine
            print(f"{name:<36} {cpu:7.2f} {combine:10.2f} {a.records / combine:12,.0f} {ours / combine:7.2f}x")


if __name__ == "__main__":
    main()
