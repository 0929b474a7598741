# kit: every target creates (or reuses) .venv and installs kit into it first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.kit-installed

.PHONY: venv demo test test-fast lint format download train submit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

venv: $(STAMP)

# The main job end to end on the offline sample: data -> a short training -> a valid submission.
demo: $(STAMP)
	KIT_DATA_DIR=data/sample $(BIN)/kit download --sample
	KIT_DATA_DIR=data/sample $(BIN)/kit train --epochs 8 --run-id demo-$$(date -u +%Y%m%d-%H%M%S)
	KIT_DATA_DIR=data/sample $(BIN)/kit validate $$(ls -t submissions/demo-*.csv | head -n 1)

# The suite in one worker process per core (at most 4; loadgroup keeps the Ray tests on one worker).
TEST_WORKERS ?= auto
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4 --dist loadgroup

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check kit tests
	$(BIN)/ruff format --check kit tests

format: $(STAMP)
	$(BIN)/ruff format kit tests
	$(BIN)/ruff check --fix kit tests

download: $(STAMP)
	$(BIN)/kit download

train: $(STAMP)
	$(BIN)/kit train

submit: $(STAMP)
	$(BIN)/kit submit

bench: $(STAMP)
	$(BIN)/python -m kit.bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
