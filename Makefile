# Two commands do all set-up on a fresh machine with Python 3.11+:
#   make run    the embedded default (broker, worker, ingress, demo recording)
#   make test   the whole suite (unit + integration against the real broker and S3 server)
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

.PHONY: run test lint bench bench-all clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed-run

# make run PORT=9090 (the HTTP port, = `mediaexport up --port 9090`); any other options of
# `mediaexport up` go in ARGS, e.g. make run ARGS='--data-dir /srv/var --loglevel info'.
run: $(VENV)/.installed-run
	$(VENV)/bin/mediaexport up $(if $(PORT),--port $(PORT)) $(ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: $(VENV)/.installed-test lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-test
	$(PY) bench/cut_vs_ffmpeg.py $(ARGS)

# Every issue-8 benchmark and one table of their goals: make bench-all [ARGS=--quick]
bench-all: $(VENV)/.installed-test
	$(PY) bench/all.py $(ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
