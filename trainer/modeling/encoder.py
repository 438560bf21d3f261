"""BERT encoder, masked-LM / next-sentence heads and the LaBSE dual encoder, in tf_keras.

tf_keras (Keras 2) is the base because TF Hub's ``KerasLayer`` is a tf_keras layer: a SavedModel of these
models loads with ``hub.load`` and fine-tunes with ``hub.KerasLayer`` in the same Keras. The encoder is
post-layer-norm BERT as released (so checkpoints line up with the published shapes) and returns what TF
Hub BERT encoders return: ``sequence_output``, ``pooled_output`` (dense/tanh over [CLS]),
``encoder_outputs`` (one per layer) and ``default`` (= ``pooled_output``).

Layer norms and the output logits run in float32 under a mixed-precision policy, as in Model Garden.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras

INPUT_NAMES = ("input_word_ids", "input_mask", "input_type_ids")


def _init(cfg: Any) -> tf_keras.initializers.Initializer:
    return tf_keras.initializers.TruncatedNormal(stddev=cfg.initializer_range)


def _activation(name: str) -> Any:
    """``gelu`` is Model Garden's and Google BERT's (the tanh approximation); ``exact_gelu`` is the erf form
    that Hugging Face's ``hidden_act: gelu`` means."""
    if name == "gelu":
        return lambda x: tf.nn.gelu(x, approximate=True)
    if name == "exact_gelu":
        return lambda x: tf.nn.gelu(x, approximate=False)
    return tf_keras.activations.get(name)


class PositionEmbedding(tf_keras.layers.Layer):
    """Learned absolute positions, sliced to the input's length."""

    def __init__(self, max_length: int, initializer: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length
        self.initializer = initializer

    def build(self, input_shape: Any) -> None:
        self.embeddings = self.add_weight("embeddings", shape=[self.max_length, input_shape[-1]],
                                          initializer=self.initializer)
        super().build(input_shape)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        length = tf.shape(x)[1]
        return tf.cast(self.embeddings[tf.newaxis, :length], x.dtype)


class AttentionMask(tf_keras.layers.Layer):
    """``(batch, to)`` padding mask -> ``(batch, from, to)`` boolean attention mask."""

    def call(self, x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        to_mask = tf.cast(mask, tf.bool)[:, tf.newaxis, :]
        return tf.logical_and(to_mask, tf.ones_like(x[:, :, :1], dtype=tf.bool))


class TransformerBlock(tf_keras.layers.Layer):
    """Post-LN transformer block: attention, add & norm, feed-forward, add & norm."""

    def __init__(self, cfg: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        head = cfg.hidden_size // cfg.num_attention_heads
        self.attention = tf_keras.layers.MultiHeadAttention(
            cfg.num_attention_heads, head, dropout=cfg.attention_dropout_rate, kernel_initializer=_init(cfg),
            name="self_attention")
        self.attention_norm = tf_keras.layers.LayerNormalization(epsilon=1e-12, dtype=tf.float32,
                                                                 name="self_attention_layer_norm")
        self.intermediate = tf_keras.layers.Dense(cfg.intermediate_size, activation=_activation(cfg.hidden_activation),
                                                  kernel_initializer=_init(cfg), name="intermediate")
        self.output_dense = tf_keras.layers.Dense(cfg.hidden_size, kernel_initializer=_init(cfg), name="output")
        self.output_norm = tf_keras.layers.LayerNormalization(epsilon=1e-12, dtype=tf.float32,
                                                              name="output_layer_norm")
        self.dropout = tf_keras.layers.Dropout(cfg.dropout_rate)

    def call(self, x: tf.Tensor, attention_mask: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        attended = self.attention(x, x, attention_mask=attention_mask, training=training)
        x = tf.cast(self.attention_norm(x + self.dropout(attended, training=training)), self.compute_dtype)
        hidden = self.output_dense(self.intermediate(x))
        return tf.cast(self.output_norm(x + self.dropout(hidden, training=training)), self.compute_dtype)


def build_encoder(cfg: Any, name: str = "encoder") -> tf_keras.Model:
    """The BERT encoder as a functional model: dict of int inputs -> dict of outputs (TF Hub's layout)."""
    inputs = {n: tf_keras.Input(shape=(None,), dtype=tf.int32, name=n) for n in INPUT_NAMES}
    word_embeddings = tf_keras.layers.Embedding(cfg.vocab_size, cfg.hidden_size, embeddings_initializer=_init(cfg),
                                                name="word_embeddings")
    words = word_embeddings(inputs["input_word_ids"])
    types = tf_keras.layers.Embedding(cfg.type_vocab_size, cfg.hidden_size, embeddings_initializer=_init(cfg),
                                      name="type_embeddings")(inputs["input_type_ids"])
    positions = PositionEmbedding(cfg.max_position_embeddings, _init(cfg), name="position_embedding")(words)
    x = tf_keras.layers.Add()([words, types, positions])
    x = tf_keras.layers.LayerNormalization(epsilon=1e-12, dtype=tf.float32, name="embeddings_layer_norm")(x)
    x = tf_keras.layers.Dropout(cfg.dropout_rate)(x)
    x = tf_keras.layers.Activation("linear")(x)  # back to the compute dtype after the float32 norm
    attention_mask = AttentionMask(name="attention_mask")(x, inputs["input_mask"])
    layer_outputs = []
    for i in range(cfg.num_layers):
        x = TransformerBlock(cfg, name=f"transformer_{i}")(x, attention_mask)
        layer_outputs.append(x)
    first = tf_keras.layers.Lambda(lambda t: t[:, 0], name="cls_token")(x)
    pooled = tf_keras.layers.Dense(cfg.hidden_size, activation="tanh", kernel_initializer=_init(cfg),
                                   name="pooler_transform")(first)
    outputs = {"sequence_output": x, "pooled_output": pooled, "encoder_outputs": layer_outputs, "default": pooled}
    model = tf_keras.Model(inputs, outputs, name=name)
    model.word_embeddings = word_embeddings
    return model


class MaskedLMHead(tf_keras.layers.Layer):
    """Gathers the masked positions, transforms them and scores them against the word embeddings
    (weights tied as in BERT); logits are float32."""

    def __init__(self, embeddings: tf_keras.layers.Embedding, cfg: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.embeddings = embeddings
        self.dense = tf_keras.layers.Dense(cfg.hidden_size, activation=_activation(cfg.hidden_activation),
                                           kernel_initializer=_init(cfg), name="transform")
        self.norm = tf_keras.layers.LayerNormalization(epsilon=1e-12, dtype=tf.float32, name="transform_layer_norm")
        self.vocab_size = cfg.vocab_size

    def build(self, input_shape: Any) -> None:
        self.output_bias = self.add_weight("output_bias", shape=[self.vocab_size], initializer="zeros",
                                           dtype=tf.float32)
        super().build(input_shape)

    def call(self, sequence_output: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
        gathered = tf.gather(sequence_output, tf.cast(positions, tf.int32), batch_dims=1)
        hidden = self.norm(self.dense(gathered))
        table = tf.cast(self.embeddings.embeddings, tf.float32)
        return tf.matmul(tf.cast(hidden, tf.float32), table, transpose_b=True) + self.output_bias


class ClassificationHead(tf_keras.layers.Layer):
    """Model Garden's sentence-level head: dense/tanh over [CLS] of the sequence output, then logits.
    Its dense layer is what ``--pooler=copy_from_nsp`` copies into an exported encoder's pooler."""

    def __init__(self, cfg: Any, num_classes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dense = tf_keras.layers.Dense(cfg.hidden_size, activation="tanh", kernel_initializer=_init(cfg),
                                           name="pooler_dense")
        self.dropout = tf_keras.layers.Dropout(cfg.dropout_rate)
        self.out_proj = tf_keras.layers.Dense(num_classes, kernel_initializer=_init(cfg), dtype=tf.float32,
                                              name="logits")

    def call(self, sequence_output: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return self.out_proj(self.dropout(self.dense(sequence_output[:, 0]), training=training))


def build_pretrainer(cfg: Any, encoder: tf_keras.Model | None = None) -> tuple[tf_keras.Model, dict[str, Any]]:
    """MLM + NSP model: encoder inputs plus ``masked_lm_positions`` -> ``mlm_logits``, ``next_sentence``.
    Returns the model and its parts (``encoder``, ``mlm``, ``nsp``) for checkpoints and export."""
    enc_cfg = cfg.model.encoder
    encoder = encoder or build_encoder(enc_cfg)
    inputs = {n: tf_keras.Input(shape=(None,), dtype=tf.int32, name=n) for n in INPUT_NAMES}
    inputs["masked_lm_positions"] = tf_keras.Input(shape=(None,), dtype=tf.int32, name="masked_lm_positions")
    outputs = encoder({n: inputs[n] for n in INPUT_NAMES})
    mlm = MaskedLMHead(encoder.word_embeddings, enc_cfg, name="mlm")
    nsp = ClassificationHead(enc_cfg, cfg.model.num_classes, name="next_sentence")
    result = {"mlm_logits": mlm(outputs["sequence_output"], inputs["masked_lm_positions"]),
              "next_sentence": nsp(outputs["sequence_output"])}
    return tf_keras.Model(inputs, result, name="bert_pretrainer"), {"encoder": encoder, "mlm": mlm, "nsp": nsp}


class L2Normalize(tf_keras.layers.Layer):
    """Unit-length embeddings in float32 (cosine similarity becomes a dot product)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(dtype=tf.float32, **kwargs)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.math.l2_normalize(tf.cast(x, tf.float32), axis=-1)


class MaskedMean(tf_keras.layers.Layer):
    """The mean of ``sequence_output`` over the real tokens (``input_mask``), in float32:
    sentence-transformers' default pooling."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(dtype=tf.float32, **kwargs)

    def call(self, sequence_output: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        weights = tf.cast(mask, tf.float32)[:, :, tf.newaxis]
        total = tf.reduce_sum(tf.cast(sequence_output, tf.float32) * weights, axis=1)
        return total / tf.maximum(tf.reduce_sum(weights, axis=1), 1e-9)


def build_dual_encoder(cfg: Any, encoder: tf_keras.Model | None = None) -> tuple[tf_keras.Model, dict[str, Any]]:
    """LaBSE's shared-weight encoder: BERT inputs -> the sentence embedding, L2-normalised when
    ``model.normalize``, exposed as ``pooled_output`` and ``default`` with the encoder's other outputs.
    ``model.pooling``: ``cls``, LaBSE's pooled [CLS] (dense/tanh), or ``mean``, the masked mean of
    ``sequence_output`` (sentence-transformers' default)."""
    encoder = encoder or build_encoder(cfg.model.encoder)
    inputs = {n: tf_keras.Input(shape=(None,), dtype=tf.int32, name=n) for n in INPUT_NAMES}
    outputs = dict(encoder(inputs))
    pooled = outputs["pooled_output"]
    if cfg.model.get("pooling", "cls") == "mean":
        pooled = MaskedMean(name="mean_pooling")(outputs["sequence_output"], inputs["input_mask"])
    if cfg.model.normalize:
        pooled = L2Normalize(name="l2_normalize")(pooled)
    outputs["pooled_output"] = pooled
    outputs["default"] = pooled
    return tf_keras.Model(inputs, outputs, name="dual_encoder"), {"encoder": encoder}
