"""Cross-replica negatives: a 2-replica MirroredStrategy on logical CPU devices gives the same loss and
gradients as one replica over the whole batch (and, without the gather, it does not). The same
fresh process checks that no trainer entry point imports apache_beam.

Logical devices must be configured before TensorFlow initialises, so the check runs in a fresh
process; it prints its measurements as JSON for the assertions here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from trainer import plan
    from trainer.core import config
    from trainer.experiments import labse

    def run(cross_replica):
        override = ("task.model.encoder.vocab_size=50,task.model.encoder.hidden_size=16,"
                    "task.model.encoder.num_layers=1,task.model.encoder.num_attention_heads=2,"
                    "task.model.encoder.intermediate_size=32,task.model.encoder.max_position_embeddings=64,"
                    "task.model.encoder.dropout_rate=0.0,task.model.encoder.attention_dropout_rate=0.0,"
                    f"task.cross_replica_negatives={str(cross_replica).lower()},task.logit_scale=10.0")
        cfg = plan.load_config("labse/train", [], override)
        task = labse.Task(cfg)
        rng = np.random.default_rng(0)
        B, L = 8, 6
        feats = {}
        for side in ("src", "tgt"):
            ids = rng.integers(5, 50, size=(B, L)).astype(np.int32)
            ids[:, 0] = 2
            feats[f"{side}_input_word_ids"] = ids
            feats[f"{side}_input_mask"] = np.ones((B, L), np.int32)
            feats[f"{side}_input_type_ids"] = np.zeros((B, L), np.int32)
        tf.keras.utils.set_random_seed(1)
        single = tf.distribute.OneDeviceStrategy("/cpu:0")
        with single.scope():
            model, _ = task.build_model()
        weights = [w.numpy() for w in model.weights]

        def grads_of(strategy, model):
            def replica(f):
                with tf.GradientTape() as tape:
                    loss, _ = task.step(model, f, False, B)
                grads = tape.gradient(loss, model.trainable_variables)
                return loss, [tf.convert_to_tensor(g) for g in grads]
            if strategy.num_replicas_in_sync == 1:
                loss, g = strategy.run(replica, args=({k: tf.constant(v) for k, v in feats.items()},))
                return float(loss), [x.numpy() for x in g]
            def shard(ctx):
                i, n = ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync
                return {k: tf.constant(v[i * B // n:(i + 1) * B // n]) for k, v in feats.items()}
            values = strategy.experimental_distribute_values_from_function(shard)
            loss, g = tf.function(lambda v: strategy.run(replica, args=(v,)))(values)
            total = strategy.reduce("SUM", loss, axis=None)
            return float(total), [strategy.reduce("SUM", x, axis=None).numpy() for x in g]

        loss1, g1 = grads_of(single, model)
        mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with mirrored.scope():
            model2, _ = task.build_model()
        model2.set_weights(weights)
        loss2, g2 = grads_of(mirrored, model2)
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(g1, g2))
        scale = max(float(np.max(np.abs(a))) for a in g1)
        return {"replicas": mirrored.num_replicas_in_sync, "single_loss": loss1, "mirrored_loss": loss2,
                "max_grad_diff": diff, "max_grad": scale}

    result = {"gathered": run(True), "local_only": run(False)}
    import trainer.evaluate, trainer.export_tfhub, trainer.task  # noqa: E401,F401  (every entry point)
    result["beam_imported"] = "apache_beam" in sys.modules
    print(json.dumps(result))
""")


@pytest.mark.slow  # a fresh TensorFlow process: about 20 s
def test_two_replicas_with_gathered_negatives_equal_one_replica_over_the_global_batch():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=root,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    gathered, local = result["gathered"], result["local_only"]
    assert gathered["replicas"] == 2
    assert np.isclose(gathered["mirrored_loss"], gathered["single_loss"], rtol=1e-5)
    assert gathered["max_grad_diff"] <= 1e-5 * max(1.0, gathered["max_grad"])
    # Without the gather each replica only sees its own half as negatives: a different objective.
    assert not np.isclose(local["mirrored_loss"], local["single_loss"], rtol=1e-3)
    # The same fresh process imported every trainer entry point: the trainer never imports apache_beam.
    assert result["beam_imported"] is False
