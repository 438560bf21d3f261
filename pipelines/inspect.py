"""Looks inside masked-LM pretraining records: ``python -m pipelines.inspect PATH``.

    python -m pipelines.inspect out/pretrain --vocab_file=vocab.txt --num_examples=3

PATH is an output directory, a shard, or a glob (local or gs://). The records are parsed with the spec
found next to them (``schema.pbtxt`` plus ``feature_spec.json``), so any layout the pretraining
pipeline writes is understood: v1 names (``input_ids``/``segment_ids``), v2 names
(``input_word_ids``/``input_type_ids``), or dynamic-masking records with only ids and segments. Shards
may be GZIP or plain (told apart by their first bytes, not their names).

Prints decoded examples (segments, each masked position with the token shown and the original), then
statistics over every record read: lengths, segment lengths, the mask rate, the 80/10/10 split of
[MASK]/random/kept with 95% intervals, NSP balance, the [UNK] rate, and structural checks (positions
sorted, unique, inside the sequence and never on [CLS]/[SEP]/padding; [CLS] A [SEP] B [SEP] layout;
segment ids; padding). Writes a PNG of the distributions. Exits 1 when a check fails, 2 on bad
arguments. This is a single-process reader, not a Beam job: statistics are streamed in batches (memory
does not grow with the data) and ``--max_records`` bounds the time on a large dataset.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import specs
from specs.command_line import StrictParser
from specs.errors import ConfigError
from transforms.pretraining.inspection import inspect, write_stats_json


def main(argv: Sequence[str] | None = None) -> int:
    parser = StrictParser(prog="python -m pipelines.inspect", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="output directory, shard or glob of pretraining TFRecords (local or gs://)")
    parser.add_argument("--vocab_file", default=None,
                        help="vocab.txt to show tokens (default: the vocab_file in params.json, if readable)")
    parser.add_argument("--num_examples", type=int, default=3, help="records to print decoded")
    parser.add_argument("--max_records", type=int, default=None, help="read at most this many records")
    parser.add_argument("--histogram", default="inspect_histogram.png", help="PNG to write ('' for none)")
    parser.add_argument("--stats_json", default=None, help="also write the statistics as JSON here")
    parser.add_argument("--spec_dir", default=None, help="where schema.pbtxt is, if not next to the data")
    parser.add_argument("--allow_incomplete", action="store_true",
                        help="read records whose run folder has no completion marker (an unfinished run, or "
                             "records written elsewhere)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        if args.num_examples < 0 or (args.max_records is not None and args.max_records < 1):
            raise ConfigError("--num_examples must be >= 0 and --max_records >= 1")
        res = inspect(args.path, vocab_file=args.vocab_file, num_examples=args.num_examples,
                      max_records=args.max_records, histogram=args.histogram or None, spec_dir=args.spec_dir,
                      allow_incomplete=args.allow_incomplete)
    except (ConfigError, specs.SpecError) as e:
        print(f"inspect: error: {e}", file=sys.stderr)
        return 2
    if args.stats_json:
        write_stats_json(res, args.stats_json)
    return 1 if res["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
