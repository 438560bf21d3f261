"""`make demo` end to end: scripts/demo.sh on the bundled samples, then its outputs are checked."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

# Each test here takes over ~30 s (a whole job or a training run): not in the fast lane.
pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parent.parent


def _table(path: pathlib.Path) -> tuple[list[list[float]], int]:
    """A similarity table's 5x5 cosines and its count of translations ranked first, checked for form:
    one mark per row on its best column, the held-out line, the count line."""
    table = path.read_text().splitlines()
    assert table[-1].startswith("translation ranked first for ") and table[-1].endswith("(random embeddings: about 1)")
    # the pairs shown were held out of training, and the table says so
    assert table[-2].startswith("held-out sentences: none of these pairs is in the training split ")
    rows = table[1:6]
    assert all(line.count("*") == 1 for line in rows)
    values = [[float(v.rstrip("*")) for v in line[30:].split()] for line in rows]
    assert [len(row) for row in values] == [5] * 5 and all(-1.0001 <= v <= 1.0001 for row in values for v in row)
    marked = [[v.endswith("*") for v in line[30:].split()].index(True) for line in rows]
    assert all(values[i][j] == max(values[i]) for i, j in enumerate(marked))
    hits = sum(i == j for i, j in enumerate(marked))
    assert table[-1].startswith(f"translation ranked first for {hits} of 5 sentences")
    return values, hits


def test_demo_runs_end_to_end_and_shows_the_tiny_model_beside_minilm(tmp_path, minilm, shared_data):
    out = tmp_path / "demo_out"
    r = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh"), str(out)], cwd=REPO, capture_output=True,
                       text=True, env={**os.environ, "PY": sys.executable, "POLYEMBED_MINILM": str(minilm)},
                       timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("---- [") == 15 and "Demo finished" in r.stdout and "skipped" not in r.stdout
    for job in ("stackexchange", "translation", "vocab", "pretrain"):
        summary = json.loads((out / job / "summary.json").read_text())
        assert summary["balanced"], job
        assert (out / job / "_RUN_COMPLETE.json").exists(), job
    assert (out / "stackexchange" / "title_body" / "tfrecord" / "schema.pbtxt").exists()
    for export in ("labse_encoder", "labse_preprocessing", "minilm_encoder"):
        assert (out / "export" / export / "saved_model.pb").exists(), export
    _, tiny_hits = _table(out / "similarity.txt")
    cosines, minilm_hits = _table(out / "similarity.minilm.txt")
    # the real encoder puts each held-out translation nearer than the other sentences, on average
    diagonal = sum(cosines[i][i] for i in range(5)) / 5
    off_diagonal = sum(cosines[i][j] for i in range(5) for j in range(5) if i != j) / 20
    assert diagonal > off_diagonal + 0.05, cosines
    # the closing summary sets each figure of the tiny model beside all-MiniLM-L6-v2's, from those files
    tiny_acc = json.loads((out / "sst2" / "eval" / "metrics-60.json").read_text())["accuracy"]
    minilm_acc = json.loads((out / "sst2_minilm" / "eval" / "metrics-25.json").read_text())["accuracy"]
    dev = (out / "glue" / "SST-2" / "dev.tsv").read_text().splitlines()[1:]
    majority = max(sum(line.endswith(label) for line in dev) for label in ("0", "1")) / len(dev)
    assert len(dev) == 200
    assert (f"  held-out translation ranked first: tiny {tiny_hits}/5, all-MiniLM-L6-v2 {minilm_hits}/5 "
            "(random embeddings: about 1)") in r.stdout.splitlines()
    assert (f"  SST-2 dev accuracy: tiny {tiny_acc:.3f}, all-MiniLM-L6-v2 {minilm_acc:.3f} "
            f"(majority class {majority:.3f})") in r.stdout.splitlines()
    # a real encoder learns SST-2 in 25 steps, far above the majority class
    assert minilm_acc > majority + 0.1, (minilm_acc, majority)
    assert re.search(r"SST-2 dev accuracy after 25 steps from all-MiniLM-L6-v2: 0\.\d{3}", r.stdout)
