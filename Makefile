# Two commands: `make demo` and `make test`. Both create .venv and install into it first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install model_garden demo test test-fast lint bench clean

$(STAMP): setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[trainer,test]'
	touch $(STAMP)

install: $(STAMP)

# Model Garden (tf-models-official) for the interop tests and the reference benchmarks only: installed
# without its dependencies into a folder of its own, so it never changes the project's pins. Tests append
# it to sys.path (tests/conftest.py: the model_garden fixture); bench scripts take it as --reference.
MODEL_GARDEN := $(VENV)/model_garden
MODEL_GARDEN_PKGS := tf-models-official==2.20.0 gin-config tensorflow-datasets etils toml promise tqdm \
	immutabledict sentencepiece
$(MODEL_GARDEN)/.installed: $(STAMP)
	$(PY) -m pip install --quiet --no-deps --target $(MODEL_GARDEN) $(MODEL_GARDEN_PKGS)
	touch $@

model_garden: $(MODEL_GARDEN)/.installed

lint: install
	$(PY) -m ruff check .

test: install model_garden lint
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15 tests

# The daily lane: everything not marked slow (pytest.mark.slow: over ~10 s each, setup included);
# under 2 minutes on 2 cores. `make test` runs everything.
test-fast: install model_garden lint
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow" tests

demo: install
	PY=$(PY) scripts/demo.sh demo_out

bench: install
	$(PY) bench/stackexchange.py
	$(PY) bench/translation_pairs.py
	$(PY) bench/dedup.py
	$(PY) bench/pretrain_data.py --exclude_imports
	$(PY) bench/trainer.py

clean:
	rm -rf demo_out bench_out build *.egg-info
