# kit: every target creates (or reuses) .venv and installs kit into it first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.kit-installed

.PHONY: venv demo docs test test-fast kaggle-venv test-kaggle-image floors-venv test-floors lint format download train submit bench clean

# kit alone (what `make demo`, download, train and submit need), then the test tools, Ray, Optuna and the trackers on
# top (`make test`).
TRACKERS = wandb,mlflow,tensorboard,trackio
KIT_STAMP = $(VENV)/.kit-only
$(KIT_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(KIT_STAMP)

$(STAMP): $(KIT_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,ray,tune,$(TRACKERS)]'
	touch $(STAMP)

venv: $(STAMP)

# The main job end to end on the offline sample: data -> a short training -> a valid submission; then the one line
# that puts kit on this shell's PATH.
demo: $(KIT_STAMP)
	KIT_DATA_DIR=data/sample $(BIN)/kit download --sample
	KIT_DATA_DIR=data/sample $(BIN)/kit train --epochs 8 --run-id demo-$$(date -u +%Y%m%d-%H%M%S)
	KIT_DATA_DIR=data/sample $(BIN)/kit validate $$(ls -t submissions/demo-*.csv | head -n 1)
	@echo "kit is installed in $(VENV). Next, in this shell (and in each new one): source $(VENV)/bin/activate"

# The suite on pytest-xdist workers: one more than the cores (at most 4): the tests wait on subprocesses, servers and
# Ray often enough that a third worker on 2 cores ran the suite in 946 and 1,031 s against 1,054 s with two.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Kaggle's GPU image (Colab's runtime plus Kaggle's extras: where a Kaggle or Colab notebook runs kit, and where
# `kit train --kaggle` trains) as it comes, from Kaggle/docker-python's package lists: TensorFlow 2.20, Keras 3.13,
# the kaggle client 2.0.2 with kagglesdk 0.1.23, typer 0.24, rich 13.9, on this machine's Python. kit is not installed
# in it: the README's notebook cells install it (tests/test_notebook_cells.py runs them as written, and checks that
# the install changes none of the image's packages); every family trains a step, the GPU configuration forced on the
# CPU trains, and a tiny training runs through the CLI. (The default recipe's GPU check, mixed float16 on the CPU,
# stays in `make test`: under TensorFlow 2.20 its epochs took minutes here; see docs/benchmarks.md.)
KAGGLE_VENV ?= .venv-kaggle
KAGGLE_IMAGE = 'tensorflow==2.20.*' 'keras==3.13.*' 'kaggle==2.0.2' 'kagglesdk==0.1.23' 'typer==0.24.*' \
	'rich==13.9.*' 'pandas==2.3.3' 'scikit-learn==1.6.1' 'matplotlib==3.10.0' 'filelock==3.25.2' 'requests==2.32.4' \
	'click==8.3.2' 'six' 'pytest==8.4.2' 'optuna==5.0.0' 'wandb==0.31.0' 'tensorboard==2.20.*'
KAGGLE_STAMP = $(KAGGLE_VENV)/.image-installed
$(KAGGLE_STAMP): Makefile
	test -x $(KAGGLE_VENV)/bin/python || $(PYTHON) -m venv $(KAGGLE_VENV)
	$(KAGGLE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(KAGGLE_VENV)/bin/python -m pip install --quiet $(KAGGLE_IMAGE)
	touch $(KAGGLE_STAMP)

# The second environment alone: .ci/run builds it while `make test` runs.
kaggle-venv: $(KAGGLE_STAMP)

test-kaggle-image: $(KAGGLE_STAMP)
	KIT_TEST_NOTEBOOK_CELLS=1 $(KAGGLE_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/test_notebook_cells.py
	$(KAGGLE_VENV)/bin/python -c "from importlib.metadata import version as v; print('Kaggle image:', ', '.join(p + ' ' + v(p) for p in ('tensorflow', 'keras', 'kaggle', 'kagglesdk', 'typer', 'rich', 'optuna')))"
	$(KAGGLE_VENV)/bin/python -m pytest -q -p no:cacheprovider \
		"tests/test_families.py::test_every_family_trains_on_each_backend[tensorflow]" \
		tests/test_families.py::test_model_fit_keeps_training_the_live_weights_under_ema \
		tests/test_train.py::test_holdout_run_and_usage_errors tests/test_submit.py $(TUNE_TESTS) \
		$(call TRACK_TESTS,wandb tensorboard)

# kit tune on another environment's Optuna and filelock: the space, pruning, the study's bookkeeping (dead workers
# included) and a tiny real study through the CLI; the two-process and SIGKILL test runs in `make test` only.
TUNE_TESTS = $(addprefix tests/test_tune.py::,test_space_forms_take_the_fields_own_kinds \
	test_median_pruning_stops_a_clearly_bad_trial_at_the_first_epoch_the_rule_allows \
	test_wilcoxon_pruning_compares_finished_folds_with_the_best_trial \
	test_a_study_runs_its_trials_as_runs_and_a_ctrl_c_trial_resumes_its_run \
	test_a_trial_left_running_by_a_dead_process_is_failed_and_its_run_resumed \
	test_kit_tune_trials_are_runs_that_list_report_show_and_train_again)

# --track on another environment's trackers: each named tracker's run in this process, and W&B's resumed run.
TRACK_TESTS = $(foreach t,$(1),"tests/test_tracking.py::test_a_tracked_run_logs_every_members_epochs_its_cv_and_its_files[$(t)-in-process]") \
	"tests/test_tracking.py::test_a_resumed_run_continues_its_tracker_run[wandb]"

# Every dependency at its declared floor (uv's --resolution lowest-direct: each of kit's own requirements at its lower
# bound), so each bound in pyproject.toml is a version kit is tested on: the mission end to end (tests/test_mission.py),
# the Kaggle paths, and the locks.
FLOORS_VENV ?= .venv-floors
FLOORS_STAMP = $(FLOORS_VENV)/.kit-installed
$(FLOORS_STAMP): pyproject.toml Makefile
	test -x $(FLOORS_VENV)/bin/python || $(PYTHON) -m venv $(FLOORS_VENV)
	$(FLOORS_VENV)/bin/python -m pip install --quiet uv
	$(FLOORS_VENV)/bin/uv pip install --quiet --python $(FLOORS_VENV)/bin/python --resolution lowest-direct -e '.[tune,$(TRACKERS)]'
	$(FLOORS_VENV)/bin/uv pip install --quiet --python $(FLOORS_VENV)/bin/python 'pytest>=8' 'pytest-xdist>=3'
	touch $(FLOORS_STAMP)

floors-venv: $(FLOORS_STAMP)

test-floors: $(FLOORS_STAMP)
	$(FLOORS_VENV)/bin/python -c "from importlib.metadata import version as v; print('floors:', ', '.join(p + ' ' + v(p) for p in ('tensorflow', 'keras', 'numpy', 'pandas', 'scikit-learn', 'kaggle', 'kagglesdk', 'typer', 'rich', 'filelock', 'optuna', 'wandb', 'mlflow-skinny', 'tensorboard', 'trackio')))"
	$(FLOORS_VENV)/bin/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) tests/test_mission.py \
		tests/test_submit.py tests/test_download.py tests/test_portable.py $(TUNE_TESTS) \
		$(call TRACK_TESTS,wandb mlflow tensorboard trackio)

# docs/commands.md: every command's --help as Markdown, generated by typer (tests/test_docs.py fails when it drifts)
docs: $(STAMP)
	$(BIN)/python -m typer kit.cli utils docs --name kit --title "kit commands" --output docs/commands.md

lint: $(STAMP)
	$(BIN)/ruff check kit tests benchmarks
	$(BIN)/ruff format --check kit tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format kit tests benchmarks
	$(BIN)/ruff check --fix kit tests benchmarks

download: $(KIT_STAMP)
	$(BIN)/kit download

train: $(KIT_STAMP)
	$(BIN)/kit train

submit: $(KIT_STAMP)
	$(BIN)/kit submit

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) $(KAGGLE_VENV) $(FLOORS_VENV) build *.egg-info .pytest_cache .ruff_cache .ci-*.log
