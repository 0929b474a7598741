"""Training: the compiled model, the training loop and one member.

Read top-down: `compile_model` turns the recipe into a compiled model, `fit` is the training loop, and `train_member`
trains and saves one member of a run on the rows its split gives it (kit.splits): the one member runner, which
kit.dispatch calls in this process, a worker process (`python -m kit.parallel`) calls in kit.parallel's `main`, and a
Ray task (kit.cluster) calls on its node. The run itself (creating it, its members, merging them) is kit.dispatch's.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kit import config, files, predicting, pseudo, runs, splits
from kit.config import Recipe
from kit.data import Competition
from kit.device import Device
from kit.errors import UsageError
from kit.progress import Progress, ProgressHook


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
    """Loss (the compiled loss) and accuracy on (x, y), predicted by `kit.predicting.predict`."""
    probs = predicting.predict(model, x, [config.IDENTITY], distributed)
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
        if not all(np.isfinite(row[k]) for k in ("loss", "val_loss")):
            raise Diverged(epoch + 1, f"loss {row['loss']:.4g}, validation loss {row['val_loss']:.4g}")
        rows.append(row)
        if on_epoch is not None:
            on_epoch(epoch + 1, row)
    return rows


def measure_pace(r: Recipe, device: Device, images: np.ndarray, labels: np.ndarray, rows: int) -> float:
    """Images a second this device trains the recipe's model on, one member alone: a warm-up batch (tracing), then
    `rows` images timed (`kit train --time` on a device with no run like it to recall)."""
    rng = np.random.default_rng(r.seed)
    take = rng.choice(len(images), size=min(len(images), rows + r.batch_size), replace=len(images) < rows)
    x, y = images[take], one_hot(labels[take])
    model = compile_model(r, device, steps_per_epoch=max(1, len(x) // r.batch_size), seed=r.seed)
    if device.feed == "fit":  # as `fit` trains there
        model.fit(x[: r.batch_size], y[: r.batch_size], batch_size=r.batch_size, epochs=1, verbose=0)
        start = time.perf_counter()
        model.fit(x[r.batch_size :], y[r.batch_size :], batch_size=r.batch_size, epochs=1, verbose=0)
        return (len(x) - r.batch_size) / max(1e-9, time.perf_counter() - start)
    batches = _epoch_batches(len(x), r.batch_size, rng)
    train_epoch(model, x, y, batches[:1])
    start = time.perf_counter()
    train_epoch(model, x, y, batches[1:])
    return sum(len(b) for b in batches[1:]) / max(1e-9, time.perf_counter() - start)


class Diverged(UsageError):
    """A member's loss (or its predictions) became NaN or infinite: the recipe trains no further, nothing is saved."""

    def __init__(self, epoch: int, what: str) -> None:
        super().__init__(f"Training diverged at epoch {epoch} ({what}); lower the learning rate (--lr) or check your "
                         "model, then train again: the member was not saved.")  # fmt: skip


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
    predict_test: bool = True,
) -> dict[str, Any]:
    """Train member `member` of the run (fold `member` % K; of a blend, a fold of one of its families) and save
    everything it makes into its folder (kit.runs.member_dir; its metrics last: they mark it complete); returns its
    metrics. The one member runner: kit.dispatch calls it in this process with its `device`; a worker process
    (`main`) and a Ray task (kit.cluster) call it without one, and it starts Keras on `threads` threads first.
    Without `predict_test` (a CV-only run) it predicts its validation rows only: no test probabilities."""
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
    started, started_at = time.perf_counter(), time.time()
    keras.utils.set_random_seed(r.seed + member)
    train, val = splits.training_rows(folds, r.folds, member), splits.member_rows(folds, r.folds, member)
    x_train, y_train = comp.train_images[train], one_hot(comp.train_labels[train])
    x_val, y_val = comp.train_images[val], one_hot(comp.train_labels[val])
    extra = 0
    if r.pseudo:  # a student: the test images its teacher members labelled, their probabilities as targets
        keep, soft = pseudo.rows_for(run_dir, member, r.pseudo_min)
        x_train, y_train = np.concatenate([x_train, comp.test_images[keep]]), np.concatenate([y_train, soft])
        extra = len(keep)
    to_predict = predicting.rows_to_predict(r.tta, len(x_val), len(comp.test_images), predict_test)
    work = dict(where=where, images=len(x_train), to_predict=to_predict)
    tell(Progress(member, members, 0, r.epochs, **work))

    steps = -(-len(x_train) // r.batch_size)
    model = compile_model(r, device, steps, seed=r.seed + member, folder=run_dir)
    hook = lambda epoch, row: tell(Progress(member, members, epoch, r.epochs, logs=row, **work))  # noqa: E731
    watch = np.random.default_rng(r.seed + member).permutation(len(x_val))[: config.EPOCH_VALIDATION_ROWS]
    history = fit(model, x_train, y_train, x_val[watch], y_val[watch], r, device, r.seed + member, hook)
    use_average(model)  # with `ema`: the averaged weights predict and are saved
    distributed = device.strategy is not None
    done = [0]

    def predicted(rows: int) -> None:
        done[0] += rows
        tell(Progress(member, members, r.epochs, r.epochs, logs=history[-1], predicted=done[0], **work))

    plain = predicting.predict(model, x_val, [config.IDENTITY], distributed, predicted)
    views = config.TTA_VIEWS if r.tta else [config.IDENTITY]
    val_probs = predicting.predict(model, x_val, views, distributed, predicted) if r.tta else plain
    test_probs = predicting.predict(model, comp.test_images, views, distributed, predicted) if predict_test else None
    for probs in (val_probs, test_probs if test_probs is not None else val_probs):
        if not np.isfinite(probs).all():
            raise Diverged(r.epochs, "its predictions hold NaN or infinity")
    accuracy = float((val_probs.argmax(1) == comp.train_labels[val]).mean())

    fold_dir = runs.member_dir(run_dir, member)
    fold_dir.mkdir(parents=True, exist_ok=True)
    tmp = fold_dir / ".model.tmp.keras"  # then renamed: a Ctrl-C while saving leaves no torn model
    try:
        model.save(tmp)
        os.replace(tmp, fold_dir / runs.MODEL)
    except BaseException:  # a full disk, Ctrl-C: no half-saved model is left behind
        tmp.unlink(missing_ok=True)
        raise
    files.write_json(fold_dir / runs.HISTORY, history)
    files.save_array(fold_dir / runs.VAL_PROBS, val_probs)
    if test_probs is not None:
        files.save_array(fold_dir / runs.TEST_PROBS, test_probs)
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
        "started_at": started_at,  # epoch seconds: the run's wall time is the union of its members' spans
        "ended_at": time.time(),
        "device": device.describe(),
    }
    files.write_json(fold_dir / runs.METRICS, metrics)  # last: its presence marks the member complete
    return metrics
