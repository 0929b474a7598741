"""Training: the split, the model, the training loop, one fold (member) and the run's merged result.

Read top-down: `assign_folds` splits the rows, `compile_model` turns the recipe into a compiled model, `fit` is the
training loop, `train_fold` trains and saves one member (the one fold runner: kit.dispatch calls it in this
process, and kit.parallel in worker processes), `prepare_run` creates or reopens the run directory, and `collect`
merges the run's OOF / test probabilities, metrics and submission once every member is complete.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kit import config, ensemble, paths, pseudo, runs, submission
from kit.config import Recipe
from kit.data import Competition
from kit.device import Device
from kit.errors import RunError, UsageError

# on_epoch(fold, epoch, epochs, logs) is called after every epoch; logs has loss, accuracy, val_accuracy,
# val_loss and images_per_s. The CLI renders it; stages print nothing.
EpochHook = Callable[[int, int, int, dict[str, float]], None]


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


def compile_model(r: Recipe, device: Device, steps_per_epoch: int, seed: int) -> Any:
    """The recipe's model with its optimizer, schedule and loss (inside the strategy scope, if any)."""
    import keras

    from kit import models

    scope = device.strategy.scope() if device.strategy is not None else contextlib.nullcontext()
    with scope:
        model = models.build(r, seed, xla=bool(device.jit_compile))
        total = steps_per_epoch * r.epochs
        if r.schedule == "onecycle":
            warmup = max(1, int(total * r.warmup))
            # One cycle: linear warm-up from peak/25 to the peak, then cosine decay to ~0.
            lr = keras.optimizers.schedules.CosineDecay(
                r.learning_rate / 25,
                decay_steps=max(1, total - warmup),
                alpha=1e-3,
                warmup_target=r.learning_rate,
                warmup_steps=warmup,
            )
        elif r.schedule == "exponential":  # x lr_decay after every epoch, as Keras' LearningRateScheduler would
            lr = keras.optimizers.schedules.ExponentialDecay(
                r.learning_rate, decay_steps=steps_per_epoch, decay_rate=r.lr_decay, staircase=True
            )
        else:
            lr = r.learning_rate
        ema = {"use_ema": r.ema > 0, "ema_momentum": r.ema or 0.99}
        if r.weight_decay > 0:
            optimizer = keras.optimizers.AdamW(lr, weight_decay=r.weight_decay, **ema)
        else:
            optimizer = keras.optimizers.Adam(lr, **ema)
        if r.ema > 0:
            # Keras writes the average into the weights at the end of every fit() call, and a GPU epoch is one call:
            # kit keeps training the live weights and swaps the average in itself (`averaged`, `use_average`).
            optimizer.finalize_variable_values = lambda var_list: None
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=r.label_smoothing),
            metrics=["accuracy"],
            jit_compile=device.jit_compile,
            steps_per_execution=device.steps_per_execution,
        )
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
    probs = ensemble.predict(model, x, [ensemble.IDENTITY], distributed)
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


# Per-epoch validation (val_acc, history.json) on a fixed sample of this many rows; the fold's accuracy and OOF use
# all of them (all 8,400 took 19-31 s of each 44-epoch fold).
EPOCH_VALIDATION_ROWS = 2048


def train_fold(
    r: Recipe,
    comp: Competition,
    folds: np.ndarray,
    fold: int,
    run_dir: Path,
    device: Device,
    on_epoch: EpochHook | None = None,
) -> dict[str, Any]:
    """Train the model of one fold (member `fold` of the run: of a blend, a fold of one of its families) and save
    everything it makes; returns its metrics."""
    import keras

    family, r = config.member(r, fold)
    started = time.perf_counter()
    keras.utils.set_random_seed(r.seed + fold)
    train, val = runs.training_rows(folds, r.folds, fold), runs.member_rows(folds, r.folds, fold)
    x_train, y_train = comp.train_images[train], one_hot(comp.train_labels[train])
    x_val, y_val = comp.train_images[val], one_hot(comp.train_labels[val])
    extra = 0
    if r.pseudo:  # a student: the test images its teacher members labelled, their probabilities as targets
        keep, soft = pseudo.rows_for(run_dir, fold, r.pseudo_min)
        x_train, y_train = np.concatenate([x_train, comp.test_images[keep]]), np.concatenate([y_train, soft])
        extra = len(keep)

    steps = -(-len(x_train) // r.batch_size)
    model = compile_model(r, device, steps, seed=r.seed + fold)
    hook = (lambda epoch, row: on_epoch(fold, epoch, r.epochs, row)) if on_epoch is not None else None
    watch = np.random.default_rng(r.seed + fold).permutation(len(x_val))[:EPOCH_VALIDATION_ROWS]
    history = fit(model, x_train, y_train, x_val[watch], y_val[watch], r, device, r.seed + fold, hook)
    use_average(model)  # with `ema`: the averaged weights predict and are saved
    distributed = device.strategy is not None
    plain = ensemble.predict(model, x_val, [ensemble.IDENTITY], distributed)
    views = ensemble.TTA_VIEWS if r.tta else [ensemble.IDENTITY]
    val_probs = ensemble.predict(model, x_val, views, distributed) if r.tta else plain
    test_probs = ensemble.predict(model, comp.test_images, views, distributed)
    accuracy = float((val_probs.argmax(1) == comp.train_labels[val]).mean())

    fold_dir = run_dir / f"fold{fold}"
    fold_dir.mkdir(parents=True, exist_ok=True)
    model.save(fold_dir / ".model.tmp.keras")  # then renamed: a Ctrl-C while saving leaves no torn model.keras
    os.replace(fold_dir / ".model.tmp.keras", fold_dir / "model.keras")
    runs.write_json(fold_dir / "history.json", history)
    runs.save_array(fold_dir / "val_probs.npy", val_probs)
    runs.save_array(fold_dir / "test_probs.npy", test_probs)
    rates = [h["images_per_s"] for h in history[1:]] or [history[0]["images_per_s"]]  # epoch 1 traces
    metrics = {
        "fold": fold,
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
    runs.write_json(fold_dir / "metrics.json", metrics)  # last: its presence marks the fold complete
    return metrics


@dataclass
class RunResult:
    run_dir: Path
    fold_metrics: list[dict[str, Any]]  # the folds trained or found complete, in order
    trained: list[int]  # the folds this call trained (the others were already complete)
    metrics: dict[str, Any] | None  # the merged run metrics, once every fold is complete
    submission: Path | None


def _environment(device: Device) -> dict[str, Any]:
    import keras

    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    versions = {"python": platform.python_version(), "keras": keras.__version__, "numpy": np.__version__}
    if device.backend == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    return {"versions": versions, "device": device.describe(), "git_sha": sha or None}


def prepare_run(r: Recipe, comp: Competition, run_id: str, device: Device) -> tuple[Path, np.ndarray]:
    """Create runs/<id>/ (config.json, folds.npy), or reopen it after checking it is the same recipe."""
    run_dir = paths.runs_dir() / runs.check_id(run_id)
    data = {"source": comp.source, "train_rows": len(comp.train_labels), "test_rows": len(comp.test_images)}
    config_path = run_dir / "config.json"
    if config_path.is_file():
        saved = runs.load_config(run_dir)
        if saved.get("kind") == "kaggle":
            raise RunError(f"Run '{run_id}' is training on Kaggle; `kit train --kaggle --run-id {run_id}` brings it "
                           "home (or choose a new --run-id).")  # fmt: skip
        mine = {k: v for k, v in r.to_dict().items() if k != "precision"}
        theirs = {k: v for k, v in config.from_dict(saved.get("recipe", {})).to_dict().items() if k != "precision"}
        diff = [f"{k} {theirs.get(k)!r} vs {v!r}" for k, v in mine.items() if theirs.get(k) != v]
        if saved.get("data") != data:
            diff.append(f"data {saved.get('data')} vs {data}")
        if diff:
            raise RunError(
                f"Run '{run_id}' exists with a different recipe ({'; '.join(diff[:3])}); resume it with the "
                "same options, or choose a new --run-id."
            )
        return run_dir, runs.load_folds(run_dir)
    folds = assign_folds(comp.train_labels, r.folds, r.holdout, r.seed, r.repeats)
    students = pseudo.prepare(r, folds, len(comp.test_images)) if r.pseudo else {}  # checked before writing
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.save_array(run_dir / "folds.npy", folds)
    if students:
        runs.save_array(run_dir / "pseudo.npy", students["pseudo.npy"])
        runs.write_json(run_dir / "pseudo.json", students["pseudo.json"])
    runs.write_json(
        config_path,
        {
            "kind": "train",
            "run_id": run_id,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "recipe": r.to_dict(),
            "data": data,
            **_environment(device),
        },
    )
    return run_dir, folds


def collect(r: Recipe, comp: Competition, run_dir: Path, folds: np.ndarray, trained: list[int]) -> RunResult:
    """The run's complete members, merged (OOF, test probabilities, CV, submission) once all K x R are there."""
    total = config.member_count(r)
    complete = [k for k in range(total) if runs.member_done(run_dir, k)]
    fold_metrics = [runs.read_json(run_dir / f"fold{k}" / "metrics.json") for k in complete]
    if len(complete) < total:
        return RunResult(run_dir, fold_metrics, trained, None, None)
    metrics, csv = merge(r, run_dir, comp, folds, fold_metrics)
    return RunResult(run_dir, fold_metrics, trained, metrics, csv)


def _weighted(pairs: list[tuple[float, int]]) -> float:
    return float(sum(a * n for a, n in pairs) / max(1, sum(n for _, n in pairs)))


def merge(
    r: Recipe, run_dir: Path, comp: Competition, folds: np.ndarray, fold_metrics: list[dict[str, Any]]
) -> tuple[dict[str, Any], Path]:
    """Combine complete members: OOF probabilities, averaged test probabilities, CV accuracy, submission. A blend's
    families are assembled each, then blended by weights fitted on their OOF rows (kit.ensemble.fit_blend)."""
    probs = {}
    for m in fold_metrics:
        member = run_dir / f"fold{m['fold']}"
        rows = int(runs.member_rows(folds, r.folds, m["fold"]).sum())
        probs[m["fold"]] = (runs.load_array(member / "val_probs.npy", (rows, 10)),
                            runs.load_array(member / "test_probs.npy", (len(comp.test_images), 10)))  # fmt: skip
    extra: dict[str, Any] = {}
    if r.families:
        combined = ensemble.combine_families(r, folds, probs, comp.train_labels)
        oof, test, cv = combined.oof, combined.test, combined.cv
        runs.save_array(run_dir / "family_oof.npy", combined.family_oof)
        runs.save_array(run_dir / "family_test.npy", combined.family_test)
        extra = combined.summary
    else:
        oof, test, cv = ensemble.assemble(folds, r.folds, probs, comp.train_labels)
    runs.save_array(run_dir / "oof.npy", oof)
    runs.save_array(run_dir / "test_probs.npy", test)
    csv = submission.write(test.argmax(1), paths.submissions_dir() / f"{run_dir.name}.csv")
    metrics = {
        **extra,
        "cv_accuracy": cv,
        "cv_rows": int((~np.isnan(oof).any(axis=1)).sum()),
        "members": len(fold_metrics),
        "folds": [{k: m[k] for k in ("fold", "accuracy", "val_rows", "images_per_s", "seconds")} for m in fold_metrics],
        "images_per_s": float(np.mean([m["images_per_s"] for m in fold_metrics])),
        "train_seconds": float(sum(m["seconds"] for m in fold_metrics)),
        "submission": str(csv),
    }
    if folds.ndim == 1 and not r.families:  # without TTA, from each fold's plain accuracy (= cv_accuracy without TTA)
        plain = [(m.get("accuracy_plain", m["accuracy"]), m["val_rows"]) for m in fold_metrics]
        metrics["cv_accuracy_plain"] = _weighted(plain)
    runs.write_json(run_dir / "metrics.json", metrics)
    return metrics, csv
