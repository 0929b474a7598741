"""Members into a run, runs into blends: a run's OOF and test probabilities assembled from its members, a blend
run's families weighed on their OOF rows, and the `kit predict` (a run's saved models again, optionally with
test-time augmentation, kit.predicting) and `kit blend` commands.

Both commands write their result as a derived run (its config says "kind": "predict" or "blend", with its inputs),
so `kit submit` and the leaderboard log name it and show its CV like any run.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kit import files, paths, runs, splits, submission
from kit.config import IDENTITY, TTA_VIEWS, Recipe, from_dict, member_count
from kit.config import member as member_of
from kit.data import Competition
from kit.errors import RunError, UsageError
from kit.predicting import predict


def assemble(
    folds: np.ndarray, n_folds: int, member_probs: dict[int, tuple[np.ndarray, np.ndarray | None]], labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, float | None]:
    """From each member's (validation probabilities, test probabilities): the OOF probabilities (a row's mean over
    the members that validated it, NaN where none did), the mean test probabilities (None when a member has none: a
    CV-only run), and the OOF accuracy."""
    total = np.zeros((folds.shape[-1], 10), np.float64)
    count = np.zeros(folds.shape[-1], np.int64)
    test: Any = 0.0
    for member, (val, member_test) in member_probs.items():
        rows = splits.member_rows(folds, n_folds, member)
        total[rows] += val
        count[rows] += 1
        test = None if test is None or member_test is None else test + member_test.astype(np.float64)
    oof = np.full(total.shape, np.nan, np.float32)
    seen = count > 0
    oof[seen] = total[seen] / count[seen, None]
    mean = None if test is None else (test / max(1, len(member_probs))).astype(np.float32)
    return oof, mean, oof_accuracy(oof, labels)


# ------------------------------------------------------------------------------------ a blend run's families

MIN_FIT_ROWS = 1000  # fewer OOF rows than this: the families are averaged, not weighed (too few to fit weights on)


@dataclass
class BlendWeights:
    weights: list[float]  # one per family, >= 0, summing to 1
    method: str  # "fitted" or "mean"
    reason: str  # why that one: the held-out errors of both, or too few rows


def _simplex(n_families: int) -> np.ndarray:
    """Weight vectors on a grid over the simplex (>= 0, summing to 1), steps of 1/20 (1/10 from four families on)."""
    steps = 20 if n_families <= 3 else 10
    grid = [np.array(c) / steps for c in itertools.product(range(steps + 1), repeat=n_families) if sum(c) == steps]
    return np.stack(grid)


def _errors(weights: np.ndarray, oofs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """OOF errors of each weight vector (G, F) over `oofs` (F, N, 10)."""
    return np.array([(np.tensordot(w, oofs, axes=1).argmax(1) != labels).sum() for w in weights])


def _fit_simplex(oofs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The weights on the simplex grid with the fewest OOF errors (ties: the one nearest the plain mean). Accuracy, not
    log loss: a family trained with label smoothing is less confident, and log loss would weigh it down however
    accurate it is (on the real data it gave a 5-epoch Deotte net 0.97 of the weight and 83 more errors)."""
    grid = _simplex(len(oofs))
    errors = _errors(grid, oofs, labels)
    distance = np.abs(grid - 1 / len(oofs)).sum(1)
    return grid[np.lexsort((distance, errors))[0]]


def fit_blend(oofs: np.ndarray, labels: np.ndarray, seed: int = 0) -> BlendWeights:
    """Blend weights for F families from their OOF probabilities (F, N, 10) alone: the weights with the fewest OOF
    errors (the grid includes each family alone, so they never blend below the best family on these rows). Weights
    fitted on one half of the rows are scored on the other half, and the other way round; they are used (refitted on
    every row) only when they make fewer held-out errors than the plain mean there. Fewer than MIN_FIT_ROWS rows
    are never fitted: the mean."""
    n_families = len(oofs)
    mean = np.full(n_families, 1.0 / n_families)
    if len(labels) < MIN_FIT_ROWS:
        return BlendWeights(
            mean.tolist(), "mean", f"{len(labels)} OOF rows are too few to fit weights on (< {MIN_FIT_ROWS})"
        )
    halves = np.random.default_rng(seed).permutation(len(labels)) % 2 == 0
    fitted_errors = mean_errors = 0
    for fit_rows in (halves, ~halves):
        w = _fit_simplex(oofs[:, fit_rows], labels[fit_rows])
        held = ~fit_rows
        fitted_errors += int(_errors(np.stack([w, mean]), oofs[:, held], labels[held])[0])
        mean_errors += int(_errors(mean[None], oofs[:, held], labels[held])[0])
    reason = f"held-out errors {fitted_errors} fitted vs {mean_errors} mean"
    if fitted_errors >= mean_errors:
        return BlendWeights(mean.tolist(), "mean", reason)
    return BlendWeights([float(w) for w in _fit_simplex(oofs, labels)], "fitted", reason)


def vote(probs: np.ndarray) -> np.ndarray:
    """Majority vote of the families' labels (F, N, 10) -> (N,); a tie goes to the label of the highest mean
    probability among the tied ones."""
    counts = np.zeros(probs.shape[1:], np.float64)
    np.add.at(counts, (np.arange(probs.shape[1])[None, :].repeat(len(probs), 0), probs.argmax(2)), 1.0)
    return (counts + probs.mean(0) / 2).argmax(1)  # the mean, below 1/2 a vote, only breaks ties


def error_overlap(names: list[str], oofs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """How many OOF errors the families share: each family's, every pair's common ones, those all make, and those
    any makes (fewer shared errors: more for a blend to fix)."""
    wrong = oofs.argmax(2) != labels[None, :]
    pairs = {f"{names[i]} & {names[j]}": int((wrong[i] & wrong[j]).sum())
             for i in range(len(names)) for j in range(i + 1, len(names))}  # fmt: skip
    return {"errors": {n: int(w.sum()) for n, w in zip(names, wrong, strict=True)}, "pairs": pairs,
            "all": int(wrong.all(0).sum()), "any": int(wrong.any(0).sum())}  # fmt: skip


@dataclass
class Combined:
    oof: np.ndarray  # the run's (N, 10): a row's mean over its members, or the blend of the families'
    test: np.ndarray | None  # (M, 10); None for a CV-only run
    cv: float | None
    family_oof: np.ndarray | None = None  # a blend's (F, N, 10)
    family_test: np.ndarray | None = None  # a blend's (F, M, 10)
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)  # a blend's, for the run's metrics: each family's
    # CV, the blend's weights and alternatives, the overlap


def merge(
    r: Recipe, folds: np.ndarray, member_probs: dict[int, tuple[np.ndarray, np.ndarray]], labels: np.ndarray
) -> Combined:
    """A run's members merged: assembled (`assemble`), or for a blend each family assembled and the families blended
    (`combine_families`). What training and `kit predict` both do with the members' probabilities."""
    if r.families:
        return combine_families(r, folds, member_probs, labels)
    return Combined(*assemble(folds, r.folds, member_probs, labels))


def combine_families(
    r: Recipe, folds: np.ndarray, member_probs: dict[int, tuple[np.ndarray, np.ndarray]], labels: np.ndarray
) -> Combined:
    """A blend run (recipe `r` with families): each family's members assembled (OOF, test, CV), then the families
    blended by `fit_blend`'s weights; the plain mean and the majority vote are reported beside it."""
    names, oofs, tests, family_cv = list(r.families), [], [], {}
    for name in names:
        mine = {m: p for m, p in member_probs.items() if member_of(r, m)[0] == name}
        oof, test, cv = assemble(folds, r.folds, mine, labels)
        oofs.append(oof)
        tests.append(test)
        family_cv[name] = cv
    family_oof = np.stack(oofs)
    family_test = None if any(t is None for t in tests) else np.stack(tests)
    seen = ~np.isnan(family_oof).any(axis=(0, 2))
    weights = fit_blend(family_oof[:, seen], labels[seen], r.seed)
    w = np.asarray(weights.weights)
    oof = np.tensordot(w, family_oof, axes=1).astype(np.float32)
    test = None if family_test is None else np.tensordot(w, family_test, axes=1).astype(np.float32)
    mean_cv = oof_accuracy(family_oof.mean(0), labels)
    voted = vote(family_oof[:, seen])
    summary = {
        "families": {n: {"cv_accuracy": family_cv[n]} for n in names},
        "blend": {
            "weights": dict(zip(names, weights.weights, strict=True)),
            "method": weights.method,
            "why": weights.reason,
            "cv_mean": mean_cv,
            "cv_vote": float((voted == labels[seen]).mean()) if seen.any() else None,
        },  # fmt: skip
        "overlap": error_overlap(names, family_oof[:, seen], labels[seen]),
    }
    return Combined(oof, test, oof_accuracy(oof, labels), family_oof, family_test, summary)


def oof_accuracy(oof: np.ndarray, labels: np.ndarray) -> float | None:
    """Accuracy of the OOF probabilities on the rows that have them (NaN rows have none); None when no row has,
    or when `oof` does not hold these labels' rows (a run made on other data)."""
    seen = ~np.isnan(oof).any(axis=1)
    if len(oof) != len(labels) or not seen.any():
        return None
    return float((oof[seen].argmax(1) == labels[seen]).mean())


def load_fold_models(run_dir: Path, members: list[int], recipe: Recipe | None = None) -> dict[int, Any]:
    """The saved model of each of `members`, loaded; a missing or unreadable one is named, since predicting without
    it would leave its rows unpredicted. Your own models (the `recipe`'s) load with the layers of the run's copy of
    their file."""
    import keras

    import kit.layers  # noqa: F401  (registers kit's layers, which the saved models use)
    from kit import user_models

    own = recipe is not None and bool(user_models.specs(recipe))
    # the run's own model file is code kit runs anyway: its Lambda layers may load too (safe_mode refuses them)
    options = {"custom_objects": user_models.custom_objects(recipe, run_dir), "safe_mode": False} if own else {}

    models = {}
    for k in members:
        path = runs.member_dir(run_dir, k) / runs.MODEL
        if not path.is_file():
            raise RunError(f"Run {run_dir.name} has no model for fold {k} ({path} is missing); train it again with "
                           f"`kit train --run-id {run_dir.name} --fold {k}` after deleting {path.parent}.")  # fmt: skip
        try:
            models[k] = keras.saving.load_model(path, **options)
        except Exception as exc:  # a torn or foreign file: zipfile, h5py and Keras each raise their own
            why = user_models.reason(exc) if own else type(exc).__name__  # your own layers: say what Keras said
            raise RunError(f"Run {run_dir.name}: the model of fold {k} ({path}) cannot be read ({why}); "
                           f"delete {path.parent} and train the fold again with `kit train --run-id {run_dir.name}`."
                           ) from None  # fmt: skip
    if not models:
        raise RunError(f"Run {run_dir.name} has no folds to predict with.")
    return models


@dataclass
class Prediction:
    run_dir: Path  # the derived run
    submission: Path
    changed: int  # test labels that differ from the source run's
    cv_before: float | None
    cv_after: float | None


def predict_run(source: Path, comp: Competition, tta: bool, views=None) -> Prediction:
    """Re-predict test.csv (and the OOF rows) with the run's saved fold models, optionally with TTA. Every check
    (the run's kind, its data, every fold model readable) happens before anything is written."""
    views = (views if views is not None else TTA_VIEWS) if tta else [IDENTITY]
    config = runs.load_config(source)
    if config.get("kind") != "train":
        raise RunError(f"{source.name} is a {config.get('kind')} run; re-predict the training runs it came from.")
    comp = runs.competition_of(source, comp)
    folds = runs.load_folds(source)
    recipe = from_dict(config.get("recipe", {}))
    n_folds = recipe.folds
    members = list(range(member_count(recipe))) if recipe.families else splits.members(folds, n_folds)
    models = load_fold_models(source, members, recipe)
    probs = {}
    for k, model in models.items():
        rows = splits.member_rows(folds, n_folds, k)
        probs[k] = (predict(model, comp.train_images[rows], views), predict(model, comp.test_images, views))
    merged = merge(recipe, folds, probs, comp.train_labels)  # a blend's families re-blended on their new OOF rows
    oof, test, cv_after = merged.oof, merged.test, merged.cv
    base = runs.load_metrics(source) or {}
    cv_before = base.get("cv_accuracy")
    test_shape = (len(comp.test_images), 10)
    before = (
        runs.load_probs(source / runs.TEST_PROBS, test_shape[0]).argmax(1)
        if (source / runs.TEST_PROBS).is_file()
        else None
    )
    changed = int((before != test.argmax(1)).sum()) if before is not None else 0
    target = runs.create(f"{source.name}-{'tta' if tta else 'predict'}")
    derived = {"kind": "predict", "source": source.name, "views": views, "data": config.get("data")}
    csv = _save_derived(target, derived, folds, oof, test,
                        {"cv_accuracy": cv_after, "cv_before": cv_before, "labels_changed": changed})  # fmt: skip
    return Prediction(target, csv, changed, cv_before, cv_after)


def _save_derived(target: Path, config: dict, folds: np.ndarray, oof: np.ndarray | None, test: np.ndarray,
                  metrics: dict, out: Path | None = None) -> Path:  # fmt: skip
    """Write a derived run into `target` (made by runs.create), its config last; on any failure (a full disk,
    Ctrl-C) the half-made run folder goes, so no run without its config is left behind."""
    try:
        return _write_derived(target, config, folds, oof, test, metrics, out)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def _write_derived(target: Path, config: dict, folds: np.ndarray, oof: np.ndarray | None, test: np.ndarray,
                   metrics: dict, out: Path | None) -> Path:  # fmt: skip
    files.save_array(target / runs.FOLDS, folds)
    if oof is not None:
        files.save_array(target / runs.OOF, oof)
    files.save_array(target / runs.TEST_PROBS, test)
    csv = submission.write(test.argmax(1), out or paths.submissions_dir() / f"{target.name}.csv")
    files.write_json(target / runs.METRICS, {**metrics, "submission": str(csv)})
    created = paths.utc_now()
    runs.write_config(target, **config, created_utc=created, folds_id=splits.folds_id(folds))
    return csv


def parse_weights(text: str | None) -> list[float] | None:
    """`--weights 2,1,1` as numbers (None: equal weights)."""
    try:
        return [float(w) for w in text.split(",")] if text else None
    except ValueError:
        raise UsageError(f"--weights must be comma-separated numbers, not '{text}'.") from None


@dataclass
class Blend:
    run_dir: Path
    submission: Path
    weights: list[float]
    run_cv: list[tuple[str, float | None]]  # each input and its CV, in order
    cv: float | None  # the blend's OOF CV, when the runs share their folds


def _same_rows(sources: list[Path]) -> None:
    """Runs blend when they trained on the same rows and predicted the same test set: healthy runs that did not
    (another --limit, the sample against the real data) are told apart from damaged ones, in one line."""
    seen = {}
    for run in sources:
        data = runs.load_config(run).get("data") or {}
        seen[run.name] = (data.get("source"), data.get("train_rows"), data.get("test_rows"))
    kinds = set(seen.values())
    if len(kinds) > 1 and all(None not in k for k in kinds):
        what = ", ".join(f"{name} on {rows:,} {source} rows" for name, (source, rows, _) in seen.items())
        raise UsageError(f"These runs trained on different data ({what}); blend runs trained on the same rows (the "
                         "same data and --limit), or train one again on the other's rows.")  # fmt: skip


def blend(sources: list[Path], weights: list[float] | None, labels: np.ndarray, out: Path | None = None) -> Blend:
    """Weighted mean of the runs' test (and, with shared folds, OOF) probabilities, saved as a new blend run (never
    over an existing one). Every check happens before anything is written."""
    if len(sources) < 2:
        raise UsageError("Blend needs at least two runs.")
    names = [run.name for run in sources]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"Run {', '.join(repeated)} is named more than once; blend different runs (use --weights "
                         "to weigh one run more).")  # fmt: skip
    weights = weights or [1.0] * len(sources)
    if (len(weights) != len(sources) or not all(math.isfinite(w) and w >= 0 for w in weights)
            or sum(weights) <= 0):  # fmt: skip
        raise UsageError(f"--weights needs {len(sources)} finite, non-negative numbers (one per run, not all 0), "
                         f"not {','.join(str(w) for w in weights)}.")  # fmt: skip
    if out is not None and Path(out).exists():
        raise UsageError(f"{out} already exists; choose another --output (kit does not overwrite it).")
    total = float(sum(weights))
    if not math.isfinite(total) or any(x > 0 and x / total == 0 for x in weights):
        why = "their sum overflows" if not math.isfinite(total) else "one of them would count as 0"
        raise UsageError(f"--weights {','.join(str(x) for x in weights)}: too far apart to normalise ({why}); use "
                         "weights like 2,1,1.")  # fmt: skip
    w = np.asarray(weights, np.float64) / total
    _same_rows(sources)
    tests, oofs, folds = [], [], []
    for run in sources:
        if not (run / runs.TEST_PROBS).is_file():
            cv_only = not runs.predicts_test(runs.load_config(run)) and runs.load_metrics(run) is not None
            why = f"is CV only (no test prediction); `kit predict {run.name}` adds it" if cv_only else (
                "has no test probabilities yet; finish it first")  # fmt: skip
            raise RunError(f"Run {run.name} {why}.")
        tests.append(runs.load_probs(run / runs.TEST_PROBS, None))
        oofs.append(runs.load_probs(run / runs.OOF, len(labels), unvalidated=True) if (run / runs.OOF).is_file()
                    else None)  # fmt: skip
        folds.append(runs.load_folds(run) if (run / runs.FOLDS).is_file() else None)
    if len({t.shape for t in tests}) > 1:
        raise RunError("The runs predicted different test sets; blend runs made on the same data.")
    test = np.tensordot(w, np.stack(tests), axes=1).astype(np.float32)
    run_cv = [oof_accuracy(o, labels) if o is not None else None for o in oofs]
    shared = all(f is not None and o is not None for f, o in zip(folds, oofs, strict=True)) and all(
        np.array_equal(folds[0], f) for f in folds[1:]
    )
    oof = np.tensordot(w, np.stack(oofs), axes=1).astype(np.float32) if shared else None
    cv = oof_accuracy(oof, labels) if shared else None
    target = runs.create(runs.new_id("blend"))
    data = runs.load_config(sources[0]).get("data")
    config = {"kind": "blend", "inputs": names, "weights": [float(x) for x in w], "data": data}
    csv = _save_derived(target, config, folds[0] if shared else np.full(len(labels), -1, np.int8), oof, test,
                        {"cv_accuracy": cv, "inputs_cv": dict(zip(names, run_cv, strict=True))}, out)  # fmt: skip
    return Blend(target, csv, [float(x) for x in w], list(zip(names, run_cv, strict=True)), cv)
