# Two commands: `make demo` and `make test`. Both create .venv and install into it first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install demo test lint bench clean

$(STAMP): setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[trainer,test]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(PY) -m ruff check .

test: install lint
	$(PY) -m pytest -q -n 2 --dist loadfile tests

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
