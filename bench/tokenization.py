"""In-graph tokenizer throughput: lines/s of ``trainer.text.tokenization.BertTokenization`` (the trainer's
input pipeline, the tensorflow-transform materialisation and the Hub preprocessing model) against the
tokenizer it replaced (``tensorflow_text.FastBertTokenizer`` with its own normaliser, which gave other
ids than the reference on 7-10% of multilingual lines), and of the Beam engine
(``transforms.text.bert_tokenization.BertTokenizer``), on the same lines in the same run.

    python bench/tokenization.py                      # FLORES devtest (34 languages) + WikiText
    python bench/tokenization.py --lines=200 --repeats=5 --batch=256

Each engine runs ``--repeats`` passes over the lines in batches of ``--batch`` inside one
``tf.function`` (as ``tf.data`` and a SavedModel run it); the first pass (tracing) is not timed. Prints
one JSON line per vocabulary with lines and MB per CPU second, the ratio new/old and the process's peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf
import tensorflow_text as tf_text

from specs import vocabulary
from trainer.text.tokenization import BertTokenization, load_vocab
from transforms.text.bert_tokenization import BertTokenizer

SHARED = Path(os.environ.get("POLYEMBED_SHARED", Path(__file__).resolve().parent.parent.parent / "shared")) / "data"
VOCABS = (("bert-base-uncased", True), ("bert-base-cased", False), ("bert-base-multilingual-cased", False))


def corpus(lines_per_file: int) -> list[str]:
    """The first lines of every FLORES devtest language and of WikiText-2's test split."""
    out: list[str] = []
    for path in sorted((SHARED / "translation" / "flores200_devtest").glob("*.devtest")):
        out += path.read_text(encoding="utf-8").splitlines()[:lines_per_file]
    wiki = (SHARED / "text" / "wikitext-2" / "wiki.test.tokens.txt").read_text(encoding="utf-8").splitlines()
    return out + [line for line in wiki if line.strip()][:lines_per_file]


def timings(engines: dict[str, Any], batches: list[tf.Tensor], repeats: int) -> dict[str, float]:
    """CPU seconds (this process, all threads) per pass over ``batches`` for each engine: the best of
    ``repeats`` passes after one untimed pass, the engines' passes interleaved so that a busy machine
    slows them alike. CPU time rather than wall time: on a shared machine it measures the work."""
    for fn in engines.values():
        for b in batches:
            fn(b)
    best = dict.fromkeys(engines, float("inf"))
    for _ in range(repeats):
        for name, fn in engines.items():
            start = time.process_time()
            for b in batches:
                fn(b)
            best[name] = min(best[name], time.process_time() - start)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=400, help="Lines of each FLORES language and of WikiText.")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--vocab", action="append", default=[], help="Only these vocabularies (default: all three).")
    args = p.parse_args()
    lines = corpus(args.lines)
    megabytes = sum(len(s.encode()) for s in lines) / 1e6
    batches = [tf.constant(lines[i:i + args.batch]) for i in range(0, len(lines), args.batch)]
    for name, lower in VOCABS:
        if args.vocab and name not in args.vocab:
            continue
        vocab = load_vocab(str(SHARED / "vocab" / f"{name}.vocab.txt"), lower)
        old = tf_text.FastBertTokenizer(vocab=list(vocabulary.vocab_names(vocab.tokens)), token_out_type=tf.int64,
                                        unknown_token="[UNK]", lower_case_nfd_strip_accents=lower)
        new = BertTokenization(vocab)
        beam = BertTokenizer(vocab)
        t = timings({"old": tf.function(lambda s, t=old: t.tokenize(s).merge_dims(-2, -1)),
                     "new": tf.function(new.tokenize_flat),
                     "beam": lambda b, t=beam: t.tokenize_batch([s.decode() for s in b.numpy().tolist()])},
                    batches, args.repeats)
        old_s, new_s, beam_s = t["old"], t["new"], t["beam"]
        print(json.dumps({
            "vocab": name, "lower_case": lower, "lines": len(lines), "megabytes": round(megabytes, 2),
            "batch": args.batch,
            "old_in_graph_lines_per_cpu_s": round(len(lines) / old_s),
            "new_in_graph_lines_per_cpu_s": round(len(lines) / new_s),
            "new_over_old": round(old_s / new_s, 3),
            "new_in_graph_mb_per_cpu_s": round(megabytes / new_s, 2),
            "beam_lines_per_cpu_s": round(len(lines) / beam_s),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }), flush=True)


if __name__ == "__main__":
    main()
