"""Packing a row's WordPiece ids into a record the way Model Garden's ``convert_single_example`` does
(no Beam): the pair truncated by removing the last token of the longer side until it fits (B on ties,
as ``_truncate_seq_pair`` does), ``[CLS] A [SEP] B [SEP]`` zero-padded, segment ids 0/1."""

from __future__ import annotations

import numpy as np


def truncated_lengths(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """The lengths ``_truncate_seq_pair`` leaves: it removes the last token of the longer side (of B
    when they are equal) until ``len_a + len_b <= budget``; here in closed form."""
    if len_a + len_b <= budget:
        return len_a, len_b
    excess = len_a + len_b - budget
    if len_a > len_b and excess <= len_a - len_b:
        return len_a - excess, len_b
    if len_b >= len_a and excess <= len_b - len_a:
        return len_a, len_b - excess
    # Both are cut to equal length, then B first: A keeps the odd token.
    return (budget + 1) // 2, budget // 2


def pack(ids_a: np.ndarray, ids_b: np.ndarray | None, max_seq_length: int, cls_id: int, sep_id: int
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """``[CLS] A [SEP] (B [SEP])`` zero-padded: (input_ids, input_mask, segment_ids, truncated)."""
    L = max_seq_length
    ids = np.zeros(L, dtype=np.int64)
    segments = np.zeros(L, dtype=np.int64)
    if ids_b is None:
        la, lb = min(len(ids_a), L - 2), 0
    else:
        la, lb = truncated_lengths(len(ids_a), len(ids_b), L - 3)
    truncated = la < len(ids_a) or (ids_b is not None and lb < len(ids_b))
    ids[0] = cls_id
    ids[1:1 + la] = ids_a[:la]
    ids[1 + la] = sep_id
    n = 2 + la
    if ids_b is not None:
        ids[n:n + lb] = ids_b[:lb]
        ids[n + lb] = sep_id
        segments[n:n + lb + 1] = 1
        n += lb + 1
    mask = np.zeros(L, dtype=np.int64)
    mask[:n] = 1
    return ids, mask, segments, truncated
