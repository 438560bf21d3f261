"""``bench/distill.py``'s pure helpers: which FLORES languages Tatoeba scores, and the best-recipe flag."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def distill():
    """The bench script as a module; bench/ goes last on sys.path (its trainer.py must not shadow the package)."""
    if str(BENCH) not in sys.path:
        sys.path.append(str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_distill", BENCH / "distill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tatoeba_languages_maps_macrolanguages_once_and_drops_english_and_the_missing(distill, tmp_path):
    flores, tatoeba = tmp_path / "flores", tmp_path / "tatoeba"
    flores.mkdir()
    tatoeba.mkdir()
    for name in ("eng_Latn", "deu_Latn", "zho_Hans", "zho_Hant", "arb_Arab", "yor_Latn"):
        (flores / f"{name}.devtest").write_text("x\n")
    (flores / "metadata_devtest.tsv").write_text("x\n")
    for code in ("deu", "cmn", "ara", "eng"):
        (tatoeba / f"tatoeba.{code}-eng.{code}").write_text("x\n")
    assert distill.tatoeba_languages(flores, tatoeba) == ["ara", "cmn", "deu"]


def test_tatoeba_languages_on_the_real_sets(distill, shared_data):
    langs = distill.tatoeba_languages(shared_data / "translation" / "flores200_devtest",
                                      shared_data / "translation" / "laser_tatoeba_v1")
    # FLORES's 33 other languages less Burmese and Yoruba (no Tatoeba set), Chinese's two scripts counted once
    assert langs == ["amh", "ara", "ben", "cmn", "deu", "ell", "fra", "heb", "hin", "hye", "ind", "ita", "jpn",
                     "kat", "khm", "kor", "nld", "pes", "pol", "por", "rus", "spa", "swh", "tam", "tel", "tha",
                     "tur", "ukr", "urd", "vie"]


def test_best_recipe_parses_stages_and_refuses_anything_else(distill):
    assert distill.parse_recipe("distill@1e-4,labse@5e-5") == [("distill", 1e-4), ("labse", 5e-5)]
    assert distill.parse_recipe("mixed@2e-4") == [("mixed", 2e-4)]
    for bad in ("", "mse@1e-4", "distill", "labse@0", "labse@x"):
        with pytest.raises(SystemExit, match="--best_recipe"):
            distill.parse_recipe(bad)
