"""`make demo` end to end: scripts/demo.sh on the bundled samples, then its outputs are checked."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

# Each test here takes over ~30 s (a whole job or a training run): not in the fast lane.
pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_demo_runs_end_to_end_and_prints_a_similarity_table(tmp_path):
    out = tmp_path / "demo_out"
    r = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh"), str(out)], cwd=REPO, capture_output=True,
                       text=True, env={**os.environ, "PY": sys.executable}, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("---- [") == 11 and "Demo finished" in r.stdout
    for job in ("stackexchange", "translation", "vocab", "pretrain"):
        summary = json.loads((out / job / "summary.json").read_text())
        assert summary["balanced"], job
        assert (out / job / "_RUN_COMPLETE.json").exists(), job
    assert (out / "stackexchange" / "title_body" / "tfrecord" / "schema.pbtxt").exists()
    assert (out / "export" / "labse_encoder" / "saved_model.pb").exists()
    assert (out / "export" / "labse_preprocessing" / "saved_model.pb").exists()
    table = (out / "similarity.txt").read_text().splitlines()
    assert table[-1].startswith("translation ranked first for ") and table[-1].endswith("(random embeddings: about 1)")
    # the pairs shown were held out of training, and the table says so
    assert table[-2].startswith("held-out sentences: none of these pairs is in the training split ")
    rows = [line for line in table[1:6]]
    assert len(rows) == 5 and all(line.count("*") == 1 for line in rows)
    values = [float(v.rstrip("*")) for line in rows for v in line[30:].split()]
    assert len(values) == 25 and all(-1.0001 <= v <= 1.0001 for v in values)
