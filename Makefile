# Set-up and developer commands. `doit` itself builds the demo show (see
# [tool.doit] in pyproject.toml); these targets make the environment it runs in.
#
# Every environment here installs the exact versions in requirements/lock.txt, so
# a test run means the same thing on every machine and on every day; `make
# test-latest` runs the same checks against the newest releases instead, and
# `make lock` moves the lock forward once they pass.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCK   := requirements/lock.txt
STAMP  := $(VENV)/.installed
BENCH  := $(VENV)/.installed-bench
LATEST := .venv-latest

.PHONY: demo test test-slow test-latest lint bench lock clean-demo

## demo: set up and render the demo show into build/
demo: $(STAMP)
	$(BIN)/doit -n 2

## test: set up (locked versions) and run lint, types and the test suite but its slow part
test: $(STAMP)
	$(MAKE) --no-print-directory lint PY=$(BIN)
	$(BIN)/python -m pytest -m "not slow"

## test-slow: the long tests (crash trials, the full audio matrix); CI runs them after `make test`
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

## test-latest: `make test` against the newest release of every dependency (in .venv-latest)
test-latest:
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[piper,dev,publish]'
	$(LATEST)/bin/python -m pip list --format=freeze > $(LATEST)/versions.txt
	$(MAKE) --no-print-directory lint PY=$(LATEST)/bin
	$(LATEST)/bin/python -m pytest -m "not slow"

lint:
	$(PY)/ruff check src tests benchmarks renderers
	$(PY)/mypy

## bench: the benchmarks under benchmarks/ (prints figures and ratios; longform, sections and variants take minutes)
bench: $(BENCH)
	$(BIN)/python benchmarks/noop.py
	$(BIN)/python benchmarks/cloud.py
	$(BIN)/python benchmarks/longform.py
	$(BIN)/python benchmarks/sections.py
	$(BIN)/python benchmarks/remote.py
	$(BIN)/python benchmarks/cachesize.py
	$(BIN)/python benchmarks/variants.py

## lock: resolve the newest releases again into requirements/lock.txt (then run make test)
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra piper --extra dev --extra publish --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 --no-emit-package mixdown --upgrade \
	    --custom-compile-command "make lock" -o $(LOCK)

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[piper,dev,publish]'
	touch $(STAMP)

# the [bench] extra (ffmpeg for longform's baseline): for the benchmarks only
$(BENCH): $(STAMP)
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[bench]'
	touch $(BENCH)

clean-demo:
	rm -rf build .mixdown
