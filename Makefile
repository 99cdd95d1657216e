# vlc: `make demo` and `make test` do all set-up on a fresh clone (they create .venv when it is missing).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help install demo demo-classify demo-caption test test-fast figures bench bench-quick lint format tensorboard clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/vlc: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,export]'
	touch $(BIN)/vlc

install: $(BIN)/vlc  ## create .venv and install vlc (editable) with its dev tools and the export extra

demo: demo-classify demo-caption  ## train the demo classifier and captioner on the embedded shapes data

demo-classify: $(BIN)/vlc  ## the demo classifier alone (about 1-2 minutes on 2 CPU cores)
	$(BIN)/vlc fit --config configs/demo/classify.yaml

demo-caption: $(BIN)/vlc  ## the demo captioner alone
	$(BIN)/vlc fit --config configs/demo/caption.yaml

test: $(BIN)/vlc  ## run the whole test suite (offline, CPU)
	$(BIN)/python -m pytest

test-fast: $(BIN)/vlc  ## the tests without the slow end-to-end ones
	$(BIN)/python -m pytest -m "not slow"

figures: $(BIN)/vlc  ## the README's pictures in docs/figures/, drawn from the runs of make demo (about 30 s)
	$(BIN)/python docs/figures/make_figures.py --root . --out docs/figures

bench: $(BIN)/vlc  ## the benchmark suite, full sizes (many minutes): benchmarks/results.json and results.md
	$(BIN)/python benchmarks/suite.py --full --json benchmarks/results.json --markdown benchmarks/results.md

bench-quick: $(BIN)/vlc  ## the benchmark suite on small sizes (about a minute on 2 idle cores)
	$(BIN)/python benchmarks/suite.py --quick

lint: $(BIN)/vlc  ## ruff lint and format check
	$(BIN)/ruff check vlc tests benchmarks docs/figures
	$(BIN)/ruff format --check vlc tests benchmarks docs/figures

format: $(BIN)/vlc  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format vlc tests benchmarks docs/figures
	$(BIN)/ruff check --fix vlc tests benchmarks docs/figures

tensorboard: $(BIN)/vlc  ## serve the dashboards of every run under logs/
	$(BIN)/tensorboard --logdir logs --host 127.0.0.1

clean:  ## remove caches (keeps .venv, logs/ and checkpoints/)
	rm -rf .pytest_cache .ruff_cache
