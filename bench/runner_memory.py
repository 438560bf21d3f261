"""What the local runner holds as the data grows: the spilling writer against Beam's shuffle.

    python bench/runner_memory.py [--mb 16 32 64] [--record_bytes 800] [--records_per_shard 10000]

For each size, a fresh process runs a pipeline with ``--direct_running_mode=multi_processing
--direct_num_workers=2`` whose records (``--record_bytes`` each, keyed by a hash) are made inside the
workers, in batches of 1,000, then either

- ``shuffle``: keyed into 16 groups, grouped, and each group's size summed: Beam alone, no state of ours;
- ``spill``: ``WriteShards(batched=True, method="spill")`` (the default off Dataflow) to shards of
  ``--records_per_shard`` records: records go to sorted run files and each shard is written from them,
  so only run names cross the runner;
- ``write_shuffle``: the same with ``method="shuffle"`` (Dataflow's default): records grouped by shard
  through the runner, which on this runner holds them in memory (the shard count is a side input
  computed from the records, so they are held until it is known, and then grouped),

and prints the peak RSS of the worker processes (the largest, from ``RUSAGE_CHILDREN`` once they have
exited) and of the controller, which is where the local runner keeps PCollections between stages.
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

    from transforms.core.runners import local_runner
    from transforms.core.seeding import stable_hash64
    from transforms.core.shards import WriteShards

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
            method = "spill" if subject == "spill" else "shuffle"
            _ = records | WriteShards(os.path.join(out, "part"), ".tfrecord", "tfrecord", "uncompressed",
                                      records_per_shard=per_shard, batched=True, method=method)
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
    print(f"{'subject':<14}{'MB':>6}{'records':>10}{'workers peak MiB':>18}{'controller peak MiB':>21}")
    for subject in ("shuffle", "spill", "write_shuffle"):
        for mb in args.mb:
            res = subprocess.run([sys.executable, __file__, "--child", subject, str(mb),
                                  f"--record_bytes={args.record_bytes}",
                                  f"--records_per_shard={args.records_per_shard}"],
                                 check=True, capture_output=True, text=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"{subject:<14}{mb:>6}{r['records']:>10,}{r['workers_kib'] / 1024:>18,.0f}"
                  f"{r['controller_kib'] / 1024:>21,.0f}")


if __name__ == "__main__":
    main()
