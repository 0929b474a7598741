# kit: every target creates (or reuses) .venv and installs kit into it first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.kit-installed

.PHONY: venv demo test test-fast kaggle-venv test-kaggle-versions lint format download train submit bench clean

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

# The suite on pytest-xdist workers: one more than the cores (at most 4): the tests wait on subprocesses, servers and
# Ray often enough that a third worker on 2 cores ran the suite in 946 and 1,031 s against 1,054 s with two.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Kaggle's GPU image (where `kit train --kaggle` runs) has TensorFlow 2.20 and Keras 3.13, and the typer and rich of
# Kaggle/docker-python's installed_cpu_packages.txt: kit never needs newer. A second environment with exactly those:
# every family trains a step; the GPU configuration forced on the CPU (XLA, model.fit, 16 steps a call, EMA) trains;
# a tiny training through the CLI. (The default recipe's GPU check, mixed float16 on the CPU, stays in `make test`:
# under TensorFlow 2.20 its epochs took minutes here; see docs/benchmarks.md.)
KAGGLE_VENV ?= .venv-kaggle
KAGGLE_PINS  = 'tensorflow==2.20.*' 'keras==3.13.*' 'typer==0.24.*' 'rich==13.9.*'
KAGGLE_STAMP = $(KAGGLE_VENV)/.kit-installed
$(KAGGLE_STAMP): pyproject.toml Makefile
	test -x $(KAGGLE_VENV)/bin/python || $(PYTHON) -m venv $(KAGGLE_VENV)
	$(KAGGLE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(KAGGLE_VENV)/bin/python -m pip install --quiet $(KAGGLE_PINS) 'pytest>=8' -e .
	touch $(KAGGLE_STAMP)

# The second environment alone: .ci/run builds it while `make test` runs (a fresh build: 89 s, 75 of them CPU).
kaggle-venv: $(KAGGLE_STAMP)

test-kaggle-versions: $(KAGGLE_STAMP)
	$(KAGGLE_VENV)/bin/python -c "import keras, tensorflow as tf; print('kaggle versions: tensorflow', tf.__version__, 'keras', keras.__version__)"
	$(KAGGLE_VENV)/bin/python -m pytest -q -p no:cacheprovider \
		"tests/test_families.py::test_every_family_trains_on_each_backend[tensorflow]" \
		tests/test_families.py::test_model_fit_keeps_training_the_live_weights_under_ema \
		tests/test_train.py::test_holdout_run_and_usage_errors

lint: $(STAMP)
	$(BIN)/ruff check kit tests benchmarks
	$(BIN)/ruff format --check kit tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format kit tests benchmarks
	$(BIN)/ruff check --fix kit tests benchmarks

download: $(STAMP)
	$(BIN)/kit download

train: $(STAMP)
	$(BIN)/kit train

submit: $(STAMP)
	$(BIN)/kit submit

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) $(KAGGLE_VENV) build *.egg-info .pytest_cache .ruff_cache .ci-kaggle-venv.log
