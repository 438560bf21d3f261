"""Statistics and structural checks over pretraining records, streamed in batches (plain numpy, no
TensorFlow): lengths, the mask rate and the 80/10/10 split, NSP balance, the [UNK] rate, and every
way a record can break the reference's layout; the report and the PNG of the distributions."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from apache_beam.io.filesystems import FileSystems

from transforms.pretraining.layout import Layout, Specials

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
