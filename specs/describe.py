"""Writes the spec beside records this project did not produce, so the trainer reads them.

    python -m specs.describe --pretraining --max_seq_length 128 --max_predictions_per_seq 20 DIR
    python -m specs.describe --pretraining --v2_names --max_seq_length 512 --max_predictions_per_seq 76 DIR
    python -m specs.describe --text_pairs DIR

``--pretraining``: records of Model Garden's / Google BERT's ``create_pretraining_data.py`` (the lengths
are the ones it was run with; ``--v2_names`` for ``input_word_ids``/``input_type_ids``,
``--dynamic_masking`` for ids and segments only). ``--text_pairs``: ``src_raw``/``tgt_raw`` string pairs.

``schema.pbtxt`` and ``feature_spec.json`` are written into DIR after the first record of every file
there has been checked against the spec (a feature missing, extra or of another length stops with one
line), and a spec already in DIR that says something else is never overwritten.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import specs


def _first_record(path: str) -> bytes | None:
    import tensorflow as tf  # only here: specs stays importable without TensorFlow

    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    for record in tf.data.TFRecordDataset(path, compression_type="GZIP" if gzipped else "").take(1):
        return record.numpy()
    return None


def check_records(spec: specs.FeatureSpec, files: Sequence[str]) -> None:
    """The first record of each file has exactly the spec's features with its lengths and types."""
    import tensorflow as tf

    kinds = {"bytes_list": specs.BYTES, "int64_list": specs.INT64, "float_list": specs.FLOAT32}
    for path in files:
        record = _first_record(path)
        if record is None:
            continue
        example = tf.train.Example.FromString(record)
        found = {}
        for name, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            found[name] = (kinds.get(kind or "", ""), len(getattr(feature, kind).value) if kind else 0)
        for feature in spec.features:
            if feature.name not in found:
                raise specs.SpecError(f"{path}: the first record has no feature {feature.name!r} "
                                      f"(it has {', '.join(sorted(found))})")
            dtype, length = found.pop(feature.name)
            if dtype != feature.dtype or (feature.length is not None and length != feature.length):
                raise specs.SpecError(f"{path}: feature {feature.name!r} is {dtype}[{length}] in the first record, "
                                      f"the spec says {feature.dtype}[{feature.length}]")
        if found:
            extra = ", ".join(sorted(found))
            raise specs.SpecError(f"{path}: the first record has features the spec does not: {extra}")


def describe(directory: str, spec: specs.FeatureSpec) -> list[str]:
    """Checks the records in ``directory`` against ``spec`` and writes the spec files; returns their paths."""
    names = {specs.SCHEMA_FILE, specs.SPEC_FILE}
    files = sorted(os.path.join(directory, n) for n in os.listdir(directory)
                   if n not in names and not n.startswith(".") and os.path.isfile(os.path.join(directory, n)))
    if not files:
        raise specs.SpecError(f"no record files in {directory}")
    check_records(spec, files)
    out = []
    for name, text in ((specs.SCHEMA_FILE, spec.to_schema_text()), (specs.SPEC_FILE, spec.to_json())):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            with open(path) as f:
                if f.read() != text:
                    raise specs.SpecError(f"{path} exists and describes other records; remove it first")
        with open(path, "w") as f:
            f.write(text)
        out.append(path)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m specs.describe", description=__doc__.splitlines()[0])
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--pretraining", action="store_true", help="create_pretraining_data.py records")
    kind.add_argument("--text_pairs", action="store_true", help="src_raw/tgt_raw string pairs")
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--max_predictions_per_seq", type=int, default=20)
    p.add_argument("--v2_names", action="store_true", help="input_word_ids/input_type_ids instead of v1 names")
    p.add_argument("--dynamic_masking", action="store_true", help="ids and segments only")
    p.add_argument("directory", help="The folder holding the records (local).")
    args = p.parse_args(argv)
    if args.pretraining:
        spec = specs.pretraining_spec(args.max_seq_length, args.max_predictions_per_seq, v2_names=args.v2_names,
                                      dynamic_masking=args.dynamic_masking)
    else:
        spec = specs.text_pair_spec(2)
    try:
        for path in describe(args.directory, spec):
            print(path)
    except (specs.SpecError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
