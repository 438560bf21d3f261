"""Reading pretraining records back and checking them: ``inspect`` finds the records and the spec
written next to them, decodes a few examples and streams every record read through ``Stats``
(``python -m pipelines.inspect`` is its command; a single-process reader, not a Beam job)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

import specs
from specs import run_folder
from specs.errors import ConfigError
from specs.vocabulary import Vocabulary
from transforms.core.runtime import BeamFileSystem
from transforms.pretraining.layout import Layout, Specials, decode_example
from transforms.pretraining.outputs import PARAMS_FILE
from transforms.pretraining.statistics import Stats, format_report, write_histograms

# What a run folder holds beside the records.
SIDE_FILES = frozenset({specs.SCHEMA_FILE, specs.SPEC_FILE, PARAMS_FILE, "summary.json", *run_folder.MARKER_FILES})


def _exists(path: str) -> bool:
    try:
        return FileSystems.exists(path)
    except Exception:  # an unreachable bucket reads as absent; the caller says what is missing
        return False


def resolve_inputs(path: str, spec_dir: str | None) -> tuple[list[str], str]:
    """Data files and the directory holding their spec. PATH may be a directory (every file in it
    but the side files), one file, or a glob."""
    def match(pattern: str) -> list[str]:
        try:
            return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
        except Exception as e:  # any listing failure is a bad argument here
            raise ConfigError(f"PATH: cannot list {path!r}: {type(e).__name__}: {e}".splitlines()[0]) from None

    is_dir = os.path.isdir(path) or path.endswith("/")
    found = [] if is_dir else match(path)
    if not found and not any(c in path for c in "*?["):  # a directory on object storage has no entry
        is_dir = True
        found = match(FileSystems.join(path.rstrip("/"), "*"))
    files = [f for f in found if os.path.basename(f) not in SIDE_FILES and not os.path.basename(f).endswith(
        (".png", ".txt", ".json", ".pbtxt"))]
    if not files:
        raise ConfigError(f"PATH: no record files at {path!r}")
    return files, spec_dir or (path.rstrip("/") if is_dir else os.path.dirname(files[0]))


def _read_text(path: str) -> str:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read().decode("utf-8")


def load_spec(spec_dir: str) -> tuple[specs.FeatureSpec, dict[str, Any]]:
    """The spec written next to the data, and the pipeline's params.json when there is one."""
    schema = FileSystems.join(spec_dir, specs.SCHEMA_FILE)
    if not _exists(schema):
        raise ConfigError(f"no {specs.SCHEMA_FILE} in {spec_dir!r}: records are parsed with the spec written "
                          "next to them (use --spec_dir if it lives elsewhere)")
    side = FileSystems.join(spec_dir, specs.SPEC_FILE)
    spec = specs.read_spec_text(_read_text(schema), _read_text(side) if _exists(side) else None)
    params_path = FileSystems.join(spec_dir, PARAMS_FILE)
    params = json.loads(_read_text(params_path)) if _exists(params_path) else {}
    return spec, params


def load_vocab(path: str, spec: specs.FeatureSpec, where: str) -> Vocabulary:
    """The vocabulary (``specs.vocabulary``, read as every job reads it), checked against the one the
    records' spec says their ids came from: decoding with another would print the wrong words."""
    if not _exists(path):
        raise ConfigError(f"--vocab_file: {path!r} does not exist")
    recorded = spec.params.get("do_lower_case")
    vocab = Vocabulary.load(path, bool(recorded), reader=lambda p: _read_text(p).encode("utf-8"))
    vocab.check(spec.params, where)
    return vocab


def is_gzip(path: str) -> bool:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read(2) == b"\x1f\x8b"


def read_batches(files: Sequence[str], spec: specs.FeatureSpec, batch_size: int = 1024,
                 max_records: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Parsed batches ``{feature: ndarray}`` with tf.data and the spec's own parsing spec (what a
    trainer does); GZIP is detected per file."""
    import tensorflow as tf

    parsing = spec.tf_parsing_spec()
    left = max_records
    for path in files:
        ds = tf.data.TFRecordDataset(path, compression_type="GZIP" if is_gzip(path) else "")
        if left is not None:
            ds = ds.take(left)
        for serialized in ds.batch(batch_size):
            parsed = tf.io.parse_example(serialized, parsing)
            batch = {k: v.numpy() for k, v in parsed.items()}
            yield batch
            if left is not None:
                left -= len(serialized)
        if left is not None and left <= 0:
            return


def inspect(path: str, *, vocab_file: str | None = None, num_examples: int = 3, max_records: int | None = None,
            histogram: str | None = None, spec_dir: str | None = None, out: Any = None,
            allow_incomplete: bool = False) -> dict[str, Any]:
    """Reads, checks and summarises the records at ``path``; prints to ``out`` (stdout) and returns
    the statistics. Records of a run that did not finish (no completion marker) are refused unless
    ``allow_incomplete``."""
    out = out or sys.stdout
    files, spec_dir = resolve_inputs(path, spec_dir)
    try:
        run_folder.require_complete(path, "PATH", allow_incomplete, fs=BeamFileSystem() if "://" in path else None)
    except run_folder.RunFolderError as e:
        raise ConfigError(str(e)) from None
    spec, params = load_spec(spec_dir)
    layout = Layout.from_spec(spec, spec_dir)
    vocab_path = vocab_file or params.get("vocab_file")
    vocab = None
    if vocab_path and (vocab_file or _exists(vocab_path)):
        vocab = load_vocab(vocab_path, spec, spec_dir)
    sp = Specials.from_vocab(vocab, params)
    prob = params.get("masked_lm_prob")
    stats = Stats(layout, sp, vocab.size if vocab is not None else params.get("vocab_size"),
                  float(prob) if isinstance(prob, (int, float)) and not layout.dynamic else None)
    print(f"{len(files)} file(s), spec {spec.name or '?'} from {spec_dir}; vocabulary: "
          f"{vocab_path if vocab else 'none (ids shown)'}", file=out)
    shown = 0
    for batch in read_batches(files, spec, max_records=max_records):
        for i in range(min(num_examples - shown, len(batch[layout.ids]))):
            record = {k: v[i] for k, v in batch.items()}
            print(f"\nexample {shown}:\n" + decode_example(record, layout, sp, vocab), file=out)
            shown += 1
        stats.add(batch)
    res = stats.result()
    res["files"] = len(files)
    print("\n" + format_report(res), file=out)
    if histogram and stats.records:
        write_histograms(stats, histogram)
        res["histogram"] = histogram
        print(f"histogram: {histogram}", file=out)
    return res


def write_stats_json(res: dict[str, Any], path: str) -> None:
    """The statistics ``inspect`` returned, as JSON (local or gs://)."""
    with FileSystems.create(path) as f:
        f.write((json.dumps(res, indent=2, sort_keys=True) + "\n").encode("utf-8"))
