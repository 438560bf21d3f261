"""Do the pipelines write the same bytes as another revision? The check a refactoring must pass.

    python bench/same_bytes.py --base=HEAD~3                 # every job below, base vs the working tree
    python bench/same_bytes.py --base=main --jobs=dedup,vocab

Each job runs twice with the same command, once in a detached ``git worktree`` of ``--base`` and once
in this working tree, with the same output path (so paths recorded in specs and markers agree), on the
bundled samples and the shared data (``$POLYEMBED_SHARED`` or ``../shared``). Then every output file is
compared byte for byte; the only things ignored are the wall-clock times in the run markers
(``_RUN_STARTED.json`` ``started``, ``_RUN_COMPLETE.json`` ``started``/``finished``), the ``uuid``
field of a SavedModel's ``fingerprint.pb`` (TensorFlow draws a new one at every save; its hashes of the
graph, signatures, objects and variables are compared) and tensorflow-transform's scratch folder (uuid
names). Prints one line
per job (files compared, ``same`` or the differing files) and exits 1 if any job differs or fails.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("POLYEMBED_SHARED", REPO.parent / "shared")) / "data"
MARKERS = {"_RUN_STARTED.json": ("started",), "_RUN_COMPLETE.json": ("started", "finished")}
# tensorflow-transform's scratch folder (random uuid names each run) under translation_pairs' OUT/tmp/tft
SCRATCH = ("tmp/tft/tftransform_tmp/",)
# A job that reads another job's output: that output (from the same side) is put back in place first.
NEEDS = {"finetune_pairs": "translation_pairs"}
MULTILINGUAL_VOCAB = SHARED / "vocab" / "bert-base-multilingual-cased.vocab.txt"
UNCASED_VOCAB = SHARED / "vocab" / "bert-base-uncased.vocab.txt"


def jobs(out: Path) -> dict[str, list[str]]:
    """Job name -> command line (module and flags), writing under ``out / name``."""
    se = SHARED / "stackexchange"
    tatoeba = SHARED / "translation" / "laser_tatoeba_v1"
    glue = SHARED / "glue"
    return {
        "stackexchange": ["pipelines.stackexchange", "--input=samples/stackexchange/cycling.example.stackexchange.com",
                          f"--output_dir={out / 'stackexchange'}", "--dedup=near"],
        "stackexchange_shared": ["pipelines.stackexchange", f"--input={se / 'cardano.stackexchange.com'}",
                                 f"--output_dir={out / 'stackexchange_shared'}", "--dedup=exact"],
        "translation_pairs": ["pipelines.translation_pairs", "--input=samples/translation/*.tsv",
                              f"--output_dir={out / 'translation_pairs'}",
                              "--split=train=0.7,validation=0.3,test=0.0"],
        "translation_tatoeba": ["pipelines.translation_pairs", f"--input={tatoeba}/tatoeba.deu-eng.*",
                                f"--input={tatoeba}/tatoeba.fra-eng.*", f"--output_dir={out / 'translation_tatoeba'}",
                                "--materialize_tokens", f"--vocab_file={MULTILINGUAL_VOCAB}"],
        "dedup": ["pipelines.dedup", "--input=samples/text/cycling.multilingual.jsonl",
                  f"--output_dir={out / 'dedup'}", "--text_fields=text", "--key=one", "--with_clusters"],
        "vocab": ["pipelines.vocab", "--input_patterns=samples/text/cycling.multilingual.txt",
                  f"--output_dir={out / 'vocab'}", "--vocab_size=1200", "--min_word_count=1", "--min_token_count=1"],
        "pretrain_data": ["pipelines.pretrain_data", "--input_patterns=samples/text/cycling.multilingual.txt",
                          f"--input_patterns={SHARED / 'text' / 'bert_sample_text.txt'}",
                          f"--output_dir={out / 'pretrain_data'}", f"--vocab_file={MULTILINGUAL_VOCAB}",
                          "--do_lower_case=false", "--max_seq_length=64", "--max_predictions_per_seq=10",
                          "--dupe_factor=3", "--random_seed=12345"],
        "finetune_sst2": ["pipelines.finetune_data", "--task=SST-2", f"--input_data_dir={glue / 'SST-2'}",
                          f"--vocab_file={UNCASED_VOCAB}", "--do_lower_case=true", "--max_seq_length=64",
                          f"--output_dir={out / 'finetune_sst2'}"],
        "finetune_stsb": ["pipelines.finetune_data", "--task=STS-B", f"--input_data_dir={glue / 'STS-B'}",
                          f"--vocab_file={UNCASED_VOCAB}", "--do_lower_case=true", "--max_seq_length=64",
                          f"--output_dir={out / 'finetune_stsb'}"],
        "finetune_pairs": ["pipelines.finetune_data", "--from_pairs",
                           f"--train_files={out / 'translation_pairs' / 'train'}/pairs-*.tfrecord.gz",
                           f"--vocab_file={MULTILINGUAL_VOCAB}", "--do_lower_case=false", "--max_seq_length=64",
                           f"--output_dir={out / 'finetune_pairs'}"],
    }


def run(tree: Path, python: str, command: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(tree), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([python, "-m", *command], cwd=tree, env=env, capture_output=True, text=True)


def same_fingerprint(a: Path, b: Path) -> bool:
    """Two SavedModel fingerprints with the same hashes, whatever their per-save ``uuid``."""
    from tensorflow.core.protobuf import fingerprint_pb2

    defs = []
    for path in (a, b):
        d = fingerprint_pb2.FingerprintDef.FromString(path.read_bytes())
        d.ClearField("uuid")
        defs.append(d)
    return defs[0] == defs[1]


def differences(a: Path, b: Path) -> tuple[int, list[str]]:
    """(files compared, relative paths that differ or exist on one side only)."""
    def listing(root: Path) -> set[Path]:
        return {p.relative_to(root) for p in root.rglob("*")
                if p.is_file() and not any(part in str(p.relative_to(root)) for part in SCRATCH)}

    files_a, files_b = listing(a), listing(b)
    differ = sorted(str(p) + " (one side only)" for p in files_a ^ files_b)
    for rel in sorted(files_a & files_b):
        volatile = MARKERS.get(rel.name)
        if volatile:
            load = [json.loads((side / rel).read_text()) for side in (a, b)]
            for d in load:
                for key in volatile:
                    d.pop(key, None)
            same = load[0] == load[1]
        elif rel.name == "fingerprint.pb":
            same = same_fingerprint(a / rel, b / rel)
        else:
            same = filecmp.cmp(a / rel, b / rel, shallow=False)
        if not same:
            differ.append(str(rel))
    return len(files_a | files_b), differ


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="The git revision to compare the working tree with.")
    p.add_argument("--jobs", default="", help="Comma-separated job names (default: all).")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--keep", default="", help="Keep both sides' outputs in this folder.")
    args = p.parse_args(argv)
    work = Path(args.keep or tempfile.mkdtemp(prefix="same_bytes."))
    out = work / "out"
    table = jobs(out)
    names = [n for n in args.jobs.split(",") if n] or list(table)
    names = [*dict.fromkeys([need for n in names if (need := NEEDS.get(n))] + names)]  # what a job reads runs first
    unknown = [n for n in names if n not in table]
    if unknown:
        print(f"error: unknown job(s) {unknown}; known: {', '.join(table)}", file=sys.stderr)
        return 2
    base = work / "base_tree"
    subprocess.run(["git", "worktree", "add", "--detach", "-f", str(base), args.base], cwd=REPO, check=True,
                   capture_output=True)
    failed = False
    try:
        for name in names:
            sides = {}
            for side, tree in (("base", base), ("tree", REPO)):
                shutil.rmtree(out, ignore_errors=True)
                if name in NEEDS:
                    shutil.copytree(work / side / NEEDS[name], out / NEEDS[name])
                done = run(tree, args.python, table[name])
                if done.returncode != 0:
                    print(f"{name}: FAILED on {side} (exit {done.returncode}): {done.stderr.strip()[-400:]}")
                    failed = True
                    break
                sides[side] = work / side / name
                shutil.rmtree(sides[side], ignore_errors=True)
                sides[side].parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(out / name), sides[side])
            else:
                count, differ = differences(sides["base"], sides["tree"])
                failed |= bool(differ)
                verdict = "same bytes" if not differ else "DIFFER: " + ", ".join(differ[:10])
                print(f"{name}: {count} files, {verdict}", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=REPO, capture_output=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
