"""What pretraining records look like, read off their spec (feature names and sizes, special ids),
and one record rendered for reading (no Beam, no TensorFlow)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

import specs
from specs.vocabulary import BERT_SPECIAL_IDS, Vocabulary


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
