"""Losses and metrics as plain TF functions (tested without a strategy), plus the cross-replica
gathering that gives the dual encoder the paper's global-batch negatives.

Every loss returns the *sum* over this replica's examples; the caller divides by the global batch
size, so that summing gradients over replicas (what every ``tf.distribute`` strategy does) gives the
gradient of the mean over the global batch.
"""

from __future__ import annotations

import tensorflow as tf


def masked_lm_loss_sum(labels: tf.Tensor, logits: tf.Tensor, weights: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Cross-entropy summed over the predicted positions (weights 1.0 real, 0.0 padding) and the
    number of correct predictions among them."""
    labels = tf.cast(labels, tf.int32)
    weights = tf.cast(weights, tf.float32)
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.cast(logits, tf.float32))
    correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
    return tf.reduce_sum(xent * weights), tf.reduce_sum(correct * weights)


def classification_loss_sum(labels: tf.Tensor, logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Cross-entropy summed over examples and the number correct (the NSP head)."""
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.cast(logits, tf.float32))
    correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
    return tf.reduce_sum(xent), tf.reduce_sum(correct)


def gather_from_replicas(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Every replica's ``x`` stacked along the batch axis (in replica order) and where this replica's
    rows start in it. Gradients flow back to the replica that produced each row, so the loss over
    the global batch trains every encoder copy. Outside a multi-replica context, ``(x, 0)``."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return x, tf.constant(0, tf.int32)
    gathered = ctx.all_gather(x, axis=0)
    replica = tf.cast(ctx.replica_id_in_sync_group, tf.int32)
    return gathered, replica * tf.shape(x)[0]


def in_batch_softmax_loss_sum(src: tf.Tensor, tgt: tf.Tensor, all_src: tf.Tensor, all_tgt: tf.Tensor,
                              offset: tf.Tensor, scale: float, margin: float,
                              bidirectional: bool = True) -> dict[str, tf.Tensor]:
    """LaBSE's additive-margin in-batch softmax (Yang et al. 2019; Feng et al. 2022).

    ``src``/``tgt`` are this replica's (normalised) embeddings, ``all_src``/``all_tgt`` the global batch
    (the same tensors on one replica) and ``offset`` where this replica's rows start in it. Row ``i``
    scores ``scale * (s_i . t_j - margin [i == j])`` against every target ``j`` of the global batch;
    with ``bidirectional`` the targets also retrieve their sources and the two losses are averaged.
    Returns the summed loss and the summed number of rows whose positive scored highest.
    """
    src, tgt = tf.cast(src, tf.float32), tf.cast(tgt, tf.float32)
    all_src, all_tgt = tf.cast(all_src, tf.float32), tf.cast(all_tgt, tf.float32)
    labels = offset + tf.range(tf.shape(src)[0])
    positive = tf.one_hot(labels, tf.shape(all_tgt)[0], dtype=tf.float32)

    def direction(queries: tf.Tensor, keys: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        similarity = tf.matmul(queries, keys, transpose_b=True)
        logits = scale * (similarity - margin * positive)
        xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        # Retrieval accuracy is judged on the similarities themselves; the margin only shapes training.
        hits = tf.cast(tf.equal(tf.argmax(similarity, -1, output_type=tf.int32), labels), tf.float32)
        return tf.reduce_sum(xent), tf.reduce_sum(hits)

    loss, hits = direction(src, all_tgt)
    out = {"loss": loss, "src_to_tgt_correct": hits}
    if bidirectional:
        back_loss, back_hits = direction(tgt, all_src)
        out["loss"] = (loss + back_loss) / 2.0
        out["tgt_to_src_correct"] = back_hits
    return out


def retrieval_precision_at_1(queries: tf.Tensor, keys: tf.Tensor, batch_size: int = 4096) -> float:
    """Share of query rows whose nearest key (dot product) is the key with the same index. Computed
    in blocks of queries so memory stays ``batch_size x len(keys)``."""
    queries = tf.convert_to_tensor(queries, tf.float32)
    keys = tf.convert_to_tensor(keys, tf.float32)
    n = int(queries.shape[0])
    if n == 0:
        return 0.0
    correct = 0
    for start in range(0, n, batch_size):
        scores = tf.matmul(queries[start:start + batch_size], keys, transpose_b=True)
        best = tf.argmax(scores, axis=-1, output_type=tf.int32)
        want = tf.range(start, start + tf.shape(best)[0])
        correct += int(tf.reduce_sum(tf.cast(tf.equal(best, want), tf.int32)))
    return correct / n
