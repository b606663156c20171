# Set-up and developer commands. `doit` itself builds the demo show (see
# [tool.doit] in pyproject.toml); these targets make the environment it runs in.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH  := $(VENV)/.installed-bench

.PHONY: demo test bench clean-demo

## demo: set up and render the demo show into build/
demo: $(STAMP)
	$(BIN)/doit -n 2

## test: set up and run the test suite (with lint and type checks)
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks renderers
	$(BIN)/mypy
	$(BIN)/python -m pytest

## bench: the benchmarks under benchmarks/ (prints figures and ratios; longform takes minutes)
bench: $(BENCH)
	$(BIN)/python benchmarks/noop.py
	$(BIN)/python benchmarks/cloud.py
	$(BIN)/python benchmarks/longform.py

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[piper,dev]'
	touch $(STAMP)

# the [bench] extra (ffmpeg for longform's baseline): for the benchmarks only
$(BENCH): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $(BENCH)

clean-demo:
	rm -rf build .mixdown
