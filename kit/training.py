"""Training: the split, the model, the training loop and one member.

Read top-down: `assign_folds` splits the rows, `compile_model` turns the recipe into a compiled model, `fit` is the
training loop, and `train_member` trains and saves one member of a run: the one member runner, which kit.dispatch
calls in this process, a worker process (`python -m kit.training`, started by kit.parallel) calls in `main`, and a Ray
task (kit.cluster) calls on its node. The run itself (creating it, its members, merging them) is kit.dispatch's.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kit import config, data, ensemble, paths, progress, pseudo, runs
from kit.config import Recipe
from kit.data import Competition
from kit.device import Device
from kit.errors import KitError, RunError, UsageError
from kit.progress import Progress, ProgressHook


def assign_folds(labels: np.ndarray, folds: int, holdout: float, seed: int, repeats: int = 1) -> np.ndarray:
    """int8 per row: the fold whose model validates it. folds=1: a stratified holdout (fold 0), the rest -1.
    With `repeats` R > 1, an (R, N) array: R stratified K-fold splits, seeded seed, seed + 1, ..."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    if repeats > 1:
        return np.stack([assign_folds(labels, folds, holdout, seed + r) for r in range(repeats)])

    assignment = np.full(len(labels), -1, np.int8)
    counts = np.bincount(labels, minlength=10)
    present = counts[counts > 0]
    if folds == 1 and (present.min() < 2 or int(np.ceil(holdout * len(labels))) < len(present)):
        digit = int(np.flatnonzero(counts == present.min())[0])
        raise UsageError(
            f"{len(labels)} training rows are too few for a stratified holdout (digit {digit} has {present.min()} "
            f"example(s); the holdout needs one of each of {len(present)} digits): use a larger --limit."
        )
    if folds == 1:
        _, val = train_test_split(np.arange(len(labels)), test_size=holdout, stratify=labels, random_state=seed)
        assignment[val] = 0
        return assignment
    if present.min() < folds:
        raise UsageError(
            f"--folds {folds} needs at least {folds} examples of every digit, and one has {present.min()}; use fewer "
            "folds or more rows (--limit)."
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, val) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        assignment[val] = k
    return assignment


def one_hot(labels: np.ndarray) -> np.ndarray:
    """float32 (N, 10) targets from digit labels."""
    return np.eye(10, dtype=np.float32)[labels]


def compile_model(r: Recipe, device: Device, steps_per_epoch: int, seed: int, folder: Path | None = None) -> Any:
    """The recipe's model with its optimizer, schedule and loss (inside the strategy scope, if any); your own model's
    file is read from the run `folder`."""
    import keras

    from kit import models

    scope = device.strategy.scope() if device.strategy is not None else contextlib.nullcontext()
    with scope:
        model = models.build(r, seed, xla=bool(device.jit_compile), folder=folder)
        total = steps_per_epoch * r.epochs
        if r.schedule == "onecycle":
            warmup = max(1, int(total * r.warmup))
            # One cycle: linear warm-up from the peak x ONECYCLE_START to the peak, then cosine decay to ONECYCLE_END.
            lr = keras.optimizers.schedules.CosineDecay(
                r.learning_rate * config.ONECYCLE_START,
                decay_steps=max(1, total - warmup),
                alpha=config.ONECYCLE_END,
                warmup_target=r.learning_rate,
                warmup_steps=warmup,
            )
        elif r.schedule == "exponential":  # x lr_decay after every epoch, as Keras' LearningRateScheduler would
            lr = keras.optimizers.schedules.ExponentialDecay(
                r.learning_rate, decay_steps=steps_per_epoch, decay_rate=r.lr_decay, staircase=True
            )
        else:
            lr = r.learning_rate
        optimizer = keras.optimizers.Adam(lr, use_ema=r.ema > 0, ema_momentum=r.ema or 0.99)
        if r.ema > 0:
            # Keras writes the average into the weights at the end of every fit() call, and a GPU epoch is one call:
            # kit keeps training the live weights and swaps the average in itself (`averaged`, `use_average`).
            optimizer.finalize_variable_values = lambda var_list: None
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=r.label_smoothing),
            # an object: by name, made in the first traced step, which is traced twice (first step 0.51-0.60x, CPU)
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
            jit_compile=device.jit_compile,
            steps_per_execution=device.steps_per_execution,
        )
        # built here, not in the first traced step, which is then traced twice (first step 0.81-0.84x, CPU)
        model.optimizer.build(model.trainable_variables)
    return model


def _epoch_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The row indices of one epoch's batches: every row once, in a fresh random order, the last batch partial."""
    order = rng.permutation(n)
    return [order[first : first + batch_size] for first in range(0, n, batch_size)]


def train_epoch(model: Any, x: np.ndarray, y: np.ndarray, batches: list[np.ndarray]) -> dict[str, float]:
    """One `train_on_batch` step per batch; the epoch's mean loss and accuracy (train_on_batch resets the metrics,
    so each step's logs are that batch's)."""
    totals = {"loss": 0.0, "accuracy": 0.0}
    for batch in batches:
        logs = model.train_on_batch(x[batch], y[batch], return_dict=True)
        for key in totals:
            totals[key] += float(logs[key]) * len(batch)
    return {key: total / len(x) for key, total in totals.items()}


@contextlib.contextmanager
def averaged(model: Any) -> Iterator[None]:
    """Inside the block the model holds its weights' moving average (recipe `ema`), then its live weights again;
    a model without one is left as it is."""
    pairs = _ema_pairs(model)
    live = [variable.numpy() for variable, _ in pairs]
    for variable, average in pairs:
        variable.assign(average)
    try:
        yield
    finally:
        for (variable, _), value in zip(pairs, live, strict=True):
            variable.assign(value)


def use_average(model: Any) -> None:
    """Put the moving average of the weights (recipe `ema`) into the model for good: what it predicts and saves."""
    for variable, average in _ema_pairs(model):
        variable.assign(average)


def _ema_pairs(model: Any) -> list[tuple[Any, Any]]:
    optimizer = getattr(model, "optimizer", None)
    if not getattr(optimizer, "use_ema", False) or not optimizer.built:
        return []
    return list(zip(model.trainable_variables, optimizer._model_variables_moving_average, strict=True))


def validate(model: Any, x: np.ndarray, y: np.ndarray, distributed: bool = False) -> dict[str, float]:
    """Loss (the compiled loss) and accuracy on (x, y), predicted by `kit.ensemble.predict`."""
    probs = ensemble.predict(model, x, [config.IDENTITY], distributed)
    return {"val_loss": float(model.loss(y, probs)), "val_accuracy": float((probs.argmax(1) == y.argmax(1)).mean())}


def fit(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    r: Recipe,
    device: Device,
    seed: int,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """The training loop: `r.epochs` passes over (x, y) in a fresh random order, then a validation pass.
    Returns one row per epoch (loss, accuracy, val_loss, val_accuracy, images_per_s, seconds).

    Two feeds, chosen by `kit.device.configure` (`device.feed`), each where the other lost: on a CPU `train_epoch`
    cuts the batches (through `model.fit`'s tf.data iterator whole epochs ran on one core at random: ~3,200 against
    ~6,000 img/s); on GPUs and under a strategy `model.fit` trains, one epoch a call, 16 steps per compiled call (its
    iterator keeps the device fed; train_on_batch waits for every step: 0.35x on an H100).
    """
    rng = np.random.default_rng(seed)
    rows: list[dict[str, float]] = []
    for epoch in range(r.epochs):
        start = time.perf_counter()
        if device.feed == "fit":
            logs = model.fit(x, y, batch_size=r.batch_size, epochs=1, shuffle=True, verbose=0).history
            row = {k: float(v[-1]) for k, v in logs.items()}
        else:
            row = train_epoch(model, x, y, _epoch_batches(len(x), r.batch_size, rng))
        row["images_per_s"] = len(x) / (time.perf_counter() - start)
        with averaged(model):
            row.update(validate(model, x_val, y_val, device.strategy is not None))
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        if on_epoch is not None:
            on_epoch(epoch + 1, row)
    return rows


def train_member(
    r: Recipe,
    comp: Competition,
    folds: np.ndarray,
    member: int,
    run_dir: Path,
    device: Device | None = None,
    *,
    threads: int | None = None,
    on_progress: ProgressHook | None = None,
    where: str = "",
) -> dict[str, Any]:
    """Train member `member` of the run (fold `member` % K; of a blend, a fold of one of its families) and save
    everything it makes into run_dir/fold<member>/ (metrics.json last: it marks the member complete); returns its
    metrics. The one member runner: kit.dispatch calls it in this process with its `device`; a worker process
    (`main`) and a Ray task (kit.cluster) call it without one, and it starts Keras on `threads` threads first."""
    if device is None:
        from kit.device import import_keras_quietly, set_threads, setup

        import_keras_quietly()
        if threads is not None:
            set_threads(threads)
        device = setup(r.precision)  # memory growth on: members may share a GPU (--jobs above the GPU count)
    import keras

    members = config.member_count(r)
    family, r = config.member(r, member)
    tell = on_progress or (lambda event: None)
    tell(Progress(member, members, 0, r.epochs, where=where))
    started = time.perf_counter()
    keras.utils.set_random_seed(r.seed + member)
    train, val = runs.training_rows(folds, r.folds, member), runs.member_rows(folds, r.folds, member)
    x_train, y_train = comp.train_images[train], one_hot(comp.train_labels[train])
    x_val, y_val = comp.train_images[val], one_hot(comp.train_labels[val])
    extra = 0
    if r.pseudo:  # a student: the test images its teacher members labelled, their probabilities as targets
        keep, soft = pseudo.rows_for(run_dir, member, r.pseudo_min)
        x_train, y_train = np.concatenate([x_train, comp.test_images[keep]]), np.concatenate([y_train, soft])
        extra = len(keep)

    steps = -(-len(x_train) // r.batch_size)
    model = compile_model(r, device, steps, seed=r.seed + member, folder=run_dir)
    hook = lambda epoch, row: tell(Progress(member, members, epoch, r.epochs, logs=row, where=where))  # noqa: E731
    watch = np.random.default_rng(r.seed + member).permutation(len(x_val))[: config.EPOCH_VALIDATION_ROWS]
    history = fit(model, x_train, y_train, x_val[watch], y_val[watch], r, device, r.seed + member, hook)
    use_average(model)  # with `ema`: the averaged weights predict and are saved
    distributed = device.strategy is not None
    plain = ensemble.predict(model, x_val, [config.IDENTITY], distributed)
    views = config.TTA_VIEWS if r.tta else [config.IDENTITY]
    val_probs = ensemble.predict(model, x_val, views, distributed) if r.tta else plain
    test_probs = ensemble.predict(model, comp.test_images, views, distributed)
    accuracy = float((val_probs.argmax(1) == comp.train_labels[val]).mean())

    fold_dir = run_dir / f"fold{member}"
    fold_dir.mkdir(parents=True, exist_ok=True)
    tmp = fold_dir / ".model.tmp.keras"  # then renamed: a Ctrl-C while saving leaves no torn model.keras
    try:
        model.save(tmp)
        os.replace(tmp, fold_dir / "model.keras")
    except BaseException:  # a full disk, Ctrl-C: no half-saved model is left behind
        tmp.unlink(missing_ok=True)
        raise
    runs.write_json(fold_dir / "history.json", history)
    runs.save_array(fold_dir / "val_probs.npy", val_probs)
    runs.save_array(fold_dir / "test_probs.npy", test_probs)
    rates = [h["images_per_s"] for h in history[1:]] or [history[0]["images_per_s"]]  # epoch 1 traces
    metrics = {
        "fold": member,
        "family": family,
        "accuracy": accuracy,  # of the saved OOF probabilities (with TTA when the recipe says so)
        "accuracy_plain": float((plain.argmax(1) == comp.train_labels[val]).mean()),
        "tta_views": len(views),
        "val_rows": int(val.sum()),
        "train_rows": int(train.sum()),
        "pseudo_rows": extra,
        "epochs": r.epochs,
        "images_per_s": float(np.median(rates)),
        "seconds": time.perf_counter() - started,
        "device": device.describe(),
    }
    runs.write_json(fold_dir / "metrics.json", metrics)  # last: its presence marks the member complete
    return metrics


def worker_command(run_id: str, member: int, threads: int, where: dict[str, Any]) -> list[str]:
    """The command line of a worker process that trains one member of an existing run (`main`)."""
    spec = {"run_id": run_id, "member": member, "threads": threads, "data": where}
    return [sys.executable, "-m", "kit.training", json.dumps(spec)]


def main(argv: list[str]) -> int:
    """A worker process: train one member of an existing run (its config.json holds the recipe, folds.npy the split)
    and print each Progress as a line on stdout (kit.progress.to_line). Errors a user can cause end as one line on
    stderr (the parent quotes it) and exit code 1."""
    _die_with_parent()
    try:
        spec = json.loads(argv[0])
        run_dir = paths.runs_dir() / runs.check_id(spec["run_id"])
        recipe = config.from_dict(runs.load_config(run_dir)["recipe"])
        comp = data.load_again(spec["data"])
        folds = runs.load_folds(run_dir)
        if folds.shape[-1] != len(comp.train_labels):
            raise RunError(f"The data in {spec['data']['path']} is not the data run {run_dir.name} was split on.")
        emit = lambda event: print(progress.to_line(event), flush=True)  # noqa: E731
        train_member(recipe, comp, folds, spec["member"], run_dir, threads=spec["threads"], on_progress=emit)
    except (KitError, OSError) as e:  # a user's problem, or a disk that is full or read-only: one line, twice
        message = str(e) if isinstance(e, KitError) else _cannot_write(e)
        print(f"error: {message}", file=sys.stderr)  # the worker's log, which a full disk may not take
        print(progress.error_line(message), flush=True)  # the pipe to `kit train`, which it always reaches
        return 1
    return 0


def _cannot_write(exc: OSError) -> str:
    where = f" {exc.filename}" if exc.filename else ""
    return f"cannot write{where} ({exc.strerror or exc}); free some space or point KIT_RUNS_DIR at a writable folder"


def _die_with_parent() -> None:
    """Linux: the kernel sends this worker SIGTERM when the `kit train` that started it dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):  # prctl is Linux's alone
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
