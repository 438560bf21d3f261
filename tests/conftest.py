"""Shared test fixtures: where the real third-party samples live, and a small pipeline runner."""

from __future__ import annotations

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("POLYEMBED_SHARED", REPO.parent / "shared")) / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """``../shared/data`` beside the repo (read-only, present in CI). Tests use it in place."""
    if not SHARED.is_dir():
        pytest.fail(f"real test data not found at {SHARED} (set POLYEMBED_SHARED to the shared/ folder)")
    return SHARED
