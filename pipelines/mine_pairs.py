"""Mining translation pairs out of two monolingual corpora with a sentence encoder.

    python -m pipelines.mine_pairs --source='news.de/*.txt' --source_language=deu \\
        --target='news.en/*.txt' --target_language=eng --score_with=EXPORT --output_dir=out/mined \\
        [--margin_k=4] [--threshold=1.06] [--mode=intersect] [--block_size=4000] [beam options]

Reads text, one sentence per line (splittable; local or gs://, .gz allowed), embeds every distinct
sentence with ``--score_with`` (a ``trainer.export_tfhub --export_type=text_embedder`` folder), finds
every sentence's exact k nearest neighbours on the other side by blocked matrix products, and keeps each
source sentence's best target by ratio margin (Artetxe & Schwenk 2019) when the margin reaches
``--threshold`` (and, with ``--mode=intersect``, that target's best source is that sentence:
LASER's BUCC mining). See ``transforms.encoders.mining`` for the steps and the accounting. Writes the
mined pairs as ``specs.SCORED_TRANSLATION_PAIRS`` TFRecords (``pairs/``, the spec beside them; with
``--write_jsonl`` a JSONL.gz copy), which ``translation_pairs`` and the trainer read, the dead letters and
``summary.json``.
"""

from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from specs.errors import ConfigError
from transforms import encoders
from transforms import translation as tr
from transforms.core import flags, runtime
from transforms.core.flags import flag_list
from transforms.core.lines import ReadLineBatches
from transforms.core.runtime import Built, CommonOptions, Ledger, main
from transforms.core.storage import match_files
from transforms.encoders import mining


class MinePairsOptions(CommonOptions):
    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument("--source", action="append", default=[],
                            help="Source-side text files or globs, one sentence per line (repeatable, or "
                                 "comma-separated); local or gs://, .gz allowed.")
        parser.add_argument("--source_language", default="", help="Language code of --source (e.g. deu).")
        parser.add_argument("--target", action="append", default=[], help="Target-side files, as --source.")
        parser.add_argument("--target_language", default="eng", help="Language code of --target.")
        parser.add_argument("--score_with", default=None,
                            help="A text_embedder export (python -m trainer.export_tfhub --export_type=text_embedder), "
                                 "the sentence encoder that mines.")
        parser.add_argument("--margin_k", type=int, default=4,
                            help="Nearest neighbours per sentence in the margin's denominator (and candidates).")
        parser.add_argument("--threshold", type=float, default=1.06,
                            help="Minimum ratio margin of a mined pair (bench/mine_pairs.py measures where to set "
                                 "it for an encoder).")
        parser.add_argument("--mode", default=mining.INTERSECT, choices=encoders.MINE_MODES,
                            help="intersect: a source's best target is mined only if that target's best source "
                                 "is that sentence (LASER's BUCC); forward: every source's best target.")
        parser.add_argument("--block_size", type=int, default=4000,
                            help="Sentences per block: a worker holds two blocks of embeddings and one "
                                 "block x block float32 matrix (4000: 64 MB).")
        flags.add_sharding(parser, records_per_shard=200_000,
                           shards_help="Shards; 0 sizes them by --records_per_shard.")
        parser.add_argument("--write_jsonl", action="store_true", help="Also write a JSONL.gz copy of the pairs.")


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> Built:
    o = options.view_as(MinePairsOptions)
    common = options.view_as(CommonOptions)
    files = {}
    for flag, patterns, language in (("--source", flag_list(o.source), o.source_language),
                                     ("--target", flag_list(o.target), o.target_language)):
        if not patterns:
            raise ConfigError(f"{flag} is required (text files, one sentence per line)")
        if not language:
            raise ConfigError(f"{flag}_language is required (the language code of {flag})")
        runtime.check_inputs_complete(patterns, flag, options, ours=False)
        files[flag] = match_files(patterns, flag)
    if set(files["--source"]) & set(files["--target"]):
        raise ConfigError("--source and --target share files: mining needs two corpora")
    if not o.score_with:
        raise ConfigError("--score_with is required (a text_embedder export, the encoder that mines)")
    encoders.check_text_embedder(o.score_with)
    if o.num_shards < 0 or o.records_per_shard < 1:
        raise ConfigError("--num_shards must be >= 0 and --records_per_shard >= 1")
    mine = encoders.MinePairs(o.score_with, o.source_language, o.target_language, o.margin_k, o.threshold,
                              o.block_size, o.mode)

    ledger = Ledger()
    lines = {side: ledger.add(pipeline | f"Read{side.title()}" >> ReadLineBatches(files[f"--{side}"]))
             for side in ("source", "target")}
    pairs = ledger.add(lines | "MinePairs" >> mine)
    directory = FileSystems.join(common.output_dir, "pairs")
    _ = (pairs | "Once" >> beam.Map(lambda p: (0, p))
         | "WritePairs" >> tr.WriteTranslationPairs(directory, common.seed, o.num_shards, o.records_per_shard,
                                                    o.write_jsonl, spec=tr.pairs_spec(scored=True)))
    # a run that mines nothing (every source below the threshold, or no sentence at all) is not finished
    return ledger.built({"mined pairs": directory},
                        data_files={"mined pairs": [FileSystems.join(directory, "*.tfrecord*")]})


if __name__ == "__main__":
    sys.exit(main("mine_pairs", build))
