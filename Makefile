# Two commands: `make repro` (run the pipeline) and `make test` (run the test suite).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup repro test lint lock params bench clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

repro: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro

test: $(STAMP)
	$(VENV)/bin/ruff check .
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -q

params: $(STAMP)
	$(PY) -m pipelines.config

lint: $(STAMP)
	$(VENV)/bin/ruff check .

lock:
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile requirements.in -p 3.11 -o requirements.lock

bench: $(STAMP)
	$(PY) bench/bench_features.py

clean:
	rm -rf $(VENV) data reports outputs artifacts mlflow.db
