"""Throughput and peak memory of ``pipelines.pretrain_data``, its stages, its tokenizer, and the reference.

    .venv/bin/python bench/pretrain_data.py [--sizes 10 40 160] [--reference_sizes 2 10] [--workers 2]

Builds sentence-per-line English text (WikiText-2 valid+test split into sentences, articles as
documents, plus Botchan) from ``../shared/data/text/``, repeated to each size, and runs every
subject on every size in its own process:

- the pipeline on the local runner in process, and with ``--workers`` worker processes
  (``--direct_running_mode=multi_processing``; the output must be byte-identical to the in-process
  run's, which is checked): peak RSS at each size (the controller's, and the largest worker's);
- the tokenizer alone (the floor) on the first two sizes;
- the reference (``official/nlp/data/create_pretraining_data.py`` of tf-models-official, from
  ``--reference``, by default the folder ``make model_garden`` installs) on ``--reference_sizes``,
  which are smaller because it holds every document and instance in memory;
- the pipeline's stages one by one in a plain process on the first size (tokenising, making
  instances, spilling records to runs, writing shards from the runs): records per CPU second each.

Throughput is marginal, (N2 - N1) / (t(N2) - t(N1)) between the first two sizes, so start-up
(importing TensorFlow, building the tokenizer, launching the runner) cancels; "per core" divides by
the CPU seconds the process used rather than wall time, which on a shared machine is the honest
figure (``--exclude_imports``: CPU from after importing TensorFlow and Beam). Parameters as the
reference's README: uncased vocabulary, max_seq_length 128, max_predictions_per_seq 20,
masked_lm_prob 0.15, short_seq_prob 0.1, dupe_factor 5.
"""

from __future__ import annotations

import argparse
import filecmp
import itertools
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from typing import NamedTuple

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = pathlib.Path(os.environ.get("POLYEMBED_SHARED", REPO.parent / "shared")) / "data"

from process_stats import measure, own_peak  # noqa: E402  (bench/, the script's folder, is on sys.path)

from transforms.text.sentences import split_sentences  # noqa: E402

_HEADING = re.compile(r"^ = [^=].* = $")


def english_documents() -> list[str]:
    """Real English documents in the BERT format (a sentence per line), without separators."""
    docs: list[str] = []
    for name in ("wiki.valid.tokens.txt", "wiki.test.tokens.txt"):
        current: list[str] = []
        for line in (SHARED / "text" / "wikitext-2" / name).read_text("utf-8").splitlines():
            if _HEADING.match(line):
                if current:
                    docs.append("\n".join(current))
                current = []
            elif line.strip() and not line.strip().startswith("= ="):
                current.extend(split_sentences(line))
        if current:
            docs.append("\n".join(current))
    botchan = (SHARED / "text" / "gutenberg_novels" / "botchan.en.txt").read_text("utf-8-sig")
    docs.extend("\n".join(split_sentences(p)) for p in botchan.split("\r\n\r\n") if p.strip())
    return docs


def write_corpus(path: pathlib.Path, docs: list[str], mb: float) -> int:
    """Documents, cycled, until ``mb`` megabytes; returns the bytes written."""
    target = int(mb * 1e6)
    size = 0
    with open(path, "w", encoding="utf-8") as f:
        i = 0
        while size < target:
            chunk = docs[i % len(docs)] + "\n\n"
            f.write(chunk)
            size += len(chunk.encode("utf-8"))
            i += 1
    return size


class Run(NamedTuple):
    wall: float
    cpu: float
    peak_mib: float
    instances: int
    worker_peak_mib: float = 0.0


def _same_outputs(a: pathlib.Path, b: pathlib.Path) -> bool:
    """The two runs' shards are the same files, byte for byte (compared a block at a time, so this
    process stays small)."""
    names = sorted(p.name for p in a.glob("pretrain-*"))
    return names == sorted(p.name for p in b.glob("pretrain-*")) and all(
        filecmp.cmp(a / n, b / n, shallow=False) for n in names)


def count_records(pattern: str, gzip: bool = False) -> int:
    """Records in TFRecord files, by walking their length headers (a TensorFlow dataset iterated in
    Python takes minutes for the millions of records of the larger corpora)."""
    import glob
    import gzip as gz

    n = 0
    for path in sorted(glob.glob(pattern)):
        with (gz.open(path, "rb") if gzip else open(path, "rb")) as f:
            while header := f.read(12):
                f.seek(int.from_bytes(header[:8], "little") + 4, 1)
                n += 1
    return n


TOKENIZE_ONLY = """
import sys, time
sys.path.insert(0, {repo!r})
import tensorflow, tensorflow_text  # noqa
from specs.vocabulary import Vocabulary
from transforms.text import bert_tokenization as bt
start = time.process_time()
tok = bt.BertTokenizer(Vocabulary.load({vocab!r}, True))
with open({corpus!r}, "rb") as f:
    lines = [bt.decode_reference(line).strip() for line in f]
lines = [x for x in lines if x]
for i in range(0, len(lines), 4096):
    tok.tokenize_batch(lines[i:i + 4096])
open({cpu_file!r}, "w").write(str(time.process_time() - start))
open({cpu_file!r} + ".hwm", "w").write(next(x.split()[1] for x in open("/proc/self/status") if x.startswith("VmHWM:")))
"""


# Each subject writes the CPU seconds it spent after its imports, so that --exclude_imports can
# leave out importing TensorFlow and Beam, whose cost varies by seconds on a busy machine.
PIPELINE = """
import sys, time
sys.path.insert(0, {repo!r})
import tensorflow, tensorflow_text  # noqa
from transforms.core import runtime
from pipelines import pretrain_data
start = time.process_time()
runtime.run_pipeline("pretrain_data", {argv!r}, pretrain_data.build)
open({cpu_file!r}, "w").write(str(time.process_time() - start))
open({cpu_file!r} + ".hwm", "w").write(next(x.split()[1] for x in open("/proc/self/status") if x.startswith("VmHWM:")))
"""

REFERENCE = """
import sys, time
sys.argv = {argv!r}
from absl import app
from official.nlp.data import create_pretraining_data as m
start = time.process_time()
try:
    app.run(m.main)
except SystemExit:
    pass
open({cpu_file!r}, "w").write(str(time.process_time() - start))
open({cpu_file!r} + ".hwm", "w").write(next(x.split()[1] for x in open("/proc/self/status") if x.startswith("VmHWM:")))
"""


def run_tokenizer(corpus: pathlib.Path, vocab: pathlib.Path, a: argparse.Namespace) -> Run:
    cpu_file = str(corpus) + ".cpu"
    code = TOKENIZE_ONLY.format(repo=str(REPO), vocab=str(vocab), corpus=str(corpus), cpu_file=cpu_file)
    wall, cpu, peak, _ = measure([sys.executable, "-c", code], repeat=a.repeat)
    return Run(wall, float(pathlib.Path(cpu_file).read_text()) if a.exclude_imports else cpu,
               own_peak(cpu_file, peak), 0)


def run_pipeline(corpus: pathlib.Path, vocab: pathlib.Path, out: pathlib.Path, a: argparse.Namespace,
                 workers: int = 0) -> Run:
    """In-process (``workers=0``) or with that many worker processes (the distributed layout: the
    controller holds data between stages, the workers do the work)."""
    mode = [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"] if workers else []
    argv = [f"--input_file={corpus}", f"--output_dir={out}",
           f"--vocab_file={vocab}", "--do_lower_case=true", f"--max_seq_length={a.max_seq_length}",
           f"--max_predictions_per_seq={a.max_predictions_per_seq}", "--masked_lm_prob=0.15",
           f"--dupe_factor={a.dupe_factor}", "--short_seq_prob=0.1", "--random_seed=12345",
           f"--docs_per_bucket={a.docs_per_bucket}", f"--records_per_shard={a.records_per_shard}", *mode]
    code = PIPELINE.format(repo=str(REPO), argv=argv, cpu_file=str(out) + ".cpu")
    wall, cpu, peak, worker_peak = measure([sys.executable, "-c", code], repeat=a.repeat)
    if a.exclude_imports and not workers:  # the controller's own CPU is not the work when workers run
        cpu = float(pathlib.Path(str(out) + ".cpu").read_text())
    return Run(wall, cpu, own_peak(str(out) + ".cpu", peak), count_records(str(out / "pretrain-*")), worker_peak)


def run_reference(corpus: pathlib.Path, vocab: pathlib.Path, out: pathlib.Path, a: argparse.Namespace,
                  stubs: pathlib.Path) -> Run:
    env = {**os.environ, "PYTHONPATH": f"{stubs}{os.pathsep}{a.reference}"}
    out.mkdir(parents=True, exist_ok=True)
    argv = ["create_pretraining_data", f"--input_file={corpus}",
           f"--output_file={out / 'ref.tfrecord'}", f"--vocab_file={vocab}", "--do_lower_case=true",
           f"--max_seq_length={a.max_seq_length}", f"--max_predictions_per_seq={a.max_predictions_per_seq}",
           "--masked_lm_prob=0.15", f"--dupe_factor={a.dupe_factor}", "--short_seq_prob=0.1",
           "--random_seed=12345"]
    code = REFERENCE.format(argv=argv, cpu_file=str(out / "cpu"))
    wall, cpu, peak, _ = measure([sys.executable, "-c", code], env, repeat=a.repeat)
    cpu = float((out / "cpu").read_text()) if a.exclude_imports else cpu
    return Run(wall, cpu, own_peak(str(out / "cpu"), peak), count_records(str(out / "ref.tfrecord")))


STAGES = """
import sys, time, os
sys.path.insert(0, {repo!r})
import numpy as np
import tensorflow, tensorflow_text  # noqa
import specs
from specs.vocabulary import Vocabulary
from transforms.text import bert_tokenization as bt
from transforms.core.shards import _WriteShard
from transforms.core.spill import SpillRuns, read_group
from transforms import pretraining as pt
from transforms.pretraining.examples import _CreateInstances
vocab = Vocabulary.load({vocab!r}, True)
tok = bt.BertTokenizer(vocab)
params = pt.InstanceParams({max_seq_length}, {max_predictions_per_seq}, 0.15, 0.1, {dupe_factor})
spec = specs.pretraining_spec(params.max_seq_length, params.max_predictions_per_seq)
with open({corpus!r}, "rb") as f:
    text = f.read().decode("utf-8", "ignore")
raw = [pt.RawDocument("corpus", i, "und", [s.strip() for s in d.split("\\n") if s.strip()])
       for i, d in enumerate(text.split("\\n\\n")) if d.strip()]
tok.tokenize_batch(["warm up the tokenizer"])  # one-time costs are not the stages' throughput
specs.example_codec._varint_table()
cpu = time.process_time
t = cpu()
docs = []
for start in range(0, len(raw), 256):
    chunk = raw[start:start + 256]
    ids = tok.tokenize_batch([s for d in chunk for s in d.sentences])
    k = 0
    for d in chunk:
        kept = [a for a in ids[k:k + len(d.sentences)] if len(a)]
        k += len(d.sentences)
        bounds = np.concatenate(([0], np.cumsum([len(a) for a in kept]))).astype(np.int32)
        docs.append(pt.Document(pt.document_key(d), d.language, np.concatenate(kept), bounds))
tokenize = cpu() - t
sentences = sum(len(d.sentences) for d in raw)
create = _CreateInstances(12345, params, pt.VocabInfo.from_vocabulary(vocab), spec, 1.0, 1000)
t = cpu()
members = [(d, params.dupe_factor) for d in sorted(docs, key=lambda d: d.key)]
batches = [b for i in range(0, len(members), 1000) for b in create._instances(members[i:i + 1000])
           if isinstance(b, list)]
make = cpu() - t
records = sum(map(len, batches))
os.makedirs({work!r}, exist_ok=True)
spill = SpillRuns(os.path.join({work!r}, "runs"))
spill.start_bundle()
t = cpu()
runs = [r for b in batches for r in spill.process(b)] + [w.value for w in spill.finish_bundle()]
spilled = cpu() - t
writer = _WriteShard(os.path.join({work!r}, "out", "pretrain"), ".tfrecord", "tfrecord", None,
                     os.path.join({work!r}, "out", ".temp"))
shards = max(1, -(-records // 100_000))
t = cpu()
for s in range(shards):
    writer.write(s, shards, read_group(runs, s, shards))
written = cpu() - t
mb = len(text.encode("utf-8")) / 1e6
print(f"tokenize: {{sentences / tokenize:,.0f}} sentences/s ({{mb / tokenize:.1f}} MB/s)")
print(f"make instances (pairs, masks, encoding): {{records / make:,.0f}} instances/s")
print(f"spill records to runs: {{records / spilled:,.0f}} records/s")
print(f"write shards from runs: {{records / written:,.0f}} records/s")
total = tokenize + make + spilled + written
print(f"all stages: {{mb / total:.2f}} MB/s, {{records / total:,.0f}} instances/s ({{records}} instances, "
      f"{{tokenize:.1f}} + {{make:.1f}} + {{spilled:.1f}} + {{written:.1f}} s CPU)")
"""


def run_stages(corpus: pathlib.Path, vocab: pathlib.Path, work: pathlib.Path, a: argparse.Namespace) -> str:
    code = STAGES.format(repo=str(REPO), vocab=str(vocab), corpus=str(corpus), work=str(work),
                         max_seq_length=a.max_seq_length, max_predictions_per_seq=a.max_predictions_per_seq,
                         dupe_factor=a.dupe_factor)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise SystemExit(f"stages failed:\n{out.stderr[-3000:]}")
    return out.stdout


def marginal(name: str, sizes: list[float], runs: list[Run]) -> dict[str, float]:
    """Marginal MB/s and instances/s per CPU second between the first two sizes."""
    dmb = sizes[1] - sizes[0]
    dcpu = max(runs[1].cpu - runs[0].cpu, 1e-9)
    dinst = runs[1].instances - runs[0].instances
    r = {"mb_s_core": dmb / dcpu, "inst_s_core": dinst / dcpu}
    print(f"{name:<34} marginal {sizes[0]:.0f} -> {sizes[1]:.0f} MB: {r['mb_s_core']:.3f} MB/s per core, "
          f"{r['inst_s_core']:,.0f} instances/s per core")
    return r


def row(name: str, size: float, run: Run) -> None:
    workers = f"{run.worker_peak_mib:8.0f}" if run.worker_peak_mib else f"{'-':>8}"
    print(f"{name:<34} {size:7.2f} {run.cpu:8.1f} {run.wall:8.1f} {run.peak_mib:8.0f} {workers} {run.instances:>10}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=float, nargs="+", default=[10.0, 40.0, 160.0],
                   help="corpus sizes (MB) for the pipeline: peak RSS at each, throughput between the first two")
    p.add_argument("--reference_sizes", type=float, nargs="+", default=[2.0, 10.0],
                   help="corpus sizes (MB) for the reference script, which holds everything in memory")
    p.add_argument("--dupe_factor", type=int, default=5)
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--max_predictions_per_seq", type=int, default=20)
    default_reference = os.environ.get("POLYEMBED_MODEL_GARDEN", str(REPO / ".venv" / "model_garden"))
    p.add_argument("--reference", default=default_reference,
                   help="folder with tf-models-official (make model_garden); '' skips the reference")
    p.add_argument("--workdir", default=None)
    p.add_argument("--workers", type=int, default=2, help="worker processes for the multi-process runs (0: none)")
    p.add_argument("--docs_per_bucket", type=int, default=1000, help="the pipeline's --docs_per_bucket")
    p.add_argument("--records_per_shard", type=int, default=100_000, help="the pipeline's --records_per_shard")
    p.add_argument("--exclude_imports", action="store_true",
                   help="count CPU time from after the imports (less noise on a busy machine)")
    p.add_argument("--repeat", type=int, default=1, help="runs per measurement; the least CPU time counts")
    a = p.parse_args()
    if len(a.sizes) < 2 or (a.reference and len(a.reference_sizes) < 2):
        p.error("--sizes and --reference_sizes need at least two sizes each (throughput is marginal)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    vocab = SHARED / "vocab" / "bert-base-uncased.vocab.txt"
    work = pathlib.Path(a.workdir or tempfile.mkdtemp(prefix="bench_pretrain_"))
    work.mkdir(parents=True, exist_ok=True)
    docs = english_documents()
    sizes = [write_corpus(work / f"corpus_{i}.txt", docs, mb) / 1e6 for i, mb in enumerate(a.sizes)]
    print(f"corpus: {len(docs)} real English documents cycled to {', '.join(f'{s:.2f}' for s in sizes)} MB; "
          f"max_seq_length {a.max_seq_length}, max_predictions_per_seq {a.max_predictions_per_seq}, "
          f"dupe_factor {a.dupe_factor}, uncased; {os.cpu_count()} cores visible")
    print(f"{'subject':<34} {'MB':>7} {'cpu s':>8} {'wall s':>8} {'peak MiB':>8} {'workers':>8} {'records':>10}")
    tokenizer = [run_tokenizer(work / f"corpus_{i}.txt", vocab, a) for i in range(2)]
    for size, run in zip(sizes, tokenizer, strict=False):
        row("tokenizer alone (the floor)", size, run)
    inproc, multi = [], []
    for i, size in enumerate(sizes):
        out, out_w = work / f"out_{i}", work / f"out_w_{i}"
        inproc.append(run_pipeline(work / f"corpus_{i}.txt", vocab, out, a))
        row("pretrain_data, in process", size, inproc[-1])
        if a.workers:
            multi.append(run_pipeline(work / f"corpus_{i}.txt", vocab, out_w, a, a.workers))
            row(f"pretrain_data, {a.workers} worker processes", size, multi[-1])
            same = _same_outputs(out, out_w)
            print(f"{'':<34} {a.workers}-worker output byte-identical to the in-process output: {same}")
            shutil.rmtree(out_w)
        shutil.rmtree(out)
    ref: list[Run] = []
    ref_sizes: list[float] = []
    if a.reference:
        stubs = work / "stubs"
        stubs.mkdir(exist_ok=True)
        (stubs / "sentencepiece.py").write_text("")
        for i, mb in enumerate(a.reference_sizes):
            ref_sizes.append(write_corpus(work / f"ref_corpus_{i}.txt", docs, mb) / 1e6)
            ref.append(run_reference(work / f"ref_corpus_{i}.txt", vocab, work / f"ref_{i}", a, stubs))
            row("reference create_pretraining_data", ref_sizes[-1], ref[-1])
            shutil.rmtree(work / f"ref_{i}")
    print()
    floor = marginal("tokenizer alone", sizes, tokenizer)
    pipe = marginal("pretrain_data, in process", sizes, inproc)
    print(f"{'':<34} {pipe['mb_s_core'] / floor['mb_s_core']:.2f} of the tokenizer's MB/s per core")
    if multi:
        marginal(f"pretrain_data, {a.workers} workers (all CPU)", sizes, multi)
    if ref:
        r = marginal("reference", ref_sizes, ref)
        print(f"pipeline / reference: {pipe['mb_s_core'] / r['mb_s_core']:.1f}x MB/s per core, "
              f"{pipe['inst_s_core'] / r['inst_s_core']:.1f}x instances/s per core")
    print()
    print("peak RSS (MiB) by corpus size: " + "; ".join(
        f"{s:.0f} MB: in process {r.peak_mib:.0f}" + (f", {a.workers} workers: controller {m.peak_mib:.0f}, "
                                                     f"largest worker {m.worker_peak_mib:.0f}" if multi else "")
        for s, r, m in itertools.zip_longest(sizes, inproc, multi or [], fillvalue=None) if r))
    if len(sizes) >= 3:
        print(f"growth from {sizes[-2]:.0f} to {sizes[-1]:.0f} MB: in process "
              f"{inproc[-1].peak_mib / inproc[-2].peak_mib - 1:+.1%}" + (
                  f", controller {multi[-1].peak_mib / multi[-2].peak_mib - 1:+.1%}, largest worker "
                  f"{multi[-1].worker_peak_mib / multi[-2].worker_peak_mib - 1:+.1%}" if multi else ""))
    for rs, rr in zip(ref_sizes, ref, strict=True):
        near = min(range(len(sizes)), key=lambda i: abs(sizes[i] - rs))
        print(f"reference at {rs:.0f} MB: {rr.peak_mib:.0f} MiB; pipeline in process at {sizes[near]:.0f} MB: "
              f"{inproc[near].peak_mib:.0f} MiB")
    print()
    print(f"stages one by one on {sizes[0]:.0f} MB (one process, CPU time):")
    print(run_stages(work / "corpus_0.txt", vocab, work / "stages", a), end="")
    shutil.rmtree(work / "stages", ignore_errors=True)


if __name__ == "__main__":
    main()
