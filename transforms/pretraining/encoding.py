"""Batches of instances masked and encoded together with numpy into ``tf.train.Example`` bytes (no Beam)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import numpy as np

import specs
from transforms.pretraining.masking import mask_batch, mask_whole_words, token_mask_words
from transforms.pretraining.pairs import Pair, Pool
from transforms.pretraining.params import InstanceParams, VocabInfo

_KEY_WORDS = 2  # random 32-bit words per instance for its 8-byte sort key


class InstanceBatch:
    """Instances of many documents and passes, masked and encoded together with numpy.

    ``add`` takes one document's (or translation pair's) pairs for one pass and draws all their
    randomness from that pass's generator (the reference uses one generator per run; ours is per
    document and pass, so records do not depend on how documents are grouped into batches): whole-word
    masks in Python, else a block of random words that ``encode`` turns into token masks, plus each
    instance's sort key (a seeded global shuffle for the writer). Per instance, Python costs
    tens of microseconds; numpy over a batch, a few.
    """

    def __init__(self, params: InstanceParams, vocab: VocabInfo, spec: specs.FeatureSpec) -> None:
        self._params, self._vocab, self._spec = params, vocab, spec
        self._whole_words = params.do_whole_word_mask and not params.dynamic_masking
        self._token_words = 0 if params.dynamic_masking or self._whole_words else token_mask_words(params)
        self.pairs: list[Pair] = []
        self._words: list[bytes] = []
        self._whole_word_masks: list[tuple[list[int], list[int]]] = []

    def __len__(self) -> int:
        return len(self.pairs)

    def add(self, pool: Pool, pairs: Sequence[Pair], rng: random.Random) -> None:
        if self._whole_words:
            vocab = self._vocab
            for a_start, a_len, b_start, b_len, _ in pairs:
                ids = [vocab.cls_id, *pool.tokens(a_start, a_len), vocab.sep_id, *pool.tokens(b_start, b_len),
                       vocab.sep_id]
                special = frozenset((0, a_len + 1, len(ids) - 1))
                self._whole_word_masks.append(mask_whole_words(ids, special, self._params, vocab, rng))
        n = len(pairs) * (_KEY_WORDS + self._token_words)
        self._words.append(rng.getrandbits(32 * n).to_bytes(4 * n, "little"))
        self.pairs.extend(pairs)

    def encode(self, pool: Pool) -> list[tuple[bytes, bytes]]:
        """``(sort_key, serialized tf.train.Example)`` for every instance added (``pool``: the one
        their offsets refer to); empties the batch."""
        if not self.pairs:
            return []
        rows, L = len(self.pairs), self._params.max_seq_length
        a_start, a_len, b_start, b_len, random_next = np.fromiter(
            itertools.chain.from_iterable(self.pairs), dtype=np.int64, count=5 * rows).reshape(rows, 5).T
        words = np.frombuffer(b"".join(self._words), dtype="<u4").reshape(rows, -1)
        lengths = a_len + b_len + 3
        col = np.arange(L)
        # Column c holds A's token c - 1 (1 <= c <= len A) or B's token c - len A - 2.
        in_b = col >= a_len[:, None] + 2
        source = np.where(in_b, (b_start - a_len - 2)[:, None], (a_start - 1)[:, None]) + col
        token = (col >= 1) & (col < lengths[:, None] - 1) & (col != a_len[:, None] + 1)
        ids = np.where(token, pool.ids.take(source, mode="clip"), 0)
        row = np.arange(rows)
        ids[:, 0] = self._vocab.cls_id
        ids[row, a_len + 1] = self._vocab.sep_id
        ids[row, lengths - 1] = self._vocab.sep_id
        columns = {self._spec.features[0].name: ids, self._spec.features[1].name: in_b & (col < lengths[:, None])}
        if not self._params.dynamic_masking:
            if self._whole_words:
                masked, positions, labels, count = self._apply_whole_word_masks(ids)
            else:
                masked, positions, labels, count = mask_batch(ids, lengths, a_len + 2, words[:, _KEY_WORDS:],
                                                              self._params, self._vocab)
            columns.update({self._spec.features[0].name: masked, "input_mask": col < lengths[:, None],
                            "masked_lm_positions": positions, "masked_lm_ids": labels,
                            "masked_lm_weights": np.arange(positions.shape[1]) < count[:, None],
                            "next_sentence_labels": random_next})
        keys = np.ascontiguousarray(words[:, :_KEY_WORDS]).view(f"V{4 * _KEY_WORDS}").ravel().tolist()  # bytes
        records = list(zip(keys, self._spec.encode_batch(columns), strict=True))
        self.pairs, self._words, self._whole_word_masks = [], [], []
        return records

    def _apply_whole_word_masks(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        P = self._params.max_predictions_per_seq
        masked = ids.copy()
        positions = np.zeros((len(ids), P), dtype=np.int64)
        labels = np.zeros((len(ids), P), dtype=np.int64)
        count = np.zeros(len(ids), dtype=np.int64)
        for r, (pos, values) in enumerate(self._whole_word_masks):
            k = count[r] = len(pos)
            positions[r, :k] = pos
            labels[r, :k] = ids[r, pos]
            masked[r, pos] = values
        return masked, positions, labels, count
