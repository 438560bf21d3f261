"""What the local runner's worker processes hold as the data grows: our writer against a bare shuffle.

    python bench/runner_memory.py [--mb 16 32 64] [--record_bytes 800] [--records_per_shard 10000]

For each size, a fresh process runs a pipeline with ``--direct_running_mode=multi_processing
--direct_num_workers=2`` whose records (``--record_bytes`` each, keyed by a hash) are made inside the
workers, in batches of 1,000, then either

- ``shuffle``: keyed into 16 groups, grouped, and each group's size summed: Beam alone, no state of ours;
- ``write``: ``WriteShards(batched=True)`` to shards of ``--records_per_shard`` records, which is
  what every polyembed pipeline ends with (the shard count is a side input computed from the records,
  so the runner holds them until it is known);
- ``write_fixed``: the same with the shard count given (the same records per shard), so the records
  go straight to the shuffle,

and prints the peak RSS of the worker processes (the largest, from ``RUSAGE_CHILDREN`` once they have
exited) and of the controller. If both subjects grow alike with the data, the growth is the runner's
(its data channel and in-memory shuffle), not the writer's; what a Dataflow worker holds is bounded by
one shard.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

BATCH = 1000


def _child(subject: str, mb: int, record_bytes: int, per_shard: int, out: str) -> None:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from transforms.files import WriteShards
    from transforms.runtime import local_runner
    from transforms.seeding import stable_hash64

    batches = max(1, mb * 1_000_000 // (record_bytes * BATCH))

    def make(i: int) -> list[tuple[bytes, bytes]]:
        return [(stable_hash64(i, j).to_bytes(8, "big"), bytes([j % 251]) * record_bytes) for j in range(BATCH)]

    options = PipelineOptions(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    with beam.Pipeline(runner=local_runner(), options=options) as p:
        records = p | beam.Create(range(batches)) | "Spread" >> beam.Reshuffle() | "Make" >> beam.Map(make)
        if subject == "shuffle":
            _ = (records
                 | beam.FlatMap(lambda batch: [(r[0][0] % 16, r) for r in batch])
                 | beam.GroupByKey()
                 | beam.Map(lambda kv: sum(len(r[1]) for r in kv[1])))
        else:
            fixed = -(-batches * BATCH // per_shard) if subject == "write_fixed" else 0
            _ = records | WriteShards(os.path.join(out, "part"), ".tfrecord", "tfrecord", "uncompressed",
                                      num_shards=fixed, records_per_shard=per_shard, batched=True)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    controller = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"workers_kib": workers, "controller_kib": controller, "records": batches * BATCH}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--record_bytes", type=int, default=800)
    ap.add_argument("--records_per_shard", type=int, default=10_000)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as out:
            _child(args.child[0], int(args.child[1]), args.record_bytes, args.records_per_shard, out)
        return
    print(f"{'subject':<12}{'MB':>6}{'records':>10}{'workers peak MiB':>18}{'controller peak MiB':>21}")
    for subject in ("shuffle", "write", "write_fixed"):
        for mb in args.mb:
            res = subprocess.run([sys.executable, __file__, "--child", subject, str(mb),
                                  f"--record_bytes={args.record_bytes}",
                                  f"--records_per_shard={args.records_per_shard}"],
                                 check=True, capture_output=True, text=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"{subject:<12}{mb:>6}{r['records']:>10,}{r['workers_kib'] / 1024:>18,.0f}"
                  f"{r['controller_kib'] / 1024:>21,.0f}")


if __name__ == "__main__":
    main()
