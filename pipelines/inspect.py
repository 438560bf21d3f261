"""Looks inside masked-LM pretraining records: ``python -m pipelines.inspect PATH``.

    python -m pipelines.inspect out/pretrain --vocab_file=vocab.txt --num_examples=3

PATH is an output directory, a shard, or a glob (local or gs://). The records are parsed with the spec
found next to them (``schema.pbtxt`` plus ``feature_spec.json``), so any layout the pretraining
pipeline writes is understood: v1 names (``input_ids``/``segment_ids``), v2 names
(``input_word_ids``/``input_type_ids``), or dynamic-masking records with only ids and segments. Shards
may be GZIP or plain (told apart by their first bytes, not their names).

Prints decoded examples (segments, each masked position with the token shown and the original), then
statistics over every record read: lengths, segment lengths, the mask rate, the 80/10/10 split of
[MASK]/random/kept with 95% intervals, NSP balance, the [UNK] rate, and structural checks (positions
sorted, unique, inside the sequence and never on [CLS]/[SEP]/padding; [CLS] A [SEP] B [SEP] layout;
segment ids; padding). Writes a PNG of the distributions. Exits 1 when a check fails, 2 on bad
arguments. This is a single-process reader, not a Beam job: statistics are streamed in batches (memory
does not grow with the data) and ``--max_records`` bounds the time on a large dataset.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

import specs
from specs import run_folder
from specs.vocabulary import BERT_SPECIAL_IDS, Vocabulary
from trainer.cli import StrictParser
from transforms.core.errors import ConfigError
from transforms.core.runtime import BeamFileSystem

PARAMS_FILE = "params.json"  # what pipelines.pretrain_data writes next to its data
SIDE_FILES = frozenset({specs.SCHEMA_FILE, specs.SPEC_FILE, PARAMS_FILE, "summary.json", *run_folder.MARKER_FILES})


# --- what the records look like -----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Layout:
    """Feature names and sizes of one pretraining dataset, read off its spec."""

    ids: str
    segments: str
    max_seq_length: int
    max_predictions: int  # 0 for dynamic masking
    v2_names: bool
    dynamic: bool
    has_nsp: bool

    @classmethod
    def from_spec(cls, spec: specs.FeatureSpec, where: str) -> Layout:
        v2 = "input_word_ids" in spec.names
        ids = "input_word_ids" if v2 else "input_ids"
        if ids not in spec.names:
            raise specs.SpecError(f"{where}: no input_ids or input_word_ids feature (found: {', '.join(spec.names)}); "
                                  "not pretraining records")
        shape = spec[ids].shape
        if shape is None or len(shape) != 1:
            raise specs.SpecError(f"{where}: feature {ids!r} has shape {shape}, expected a fixed-length vector")
        dynamic = "masked_lm_positions" not in spec.names
        P = 0
        if not dynamic:
            p_shape = spec["masked_lm_positions"].shape
            if p_shape is None or len(p_shape) != 1:
                raise specs.SpecError(f"{where}: masked_lm_positions has shape {p_shape}")
            P = p_shape[0]
        expected = specs.pretraining_spec(shape[0], max(P, 1), v2_names=v2, dynamic_masking=dynamic)
        spec.require(expected, where)
        return cls(ids, "input_type_ids" if v2 else "segment_ids", shape[0], P, v2, dynamic,
                   "next_sentence_labels" in spec.names)


@dataclasses.dataclass(frozen=True)
class Specials:
    pad: int
    unk: int
    cls: int
    sep: int
    mask: int

    @classmethod
    def from_vocab(cls, vocab: Vocabulary | None, params: Mapping[str, Any]) -> Specials:
        """Special ids from the vocabulary when there is one, else as the records' spec or the
        pipeline's params record them, else BERT's (which all of Google's released vocabularies use)."""
        if vocab is not None:
            return cls(**{k: v for k, v in vocab.special_ids().items() if k in BERT_SPECIAL_IDS})
        ids = dict(BERT_SPECIAL_IDS)
        ids.update({k: v for k, v in (params.get("special_ids") or {}).items() if k in ids and isinstance(v, int)})
        return cls(**ids)


# --- statistics over batches (plain numpy, no TensorFlow) -------------------------------------------

PROBLEMS = {
    "not_cls_first": "first token is not [CLS]",
    "not_two_seps": "not exactly two [SEP] with the last real token a [SEP]",
    "bad_segment_ids": "segment ids are not 0 for [CLS] A [SEP] and 1 for B [SEP], 0 in padding",
    "bad_padding": "input_mask is not 1..1 0..0, padding ids are not 0, or [PAD] inside the sequence",
    "id_out_of_vocab": "a token id outside the vocabulary",
    "weights_not_prefix": "masked_lm_weights are not 1..1 0..0",
    "positions_unsorted_or_duplicate": "masked positions are not strictly increasing",
    "position_outside_sequence": "a masked position is [CLS] (0) or beyond the real tokens",
    "special_token_masked": "a masked original id is [CLS], [SEP] or [PAD]",
    "prediction_padding_not_zero": "unused prediction slots have non-zero positions or ids",
    "mask_outside_predictions": "a [MASK] token at a position that is not predicted",
    "no_predictions": "a record without any prediction",
    "bad_nsp_label": "next_sentence_labels is not 0 or 1",
}


class Stats:
    """Streaming statistics and checks over parsed batches (``{feature: ndarray}``)."""

    def __init__(self, layout: Layout, specials: Specials, vocab_size: int | None,
                 masked_lm_prob: float | None = None) -> None:
        self.layout, self.sp, self.vocab_size, self.prob = layout, specials, vocab_size, masked_lm_prob
        L, P = layout.max_seq_length, layout.max_predictions
        self.records = 0
        self.length_hist = np.zeros(L + 1, np.int64)
        self.a_hist = np.zeros(L + 1, np.int64)
        self.b_hist = np.zeros(L + 1, np.int64)
        self.pred_hist = np.zeros(P + 1, np.int64)
        self.real_tokens = 0
        self.unk_tokens = 0
        self.split = np.zeros(3, np.int64)  # [MASK], random, kept
        self.nsp = np.zeros(2, np.int64)
        self.formula_matches = 0
        self.problems = dict.fromkeys(PROBLEMS, 0)
        self.first_bad: dict[str, int] = {}

    def _flag(self, name: str, bad: np.ndarray) -> None:
        n = int(bad.sum())
        if n:
            self.problems[name] += n
            self.first_bad.setdefault(name, self.records + int(np.argmax(bad)))

    def add(self, batch: Mapping[str, np.ndarray]) -> None:
        lay, sp = self.layout, self.sp
        ids = np.asarray(batch[lay.ids], np.int64)  # as stored: masked
        segs = np.asarray(batch[lay.segments], np.int64)
        B, L = ids.shape
        col = np.arange(L)[None, :]
        # Structure is checked on the original sequence: a random replacement may legitimately be any
        # id of the vocabulary, [SEP] and [PAD] included (the reference draws from all of it).
        original, predicted_at = ids, np.zeros((B, L), bool)
        if not lay.dynamic:
            pos = np.asarray(batch["masked_lm_positions"], np.int64)
            r, c = np.nonzero(np.asarray(batch["masked_lm_weights"]) > 0)
            p = np.clip(pos[r, c], 0, L - 1)
            original = ids.copy()
            original[r, p] = np.asarray(batch["masked_lm_ids"], np.int64)[r, c]
            predicted_at[r, p] = True
        if "input_mask" in batch:
            mask = np.asarray(batch["input_mask"], np.int64)
            length = (mask != 0).sum(1)
        else:
            nz = original != 0
            length = np.where(nz.any(1), L - np.argmax(nz[:, ::-1], axis=1), 0)
            mask = None
        real = col < length[:, None]
        bad_pad = ((original != 0) & ~real).any(1) | ((original == sp.pad) & real).any(1)
        if mask is not None:
            bad_pad |= (mask != real).any(1)
        self._flag("bad_padding", bad_pad)
        self._flag("not_cls_first", original[:, 0] != sp.cls)
        is_sep = (original == sp.sep) & real
        last = np.take_along_axis(original, np.maximum(length - 1, 0)[:, None], 1)[:, 0]
        self._flag("not_two_seps", (is_sep.sum(1) != 2) | (last != sp.sep))
        first_sep = np.where(is_sep.any(1), np.argmax(is_sep, 1), length - 1)
        expected_segs = (col > first_sep[:, None]) & real
        self._flag("bad_segment_ids", (segs != expected_segs).any(1))
        if self.vocab_size:
            self._flag("id_out_of_vocab", ((ids < 0) | (ids >= self.vocab_size) | (original < 0)
                                           | (original >= self.vocab_size)).any(1))
        a_len = np.minimum(first_sep + 1, length)
        np.add.at(self.length_hist, length, 1)
        np.add.at(self.a_hist, a_len, 1)
        np.add.at(self.b_hist, length - a_len, 1)
        self.real_tokens += int(length.sum())
        self.unk_tokens += int(((original == sp.unk) & real).sum())
        if lay.has_nsp:
            nsp = np.asarray(batch["next_sentence_labels"], np.int64).reshape(B, -1)[:, 0]
            self._flag("bad_nsp_label", (nsp != 0) & (nsp != 1))
            self.nsp += np.bincount(np.clip(nsp, 0, 1), minlength=2)
        if not lay.dynamic:
            self._flag("mask_outside_predictions", ((ids == sp.mask) & real & ~predicted_at).any(1))
            self._add_predictions(batch, ids, length)
        self.records += B

    def _add_predictions(self, batch: Mapping[str, np.ndarray], ids: np.ndarray, length: np.ndarray) -> None:
        sp = self.sp
        pos = np.asarray(batch["masked_lm_positions"], np.int64)
        orig = np.asarray(batch["masked_lm_ids"], np.int64)
        w = np.asarray(batch["masked_lm_weights"], np.float64)
        P = pos.shape[1]
        pw = w > 0
        n_pred = pw.sum(1)
        self._flag("weights_not_prefix", (pw != (np.arange(P)[None, :] < n_pred[:, None])).any(1)
                   | ((w != 0) & (w != 1)).any(1))
        self._flag("positions_unsorted_or_duplicate", (pw[:, 1:] & (np.diff(pos, axis=1) <= 0)).any(1))
        self._flag("position_outside_sequence", (pw & ((pos <= 0) | (pos >= length[:, None]))).any(1))
        self._flag("special_token_masked", (pw & np.isin(orig, [sp.cls, sp.sep, sp.pad])).any(1))
        self._flag("prediction_padding_not_zero", (~pw & ((pos != 0) | (orig != 0))).any(1))
        self._flag("no_predictions", n_pred == 0)
        shown = np.take_along_axis(ids, np.clip(pos, 0, ids.shape[1] - 1), 1)
        is_mask = pw & (shown == sp.mask)
        kept = pw & ~is_mask & (shown == orig)
        self.split += [int(is_mask.sum()), int((pw & ~is_mask & ~kept).sum()), int(kept.sum())]
        np.add.at(self.pred_hist, np.minimum(n_pred, P), 1)
        if self.prob is not None:
            expected = np.minimum(P, np.maximum(1, np.rint(length * self.prob).astype(np.int64)))
            self.formula_matches += int((expected == n_pred).sum())

    def result(self) -> dict[str, Any]:
        """The statistics as a JSON-able dict."""
        n = max(self.records, 1)
        out: dict[str, Any] = {
            "records": self.records,
            "layout": dataclasses.asdict(self.layout),
            "special_ids": dataclasses.asdict(self.sp),
            "length": _describe(self.length_hist),
            "segment_a_length": _describe(self.a_hist),
            "segment_b_length": _describe(self.b_hist),
            "full_length_fraction": float(self.length_hist[-1] / n),
            "unk_rate": self.unk_tokens / max(self.real_tokens, 1),
            "problems": {k: v for k, v in self.problems.items() if v},
            "first_bad_record": dict(sorted(self.first_bad.items())),
        }
        if self.layout.has_nsp:
            out["next_sentence"] = {"random_next": int(self.nsp[1]), "actual_next": int(self.nsp[0]),
                                    "random_next_fraction": _share(int(self.nsp[1]), int(self.nsp.sum()))}
        if not self.layout.dynamic:
            predictions = int(self.split.sum())
            out["predictions"] = {
                "total": predictions,
                "per_record": _describe(self.pred_hist),
                "mask_rate": predictions / max(self.real_tokens, 1),
                "mask_rate_excluding_cls_sep": predictions / max(self.real_tokens - 3 * self.records, 1),
                "at_max_predictions_fraction": float(self.pred_hist[-1] / n),
                "replaced_by_mask": _share(int(self.split[0]), predictions),
                "replaced_by_random": _share(int(self.split[1]), predictions),
                "kept": _share(int(self.split[2]), predictions),
            }
            if self.prob is not None:
                out["predictions"]["count_matches_reference_formula"] = self.formula_matches / n
        return out


def _share(k: int, n: int) -> dict[str, float]:
    """A proportion with its 95% normal-approximation interval half-width."""
    p = k / n if n else 0.0
    return {"count": k, "fraction": p, "ci95": 1.96 * math.sqrt(p * (1 - p) / n) if n else 0.0}


def _describe(hist: np.ndarray) -> dict[str, float]:
    n = int(hist.sum())
    if not n:
        return {"mean": 0.0, "min": 0, "p50": 0, "p95": 0, "max": 0}
    values = np.arange(len(hist))
    cdf = np.cumsum(hist)
    return {"mean": float((hist * values).sum() / n), "min": int(values[hist > 0][0]),
            "p50": int(np.searchsorted(cdf, 0.5 * n)), "p95": int(np.searchsorted(cdf, 0.95 * n)),
            "max": int(values[hist > 0][-1])}


# --- decoding one record ----------------------------------------------------------------------

def decode_example(record: Mapping[str, np.ndarray], layout: Layout, sp: Specials,
                   vocab: Vocabulary | None) -> str:
    """A readable rendering: the segments with masked positions as ``[shown→original]``, then one line
    per prediction saying whether it is a [MASK], a random replacement, or kept."""
    def tok(i: int) -> str:
        return vocab.tokens[i] if vocab is not None and 0 <= i < vocab.size else str(i)

    ids = [int(x) for x in record[layout.ids]]
    segs = [int(x) for x in record[layout.segments]]
    length = int(np.sum(record["input_mask"])) if "input_mask" in record else (
        max((i + 1 for i, x in enumerate(ids) if x), default=0))
    preds: dict[int, int] = {}
    if not layout.dynamic:
        for p, o, w in zip(record["masked_lm_positions"], record["masked_lm_ids"], record["masked_lm_weights"],
                           strict=True):
            if w > 0:
                preds[int(p)] = int(o)
    rendered: dict[int, list[str]] = {0: [], 1: []}
    for i in range(length):
        text = tok(ids[i])
        if i in preds:
            text = f"[{text}→{tok(preds[i])}]"
        rendered.setdefault(segs[i], []).append(text)
    head = [f"length {length} of {layout.max_seq_length}: segment A {segs[:length].count(0)}, "
            f"segment B {segs[:length].count(1)}"]
    if layout.has_nsp:
        label = int(np.asarray(record["next_sentence_labels"]).reshape(-1)[0])
        head.append(f"next_sentence_label={label} ({'random next' if label == 1 else 'actual next'})")
    if not layout.dynamic:
        head.append(f"{len(preds)} predictions")
    lines = ["  " + ", ".join(head)]
    for seg in sorted(rendered):
        lines.append(f"  segment {'AB'[seg] if seg in (0, 1) else seg}: " + " ".join(rendered[seg]))
    if preds:
        kinds = []
        for p, o in sorted(preds.items()):
            shown = ids[p] if 0 <= p < len(ids) else -1
            kind = "[MASK]" if shown == sp.mask else ("kept" if shown == o else f"random {tok(shown)}")
            kinds.append(f"{p}:{tok(o)} {kind}")
        lines.append("  predictions: " + "; ".join(kinds))
    return "\n".join(lines)


# --- reading --------------------------------------------------------------------------------

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


# --- the PNG --------------------------------------------------------------------------------

def write_histograms(stats: Stats, path: str) -> None:
    """Four panels: sequence lengths, segment lengths, predictions per record, and the replacement
    split with the NSP balance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    L = stats.layout.max_seq_length
    x = np.arange(L + 1)
    axes[0, 0].bar(x, stats.length_hist, width=1.0)
    axes[0, 0].set(title=f"sequence length ({stats.records} records)", xlabel="real tokens", ylabel="records")
    axes[0, 1].bar(x, stats.a_hist, width=1.0, alpha=0.6, label="segment A ([CLS] A [SEP])")
    axes[0, 1].bar(x, stats.b_hist, width=1.0, alpha=0.6, label="segment B (B [SEP])")
    axes[0, 1].set(title="segment lengths", xlabel="tokens", ylabel="records")
    axes[0, 1].legend()
    if stats.layout.dynamic:
        axes[1, 0].set_axis_off()
        axes[1, 0].text(0.5, 0.5, "dynamic masking: no stored predictions", ha="center")
    else:
        axes[1, 0].bar(np.arange(len(stats.pred_hist)), stats.pred_hist, width=1.0)
        axes[1, 0].set(title="masked predictions per record", xlabel="predictions", ylabel="records")
    labels, values = [], []
    total = int(stats.split.sum())
    if total:
        labels += ["[MASK]", "random", "kept"]
        values += list(stats.split / total)
    if stats.layout.has_nsp and stats.nsp.sum():
        labels += ["NSP random", "NSP actual"]
        values += [stats.nsp[1] / stats.nsp.sum(), stats.nsp[0] / stats.nsp.sum()]
    axes[1, 1].bar(labels, values)
    axes[1, 1].set(title="replacement split and NSP balance", ylabel="fraction", ylim=(0, 1))
    fig.tight_layout()
    with FileSystems.create(path) as f:
        fig.savefig(f, format="png", dpi=90)
    plt.close(fig)


# --- the command ------------------------------------------------------------------------------

def format_report(res: Mapping[str, Any]) -> str:
    lines = [f"records: {res['records']}  (layout: {'v2' if res['layout']['v2_names'] else 'v1'} names, "
             f"max_seq_length {res['layout']['max_seq_length']}"
             + (", dynamic masking" if res["layout"]["dynamic"] else
                f", max_predictions_per_seq {res['layout']['max_predictions']}") + ")"]
    for key in ("length", "segment_a_length", "segment_b_length"):
        d = res[key]
        lines.append(f"{key:<18} mean {d['mean']:.1f}  min {d['min']}  p50 {d['p50']}  p95 {d['p95']}  max {d['max']}")
    lines.append(f"full-length records {res['full_length_fraction']:.1%}   [UNK] rate {res['unk_rate']:.4%}")
    if "predictions" in res:
        p = res["predictions"]
        lines.append(f"predictions        {p['total']} (mean {p['per_record']['mean']:.2f} per record, "
                     f"{p['at_max_predictions_fraction']:.1%} at the maximum)")
        lines.append(f"mask rate          {p['mask_rate']:.4f} of real tokens, "
                     f"{p['mask_rate_excluding_cls_sep']:.4f} excluding [CLS]/[SEP]")
        lines.append("replacement        " + "  ".join(
            f"{name} {p[k]['fraction']:.3f}±{p[k]['ci95']:.3f}"
            for name, k in (("[MASK]", "replaced_by_mask"), ("random", "replaced_by_random"), ("kept", "kept"))))
        if "count_matches_reference_formula" in p:
            lines.append(f"predictions per record equal min(max_predictions, max(1, round(length * "
                         f"masked_lm_prob))) in {p['count_matches_reference_formula']:.1%} of records")
    if "next_sentence" in res:
        s = res["next_sentence"]["random_next_fraction"]
        lines.append(f"next sentence      random next {s['fraction']:.3f}±{s['ci95']:.3f} "
                     f"({res['next_sentence']['random_next']} of {res['records']})")
    if res["problems"]:
        lines.append("PROBLEMS:")
        for k, n in res["problems"].items():
            lines.append(f"  {k}: {n} records ({PROBLEMS[k]}); first at record {res['first_bad_record'][k]}")
    else:
        lines.append("checks: all records passed every structural check")
    return "\n".join(lines)


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = StrictParser(prog="python -m pipelines.inspect", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="output directory, shard or glob of pretraining TFRecords (local or gs://)")
    parser.add_argument("--vocab_file", default=None,
                        help="vocab.txt to show tokens (default: the vocab_file in params.json, if readable)")
    parser.add_argument("--num_examples", type=int, default=3, help="records to print decoded")
    parser.add_argument("--max_records", type=int, default=None, help="read at most this many records")
    parser.add_argument("--histogram", default="inspect_histogram.png", help="PNG to write ('' for none)")
    parser.add_argument("--stats_json", default=None, help="also write the statistics as JSON here")
    parser.add_argument("--spec_dir", default=None, help="where schema.pbtxt is, if not next to the data")
    parser.add_argument("--allow_incomplete", action="store_true",
                        help="read records whose run folder has no completion marker (an unfinished run, or "
                             "records written elsewhere)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        if args.num_examples < 0 or (args.max_records is not None and args.max_records < 1):
            raise ConfigError("--num_examples must be >= 0 and --max_records >= 1")
        res = inspect(args.path, vocab_file=args.vocab_file, num_examples=args.num_examples,
                      max_records=args.max_records, histogram=args.histogram or None, spec_dir=args.spec_dir,
                      allow_incomplete=args.allow_incomplete)
    except (ConfigError, specs.SpecError) as e:
        print(f"inspect: error: {e}", file=sys.stderr)
        return 2
    if args.stats_json:
        with FileSystems.create(args.stats_json) as f:
            f.write((json.dumps(res, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return 1 if res["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
