"""Throughput and peak memory of ``pipelines.pretrain_data``, its tokenizer alone, and the reference.

    .venv/bin/python bench/pretrain_data.py [--mb 2] [--dupe_factor 5] [--reference /tmp/tfm] [--workers 2]

Builds sentence-per-line English text (WikiText-2 valid+test split into sentences, articles as
documents, plus Botchan) from ``../shared/data/text/``, repeated to N and 2N MB, and runs each
subject on both sizes in its own process. The figures printed are marginal, (2N - N) / (t(2N) -
t(N)), so start-up (importing TensorFlow, building the tokenizer, launching the runner) cancels; "per
core" divides by the CPU seconds the process used rather than wall time, which on a shared machine
is the honest figure. Peak memory is the process's maximum resident set size.

With ``--workers W`` the pipeline also runs with W worker processes (``--direct_running_mode=
multi_processing``), the distributed layout: the controller process holds the data between stages
(as Dataflow's shuffle does), the workers run the DoFns. The workers' peak is what a Dataflow
worker would need; with ``--docs_per_bucket`` and ``--records_per_shard`` small enough that both
corpora have several buckets and shards it should not grow from N to 2N. CPU there is the whole
process tree's (workers included, imports included: a worker's imports cannot be told apart).

The reference is tf-models-official's ``official/nlp/data/create_pretraining_data.py`` run from its
wheel (``pip download --no-deps tf-models-official==2.20.0 -d /tmp/tfm`` and unzip there); it needs
empty stand-in modules for ``sentencepiece`` (written to a temporary directory here).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = pathlib.Path(os.environ.get("POLYEMBED_SHARED", REPO.parent / "shared")) / "data"

from transforms.sentences import split_sentences  # noqa: E402

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


def _children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _hwm_mib(pid: int) -> float:
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


REPEAT = 1


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float, float]:
    """Wall seconds, CPU seconds (user+sys, with the descendants it waited for) and peak RSS (MiB) of
    a child process, and its descendants' peak RSS; with --repeat, the run with the least CPU time
    (start-up cost varies by seconds on a busy machine)."""
    return min((_measure_once(cmd, env) for _ in range(REPEAT)), key=lambda r: r[1])


def _measure_once(cmd: list[str], env: dict[str, str] | None) -> tuple[float, float, float, float]:
    """Also samples the peak RSS of the process's descendants (Beam worker processes) twice a second."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    worker_peak = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        worker_peak = max([worker_peak, *(_hwm_mib(c) for c in _children(proc.pid))])
        time.sleep(0.5)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, worker_peak


def _data(out: pathlib.Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(out.glob("pretrain-*"))]


def count_records(pattern: str, gzip: bool = False) -> int:
    import glob

    import tensorflow as tf

    files = sorted(glob.glob(pattern))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP" if gzip else ""))


TOKENIZE_ONLY = """
import sys, time
sys.path.insert(0, {repo!r})
import tensorflow, tensorflow_text  # noqa
from specs.vocabulary import Vocabulary
from transforms import bert_tokenization as bt
start = time.process_time()
tok = bt.BertTokenizer(Vocabulary.load({vocab!r}, True))
with open({corpus!r}, "rb") as f:
    lines = [bt.decode_reference(line).strip() for line in f]
lines = [x for x in lines if x]
for i in range(0, len(lines), 4096):
    tok.tokenize_batch(lines[i:i + 4096])
open({cpu_file!r}, "w").write(str(time.process_time() - start))
"""


# Each subject writes the CPU seconds it spent after its imports, so that --exclude_imports can
# leave out importing TensorFlow and Beam, whose cost varies by seconds on a busy machine.
PIPELINE = """
import sys, time
sys.path.insert(0, {repo!r})
import tensorflow, tensorflow_text  # noqa
from transforms import runtime
from pipelines import pretrain_data
start = time.process_time()
runtime.run_pipeline("pretrain_data", {argv!r}, pretrain_data.build)
open({cpu_file!r}, "w").write(str(time.process_time() - start))
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
"""


def run_tokenizer(corpus: pathlib.Path, vocab: pathlib.Path, a: argparse.Namespace) -> Run:
    cpu_file = str(corpus) + ".cpu"
    code = TOKENIZE_ONLY.format(repo=str(REPO), vocab=str(vocab), corpus=str(corpus), cpu_file=cpu_file)
    wall, cpu, peak, _ = measure([sys.executable, "-c", code])
    return Run(wall, float(pathlib.Path(cpu_file).read_text()) if a.exclude_imports else cpu, peak, 0)


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
    wall, cpu, peak, worker_peak = measure([sys.executable, "-c", code])
    if a.exclude_imports and not workers:  # the controller's own CPU is not the work when workers run
        cpu = float(pathlib.Path(str(out) + ".cpu").read_text())
    return Run(wall, cpu, peak, count_records(str(out / "pretrain-*")), worker_peak)


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
    wall, cpu, peak, _ = measure([sys.executable, "-c", code], env)
    cpu = float((out / "cpu").read_text()) if a.exclude_imports else cpu
    return Run(wall, cpu, peak, count_records(str(out / "ref.tfrecord")))


def report(name: str, mb: tuple[float, float], small: Run, large: Run) -> dict[str, float]:
    dmb = mb[1] - mb[0]
    dcpu, dwall = max(large.cpu - small.cpu, 1e-9), large.wall - small.wall
    dinst = large.instances - small.instances
    r = {"mb_s_core": dmb / dcpu, "inst_s_core": dinst / dcpu, "peak": large.peak_mib}
    for tag, size, run in (("N", mb[0], small), ("2N", mb[1], large)):
        print(f"{name if tag == 'N' else '':<22} {tag:>2} = {size:5.2f} MB: {run.wall:6.1f} s wall "
              f"{run.cpu:6.1f} s cpu "
              f"{run.peak_mib:6.0f} MiB peak {run.instances:>8} instances"
              + (f", worker processes' peak {run.worker_peak_mib:.0f} MiB" if run.worker_peak_mib else ""))
    wall = f"{dmb / dwall:.3f} MB/s" if dwall > 0 else "n/a: the machine's load changed between runs"
    print(f"{'':<22} marginal: {r['mb_s_core']:.3f} MB/s per core (wall: {wall}), "
          f"{r['inst_s_core']:,.0f} instances/s per core; peak {r['peak']:.0f} MiB")
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=float, default=8.0, help="N: the smaller corpus in MB (the larger is 2N)")
    p.add_argument("--reference_mb", type=float, default=2.0,
                   help="N for the reference script, which is about 10x slower and holds everything in memory")
    p.add_argument("--dupe_factor", type=int, default=5)
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--max_predictions_per_seq", type=int, default=20)
    p.add_argument("--reference", default=None, help="directory with the unzipped tf-models-official wheel")
    p.add_argument("--workdir", default=None)
    p.add_argument("--workers", type=int, default=0,
                   help="also run with this many worker processes and report the workers' peak memory")
    p.add_argument("--docs_per_bucket", type=int, default=1000, help="the pipeline's --docs_per_bucket")
    p.add_argument("--records_per_shard", type=int, default=100_000, help="the pipeline's --records_per_shard")
    p.add_argument("--exclude_imports", action="store_true",
                   help="count CPU time from after the imports (less noise on a busy machine)")
    p.add_argument("--repeat", type=int, default=1, help="runs per measurement; the least CPU time counts")
    a = p.parse_args()
    global REPEAT
    REPEAT = max(1, a.repeat)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    vocab = SHARED / "vocab" / "bert-base-uncased.vocab.txt"
    work = pathlib.Path(a.workdir or tempfile.mkdtemp(prefix="bench_pretrain_"))
    work.mkdir(parents=True, exist_ok=True)
    docs = english_documents()
    sizes, ref_sizes = [], []
    for tag, mb in (("n", a.mb), ("2n", 2 * a.mb)):
        sizes.append(write_corpus(work / f"corpus_{tag}.txt", docs, mb) / 1e6)
    for tag, mb in (("n", a.reference_mb), ("2n", 2 * a.reference_mb)):
        ref_sizes.append(write_corpus(work / f"ref_corpus_{tag}.txt", docs, mb) / 1e6)
    print(f"corpus: {len(docs)} real English documents cycled to {sizes[0]:.2f} and {sizes[1]:.2f} MB; "
          f"max_seq_length {a.max_seq_length}, max_predictions_per_seq {a.max_predictions_per_seq}, "
          f"dupe_factor {a.dupe_factor}, uncased; {os.cpu_count()} cores visible")
    results = {}
    runs = [run_tokenizer(work / f"corpus_{t}.txt", vocab, a) for t in ("n", "2n")]
    results["tokenizer"] = report("tokenizer alone", tuple(sizes), *runs)
    runs = [run_pipeline(work / f"corpus_{t}.txt", vocab, work / f"out_{t}", a) for t in ("n", "2n")]
    results["pipeline"] = report("pretrain_data", tuple(sizes), *runs)
    floor = results["pipeline"]["mb_s_core"] / results["tokenizer"]["mb_s_core"]
    print(f"{'':<22} pipeline / tokenizer alone: {floor:.2f} of the floor's MB/s per core")
    if a.workers:
        runs = [run_pipeline(work / f"corpus_{t}.txt", vocab, work / f"out_w_{t}", a, a.workers) for t in ("n", "2n")]
        report(f"pretrain_data {a.workers} workers", tuple(sizes), *runs)
        same = all(_data(work / f"out_{t}") == _data(work / f"out_w_{t}") for t in ("n", "2n"))
        print(f"{'':<22} output of the {a.workers}-worker runs byte-identical to the in-process runs: {same}")
    if a.reference:
        stubs = work / "stubs"
        stubs.mkdir(exist_ok=True)
        (stubs / "sentencepiece.py").write_text("")
        runs = [run_reference(work / f"ref_corpus_{t}.txt", vocab, work / f"ref_{t}", a, stubs) for t in ("n", "2n")]
        ref = results["reference"] = report("reference script", tuple(ref_sizes), *runs)
        pipe = results["pipeline"]
        print(f"pipeline / reference: {pipe['mb_s_core'] / ref['mb_s_core']:.1f}x MB/s per core, "
              f"{pipe['inst_s_core'] / ref['inst_s_core']:.1f}x instances/s per core, "
              f"peak memory {pipe['peak'] / ref['peak']:.2f}x")


if __name__ == "__main__":
    main()
