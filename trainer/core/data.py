"""tf.data input pipelines over the TFRecords the polyembed pipelines write.

The parsing spec is never written here: it is built from the ``schema.pbtxt`` + ``feature_spec.json``
found next to the data and checked against what the experiment needs (``FeatureSpec.require``), so a
missing feature or another ``max_seq_length`` fails at start-up with one line naming the directory.

Reading: the file list is sharded per input pipeline (one per host under TPUStrategy, see
``tf.distribute.InputContext``), files are read in parallel with ``interleave``, records shuffled with a
seeded buffer for training, parsed in batches and prefetched. GZIP is detected per file from its
magic bytes, so a directory may mix compressed and plain shards.

Randomness (dynamic masking) is seeded per element from a fingerprint of the record, the job seed and
the epoch, never from a global RNG: a record gets the same mask in the same epoch on any host count.

Resuming: a run restarted from a checkpoint at step ``s`` reads with ``input_seed(seed, s)``, a fresh
seeded order, instead of replaying the killed run's first batches (which, with regular preemptions,
would train on the start of epoch 0 over and over). It does not continue the killed run's permutation:
TF 2.21's distributed iterators cannot be checkpointed (``tf.train.Checkpoint`` rejects them as not
trackable) and skipping ``s * batch`` records costs a read of all of them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import tensorflow as tf

import specs
from specs import run_folder
from specs.errors import ConfigError

AUTOTUNE = tf.data.AUTOTUNE
# For records whose spec predates recorded special ids, read without a vocab_file.

def expand_input_path(input_path: str, key: str) -> list[str]:
    """Files named by comma-separated paths or globs, sorted; none is a config error."""
    files: list[str] = []
    for pattern in (p.strip() for p in input_path.split(",")):
        if not pattern:
            continue
        matched = tf.io.gfile.glob(pattern)
        # neither sidecars nor hidden entries (Beam's .temp-* folders of a killed run)
        matched = [f for f in matched if os.path.basename(f) not in (specs.SCHEMA_FILE, specs.SPEC_FILE)
                   and not run_folder.is_marker(f) and not os.path.basename(f.rstrip("/")).startswith(".")]
        if not matched:
            raise ConfigError(f"{key} {pattern!r} matches no files")
        files.extend(sorted(matched))
    if not files:
        raise ConfigError(f"{key} is empty")
    return sorted(set(files))


def check_complete(data_cfg: Any, key: str, field: str = "input_path") -> None:
    """Refuses data from a run that did not finish, or from no polyembed run at all: every path of
    ``{key}.{field}`` (``input_path``'s patterns, or labse's ``transform_output_dir``) must lie in a run
    folder with its completion marker (``specs.run_folder``), unless ``{key}.allow_incomplete``."""
    if data_cfg.get("allow_incomplete", False):
        return
    for pattern in (p.strip() for p in data_cfg[field].split(",")):
        if pattern:
            try:
                run_folder.require_complete(pattern, f"{key}.{field}", override=f"{key}.allow_incomplete=true")
            except run_folder.RunFolderError as e:
                raise ConfigError(str(e)) from None


def read_feature_spec(files: list[str], key: str) -> tuple[specs.FeatureSpec, str]:
    """The spec written next to the data (every directory holding input files must have the same one)."""
    found: specs.FeatureSpec | None = None
    where = ""
    for directory in sorted({os.path.dirname(f) for f in files}):
        schema = os.path.join(directory, specs.SCHEMA_FILE)
        if not tf.io.gfile.exists(schema):
            folders = [f for f in files if os.path.dirname(f) == directory and tf.io.gfile.isdir(f)]
            if folders:  # e.g. input_path=OUT/* for OUT/train/*: the files are one level down
                raise ConfigError(f"{key}.input_path names folders, not record files ({folders[0]}): name the "
                                  f"records inside, e.g. {folders[0]}/*")
            raise specs.SpecError(f"no {specs.SCHEMA_FILE} next to the data of {key} in {directory} (records made "
                                  "elsewhere, e.g. by create_pretraining_data.py, are described with: python -m "
                                  "specs.describe --pretraining --max_seq_length N --max_predictions_per_seq P "
                                  f"{directory})")
        side = os.path.join(directory, specs.SPEC_FILE)
        with tf.io.gfile.GFile(schema) as f:
            schema_text = f.read()
        side_text = None
        if tf.io.gfile.exists(side):
            with tf.io.gfile.GFile(side) as f:
                side_text = f.read()
        spec = specs.read_spec_text(schema_text, side_text)
        if found is None:
            found, where = spec, directory
        elif sorted(spec.features, key=lambda f: f.name) != sorted(found.features, key=lambda f: f.name):
            raise specs.SpecError(f"{key}: the spec in {directory} differs from the one in {where}")
    assert found is not None
    return found, where


def open_input(data_cfg: Any, key: str) -> tuple[list[str], specs.FeatureSpec, str]:
    """What every reader of every experiment does first with ``{key}.input_path``, in this order: its
    files (listed, not read), the run that wrote them finished (``check_complete``, before anything of
    them is read; it also explains files a killed run never wrote better than "matches no files"), the
    spec beside them (``read_feature_spec``) and at least one record (``require_records``). Returns
    the files, the spec and the folder it was read from."""
    try:
        files = expand_input_path(data_cfg.input_path, f"{key}.input_path")
    except ConfigError:
        if any(run_folder.find_run(p.strip()) is not None for p in data_cfg.input_path.split(",") if p.strip()):
            check_complete(data_cfg, key)
        raise
    check_complete(data_cfg, key)
    found, where = read_feature_spec(files, key)
    require_records(files, key)
    return files, found, where


def require_records(files: list[str], key: str) -> None:
    """Stops with one line when the files hold no record: training would wait forever for a first
    batch (its dataset repeats), evaluation would score nothing. Reads up to the first record."""
    for path in files:
        try:
            for _ in tf.data.TFRecordDataset(path, compression_type=compression_of(path)).take(1):
                return
        except tf.errors.OpError as e:
            raise ConfigError(f"{key}.input_path: {path} is not a readable TFRecord file "
                              f"({str(e.message).splitlines()[0]})") from None
    shown = files[0] if len(files) == 1 else f"{files[0]} and {len(files) - 1} more"
    raise ConfigError(f"{key}.input_path holds no record ({shown})")


def compression_of(path: str) -> str:
    """"GZIP" when the file starts with gzip's magic bytes, else "" (plain TFRecord)."""
    with tf.io.gfile.GFile(path, "rb") as f:
        return "GZIP" if f.read(2) == b"\x1f\x8b" else ""


def _records(files: list[str], is_training: bool, ordered: bool, cycle_length: int,
             input_context: tf.distribute.InputContext | None, seed: int, epoch: tf.Tensor) -> tf.data.Dataset:
    """One pass over this input pipeline's share of the records (files shuffled per epoch in training)."""
    ds = tf.data.Dataset.from_tensor_slices((files, [compression_of(f) for f in files]))
    shard_records = False
    if input_context and input_context.num_input_pipelines > 1:
        if len(files) >= input_context.num_input_pipelines:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        else:
            shard_records = True
    if is_training:
        ds = ds.shuffle(len(files), seed=tf.cast(seed, tf.int64) + tf.cast(epoch, tf.int64))
    records = ds.interleave(lambda f, c: tf.data.TFRecordDataset(f, compression_type=c, buffer_size=8 << 20),
                            cycle_length=max(1, min(cycle_length, len(files))), num_parallel_calls=AUTOTUNE,
                            deterministic=ordered)
    if shard_records:
        records = records.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return records


def input_seed(seed: int, start_step: int) -> int:
    """The seed of a run's input order (shuffles, dynamic masks): the job seed from step 0, and for a
    run resumed at ``start_step`` one derived from both, so each resumption draws a different but
    reproducible order."""
    if start_step == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}:{start_step}".encode()).digest()[:7], "little")


def element_seed(record: tf.Tensor, seed: int, epoch: tf.Tensor) -> tf.Tensor:
    """A stateless-RNG seed ``[2]`` from the record's fingerprint, the job seed and the epoch."""
    fp = tf.bitcast(tf.fingerprint(record[tf.newaxis])[0], tf.int64)
    return tf.stack([tf.bitwise.bitwise_xor(fp, tf.constant(seed, tf.int64)), tf.cast(epoch, tf.int64)])


def pad_batch(features: dict[str, tf.Tensor], batch: int) -> dict[str, tf.Tensor]:
    """Every feature zero-padded along the batch axis to ``batch`` rows, with that static size (Google
    BERT's ``PaddingInputExample`` on TPU, done on batches so no padding record is ever written)."""
    def pad(x: tf.Tensor) -> tf.Tensor:
        missing = batch - tf.shape(x)[0]
        padded = tf.pad(x, tf.concat([[[0, missing]], tf.zeros([tf.rank(x) - 1, 2], tf.int32)], axis=0))
        return tf.ensure_shape(padded, [batch, *x.shape[1:]])
    return {k: pad(v) for k, v in features.items()}


def make_dataset(files: list[str], data_cfg: Any, input_context: tf.distribute.InputContext | None, seed: int,
                 parse_batch: Callable[[tf.Tensor], dict[str, tf.Tensor]] | None = None,
                 parse_one: Callable[[tf.Tensor, tf.Tensor], dict[str, tf.Tensor]] | None = None,
                 pad_final_batch: bool = False) -> tf.data.Dataset:
    """Batches of features for one input pipeline: either ``parse_batch(serialized[batch])`` after
    batching, or ``parse_one(serialized, element_seed)`` per record when it needs per-element randomness.
    ``pad_final_batch`` (evaluation): the last, partial batch is zero-padded to the full batch and every
    batch gets a static batch dimension, so a TPU compiles one shape and evaluates every record; the
    features must carry a weight (``is_real_example``) that zero padding switches off."""
    batch = (input_context.get_per_replica_batch_size(data_cfg.global_batch_size) if input_context
             else data_cfg.global_batch_size)
    ordered = not data_cfg.is_training or data_cfg.deterministic
    if data_cfg.is_training:
        ds = tf.data.Dataset.counter().flat_map(
            lambda epoch: _records(files, True, ordered, data_cfg.cycle_length, input_context, seed, epoch).map(
                lambda r: (r, epoch)))
        ds = ds.shuffle(data_cfg.shuffle_buffer_size, seed=seed)
    else:
        ds = _records(files, False, True, data_cfg.cycle_length, input_context, seed, tf.constant(0, tf.int64))
        ds = ds.map(lambda r: (r, tf.constant(0, tf.int64)))
    if parse_one is not None:
        ds = ds.map(lambda r, e: parse_one(r, element_seed(r, seed, e)), num_parallel_calls=AUTOTUNE,
                    deterministic=ordered)
        ds = ds.batch(batch, drop_remainder=data_cfg.drop_remainder)
    else:
        ds = ds.map(lambda r, e: r).batch(batch, drop_remainder=data_cfg.drop_remainder)
        ds = ds.map(parse_batch, num_parallel_calls=AUTOTUNE, deterministic=ordered)
    if pad_final_batch:
        ds = ds.map(lambda features: pad_batch(features, batch))
    options = tf.data.Options()
    options.deterministic = ordered
    return ds.with_options(options).prefetch(AUTOTUNE)
