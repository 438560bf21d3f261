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
from specs import vocabulary as sv
from specs.errors import ConfigError
from trainer.tokenization import BertTokenization, SpecialTokens, load_vocab

AUTOTUNE = tf.data.AUTOTUNE
# For records whose spec predates recorded special ids, read without a vocab_file.
DEFAULT_SPECIAL = SpecialTokens(vocab_size=0, padding_id=sv.BERT_SPECIAL_IDS["pad"],
                                start_of_sequence_id=sv.BERT_SPECIAL_IDS["cls"],
                                end_of_segment_id=sv.BERT_SPECIAL_IDS["sep"], mask_id=sv.BERT_SPECIAL_IDS["mask"],
                                unknown_id=sv.BERT_SPECIAL_IDS["unk"])
PAIR_TOKEN_FEATURES = tuple(f"{side}_{name}" for side in ("src", "tgt")
                            for name in ("input_word_ids", "input_mask", "input_type_ids"))


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


# --- bert/pretraining -------------------------------------------------------------------------

def pretraining_expected_spec(data_cfg: Any, found: specs.FeatureSpec) -> tuple[specs.FeatureSpec, bool]:
    """What the experiment needs of the records, and whether they were written unmasked."""
    dynamic = "masked_lm_positions" not in found.names
    expected = specs.pretraining_spec(data_cfg.seq_length, data_cfg.max_predictions_per_seq,
                                      v2_names=data_cfg.use_v2_feature_names, dynamic_masking=dynamic)
    if not data_cfg.use_next_sentence_label:
        expected = specs.FeatureSpec(expected.name, tuple(f for f in expected.features
                                                          if f.name != "next_sentence_labels"), expected.params)
    return expected, dynamic


def dynamic_mask(ids: tf.Tensor, seed: tf.Tensor, special: SpecialTokens, vocab_size: int,
                 max_predictions: int, masked_lm_prob: float, random_token_prob: float,
                 keep_token_prob: float) -> dict[str, tf.Tensor]:
    """BERT's masking of one unmasked sequence, drawn from ``seed``: ``round(n * prob)`` (at least 1,
    at most ``max_predictions``) of the tokens other than [CLS]/[SEP]/[PAD] are predicted; of those,
    ``random_token_prob`` become a random id, ``keep_token_prob`` stay, the rest become [MASK]."""
    ids = tf.cast(ids, tf.int32)
    length = tf.shape(ids)[0]
    real = tf.not_equal(ids, special.padding_id)
    candidate = real & tf.not_equal(ids, special.start_of_sequence_id) & tf.not_equal(ids, special.end_of_segment_id)
    n_real = tf.reduce_sum(tf.cast(real, tf.float32))
    n_pred = tf.cast(tf.round(n_real * masked_lm_prob), tf.int32)
    n_pred = tf.minimum(tf.minimum(tf.maximum(n_pred, 1), max_predictions),
                        tf.reduce_sum(tf.cast(candidate, tf.int32)))
    seeds = tf.random.experimental.stateless_split(seed, 3)
    scores = tf.random.stateless_uniform([length], seeds[0])
    scores = tf.where(candidate, scores, -1.0)
    chosen = tf.sort(tf.math.top_k(scores, k=tf.minimum(max_predictions, length)).indices[:n_pred])
    labels = tf.gather(ids, chosen)
    action = tf.random.stateless_uniform([n_pred], seeds[1])
    random_ids = tf.random.stateless_uniform([n_pred], seeds[2], minval=0, maxval=vocab_size, dtype=tf.int32)
    replacement = tf.where(action < random_token_prob, random_ids,
                           tf.where(action < random_token_prob + keep_token_prob, labels, special.mask_id))
    masked = tf.tensor_scatter_nd_update(ids, chosen[:, tf.newaxis], replacement)
    pad = max_predictions - n_pred
    return {
        "input_word_ids": masked,
        "masked_lm_positions": tf.pad(chosen, [[0, pad]]),
        "masked_lm_ids": tf.pad(labels, [[0, pad]]),
        "masked_lm_weights": tf.pad(tf.ones([n_pred], tf.float32), [[0, pad]]),
    }


def pretraining_dataset(task_cfg: Any, data_cfg: Any, key: str, input_context: tf.distribute.InputContext | None,
                        seed: int, check_only: bool = False) -> tf.data.Dataset | None:
    """MLM(+NSP) batches with the model's feature names (int32; weights float32)."""
    files, found, where = open_input(data_cfg, key)
    expected, dynamic = pretraining_expected_spec(data_cfg, found)
    found.require(expected, where=where)
    special = special_tokens(data_cfg, found, where, key)
    if check_only:
        return None
    ids_name = "input_word_ids" if data_cfg.use_v2_feature_names else "input_ids"
    segs_name = "input_type_ids" if data_cfg.use_v2_feature_names else "segment_ids"
    parsing = {k: v for k, v in expected.tf_parsing_spec().items()}
    vocab_size = task_cfg.model.encoder.vocab_size

    def rename(parsed: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        out = {"input_word_ids": tf.cast(parsed[ids_name], tf.int32),
               "input_type_ids": tf.cast(parsed[segs_name], tf.int32)}
        for name in ("input_mask", "masked_lm_positions", "masked_lm_ids", "next_sentence_labels"):
            if name in parsed:
                out[name] = tf.cast(parsed[name], tf.int32)
        if "masked_lm_weights" in parsed:
            out["masked_lm_weights"] = parsed["masked_lm_weights"]
        return out

    if not dynamic:
        return make_dataset(files, data_cfg, input_context, seed,
                            parse_batch=lambda s: rename(tf.io.parse_example(s, parsing)))
    m = task_cfg.masking

    def parse_and_mask(serialized: tf.Tensor, element: tf.Tensor) -> dict[str, tf.Tensor]:
        out = rename(tf.io.parse_single_example(serialized, parsing))
        out["input_mask"] = tf.cast(tf.not_equal(out["input_word_ids"], special.padding_id), tf.int32)
        out.update(dynamic_mask(out["input_word_ids"], element, special, vocab_size, data_cfg.max_predictions_per_seq,
                                m.masked_lm_prob, m.random_token_prob, m.keep_token_prob))
        return out

    return make_dataset(files, data_cfg, input_context, seed, parse_one=parse_and_mask)


def special_tokens(data_cfg: Any, found: specs.FeatureSpec, where: str, key: str) -> SpecialTokens:
    """The special ids of the records: from ``vocab_file`` (checked against the data's recorded
    vocabulary and casing), else as the data's spec records them."""
    vocab = data_vocabulary(data_cfg, found.params, where, key)
    if vocab is not None:
        return SpecialTokens.from_vocabulary(vocab)
    ids = found.params.get("special_ids")
    if not ids:
        return DEFAULT_SPECIAL
    return SpecialTokens(int(found.params.get("vocab_size", 0)), ids["pad"], ids["cls"], ids["sep"], ids["mask"],
                         ids.get("unk", DEFAULT_SPECIAL.unknown_id))


def data_vocabulary(data_cfg: Any, params: dict[str, Any], where: str, key: str, vocab_file: str = "",
                    lower_case: bool | None = None) -> sv.Vocabulary | None:
    """The vocabulary (with its casing) a run uses with the data at ``where``: ``vocab_file`` and
    ``lower_case`` if given, else the data config's, the casing defaulting to what the data's spec
    records (cased when it records none). A setting that contradicts the data stops with one line;
    ``None`` when no vocabulary file is named."""
    explicit = lower_case if lower_case is not None else data_cfg.lower_case
    lower = sv.resolve_lower_case(explicit, params, f"{key}.lower_case", where)
    path = vocab_file or data_cfg.vocab_file
    if not path:
        return None
    if not tf.io.gfile.exists(path):
        raise ConfigError(f"{key}.vocab_file {path} does not exist")
    vocab = load_vocab(path, bool(lower))
    vocab.check(params, where)
    return vocab


def run_vocabulary(data_cfg: Any, key: str, vocab_file: str = "", lower_case: bool | None = None
                   ) -> sv.Vocabulary | None:
    """``data_vocabulary`` for the data ``data_cfg.input_path`` names (its spec, when it has one)."""
    params, where = {}, key
    try:
        files = expand_input_path(data_cfg.input_path, f"{key}.input_path") if data_cfg.input_path else []
    except ConfigError:  # data not reachable from here (an export elsewhere): the settings alone decide
        files = []
    if files:
        check_complete(data_cfg, key)
        found, where = read_feature_spec(files, key)
        params = dict(found.params)
    return data_vocabulary(data_cfg, params, where, key, vocab_file, lower_case)


# --- labse/train ------------------------------------------------------------------------------

def find_vocab(data_cfg: Any, files: list[str], key: str) -> str:
    """The vocabulary to tokenise with: ``vocab_file``, else a ``vocab.txt`` next to the data."""
    if data_cfg.vocab_file:
        if not tf.io.gfile.exists(data_cfg.vocab_file):
            raise ConfigError(f"{key}.vocab_file {data_cfg.vocab_file} does not exist")
        return data_cfg.vocab_file
    beside = os.path.join(os.path.dirname(files[0]), "vocab.txt")
    if tf.io.gfile.exists(beside):
        return beside
    raise ConfigError(f"{key}.vocab_file is not set and there is no vocab.txt next to the data in "
                      f"{os.path.dirname(files[0])}")


def pairs_dataset(task_cfg: Any, data_cfg: Any, key: str, input_context: tf.distribute.InputContext | None,
                  seed: int, check_only: bool = False) -> tf.data.Dataset | None:
    """Dual-encoder batches: ``src_*`` and ``tgt_*`` BERT inputs of ``seq_length`` (int32), tokenised
    here from ``src_raw``/``tgt_raw`` or read as materialised by a tensorflow-transform run."""
    files, found, where = open_input(data_cfg, key)
    L = data_cfg.seq_length
    if data_cfg.transform_output_dir:
        check_complete(data_cfg, key, "transform_output_dir")  # the transform graph of a finished run only
        import tensorflow_transform as tft

        tft_output = tft.TFTransformOutput(data_cfg.transform_output_dir)
        parsing = tft_output.transformed_feature_spec()
        for name in PAIR_TOKEN_FEATURES:
            if name not in parsing:
                raise specs.SpecError(f"feature {name!r} is missing in the transformed schema of "
                                      f"{data_cfg.transform_output_dir} (found: {', '.join(sorted(parsing))})")
            shape = list(getattr(parsing[name], "shape", []) or [])
            if shape != [L]:
                raise specs.SpecError(f"feature {name!r} in {data_cfg.transform_output_dir} has shape {shape}, "
                                      f"expected [{L}] ({key}.seq_length)")
        data_vocabulary(data_cfg, dict(found.params), where, key)
        if check_only:
            return None
        parsing = {n: parsing[n] for n in PAIR_TOKEN_FEATURES}
        return make_dataset(files, data_cfg, input_context, seed, parse_batch=lambda s: {
            k: tf.cast(v, tf.int32) for k, v in tf.io.parse_example(s, parsing).items()})
    expected = specs.text_pair_spec(2)
    found.require(expected, where=where)
    vocab = data_vocabulary(data_cfg, dict(found.params), where, key, find_vocab(data_cfg, files, key))
    tokenizer = BertTokenization(vocab, implementation=data_cfg.tokenizer)
    if vocab.size > task_cfg.model.encoder.vocab_size:
        raise ConfigError(f"{key}.vocab_file {vocab.path} has {vocab.size} tokens, more than "
                          f"task.model.encoder.vocab_size {task_cfg.model.encoder.vocab_size}")
    if check_only:
        return None
    parsing = expected.tf_parsing_spec()

    def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(serialized, parsing)
        out = {}
        for side in ("src", "tgt"):
            for k, v in tokenizer(parsed[f"{side}_raw"], seq_length=L).items():
                out[f"{side}_{k}"] = tf.ensure_shape(v, [None, L])
        return out

    return make_dataset(files, data_cfg, input_context, seed, parse_batch=parse)
