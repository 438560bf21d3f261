"""The cross-lingual similarity table of ``python -m trainer.similarity``: ``src<TAB>tgt`` lines read
(skipping a run's training texts), and the table of cosine similarities with each row's best marked."""

from __future__ import annotations

import glob
import os
import unicodedata
from collections.abc import Collection, Sequence

import numpy as np

from specs import run_folder
from specs.errors import ConfigError


def normalize(text: str) -> str:
    """NFC with whitespace collapsed: how translation_pairs stores the texts it compares."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def read_tsv(path: str, rows: int, skip: Collection[str] = ()) -> tuple[list[str], list[str]]:
    """The first ``rows`` pairs of a TSV, leaving out pairs with a side in ``skip`` (normalised)."""
    src, tgt = [], []
    if not os.path.isfile(path):
        raise ConfigError(f"--tsv {path} does not exist")
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2 and not {normalize(parts[0]), normalize(parts[1])} & set(skip):
                src.append(parts[0])
                tgt.append(parts[1])
            if len(src) == rows:
                break
    return src, tgt


def training_texts(run: str) -> tuple[set[str], str]:
    """Every text of the ``train`` split of a finished translation_pairs run, and where it was read."""
    import tensorflow as tf

    run_folder.require_complete(run, "--held_out_from")
    train = os.path.join(run, "train")
    files = sorted(glob.glob(os.path.join(train, "*.tfrecord*")))
    if not files:
        raise run_folder.RunFolderError(f"--held_out_from {run}: no train/*.tfrecord* records")
    texts: set[str] = set()
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator():
        features = tf.train.Example.FromString(record).features.feature
        for name in ("src_raw", "tgt_raw"):
            texts.update(normalize(v.decode("utf-8")) for v in features[name].bytes_list.value)
    return texts, train


def format_table(rows: Sequence[str], cols: Sequence[str], sim: np.ndarray, width: int = 28,
                 held_out: str = "") -> str:
    def cut(s: str) -> str:
        return s if len(s) <= width else s[: width - 1] + "…"

    lines = [" " * (width + 2) + "".join(f"{'[' + str(j) + ']':>8}" for j in range(len(cols)))]
    for i, r in enumerate(rows):
        best = int(np.argmax(sim[i]))
        cells = "".join(f"{sim[i, j]:>7.2f}{'*' if j == best else ' '}" for j in range(len(cols)))
        lines.append(f"{cut(r):<{width}}  {cells}")
    lines.append("")
    lines += [f"[{j}] {c}" for j, c in enumerate(cols)]
    lines.append(held_out or "these pairs were not checked against the training data (--held_out_from)")
    hits = int(sum(int(np.argmax(sim[i])) == i for i in range(len(rows))))
    lines.append(f"translation ranked first for {hits} of {len(rows)} sentences (random embeddings: about 1)")
    return "\n".join(lines)


