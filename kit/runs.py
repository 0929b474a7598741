"""The run directory: made in one place (`create`), its config.json's one writer (`write_config`), its members
(`member_dirs`, `member_done`), its files read back checked, listed and resolved by id.

runs/<run-id>/
  config.json         the effective recipe, plus versions, device, git sha, data source
  nets.py             your own model's file, when the recipe names one (kit.user_models)
  folds.npy           int8 per training row: the fold that validates it (-1: never validated, folds=1); with
                      --repeats R, (R, N): one row per repeated split
  fold<i>/            member i (fold i % K of repeat i // K): model.keras, history.json, val_probs.npy,
                      test_probs.npy, metrics.json (written last: its presence marks the member complete, so a
                      re-run skips it)
  oof.npy             float32 (N, 10) out-of-fold probabilities, each row the mean over the members that validated
                      it (NaN rows where none did)
  test_probs.npy      float32 (M, 10) mean of the members' test probabilities
  metrics.json        per-fold and overall CV accuracy, images/s, wall time
  fold<i>.log         a fold worker's log (kept when not empty); kaggle.log: the kernel's (kit train --kaggle)
  recipe.toml, wandb/, tensorboard/   with --track: the recipe as a file, W&B's folder, TensorBoard's event files
A blend (kit blend) is a run too: config.json says {"kind": "blend", ...}, with oof.npy and test_probs.npy.
A run training in a Kaggle kernel (kit train --kaggle) is config.json {"kind": "kaggle", ...} until it comes home.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kit import locks
from kit.errors import RunError
from kit.files import load_array, read_json, write_atomic, write_json
from kit.paths import RUN_ID_RULE, is_run_id, runs_dir, utc_now
from kit.splits import folds_id

if TYPE_CHECKING:  # kit.data imports pandas: not needed to read runs
    from kit.data import Competition


# The run folder's file names: this module's only (everyone else says runs.METRICS, runs.member_dir(run, k), ...).
CONFIG = "config.json"
METRICS = "metrics.json"  # a member's (written last: it marks the member complete) and the whole run's
FOLDS = "folds.npy"
OOF = "oof.npy"
FAMILY_OOF = "family_oof.npy"  # a blend's: each family's OOF probabilities
TEST_PROBS = "test_probs.npy"  # a member's, and the run's mean
VAL_PROBS = "val_probs.npy"
HISTORY = "history.json"
MODEL = "model.keras"
RECIPE = "recipe.toml"  # the run's recipe as a file `kit train --recipe` reads (written for a tracker)
KAGGLE_LOG = "kaggle.log"  # the log of the kernel that trained it (kit train --kaggle)
WANDB = "wandb"  # --track wandb: W&B's own folder (an offline run travels with the run)
TENSORBOARD = "tensorboard"  # --track tensorboard: a folder of event files per member


def errors_of(accuracy: float | None, rows: int | None) -> int | None:
    """The errors an accuracy over `rows` rows stands for (None when either is unknown)."""
    return None if accuracy is None or not rows else int(round((1 - accuracy) * rows))


def member_dir(run_dir: Path, member: int) -> Path:
    """Member `member`'s folder: fold<member>/."""
    return run_dir / f"fold{member}"


def member_log(run_dir: Path, member: int) -> Path:
    """A fold worker's log: fold<member>.log beside the member's folder (kit.parallel; removed when empty)."""
    return run_dir / f"fold{member}.log"


def member_number(folder: Path) -> int:
    """The member a folder from `member_dirs` holds."""
    return int(folder.name[4:])


@dataclass
class RunResult:
    run_dir: Path
    fold_metrics: list[dict[str, Any]]  # the folds trained or found complete, in order
    trained: list[int]  # the folds this call trained (the others were already complete)
    metrics: dict[str, Any] | None  # the merged run metrics, once every fold is complete
    submission: Path | None


def new_id(label: str) -> str:
    """A fresh, sortable run id: UTC time plus a label (the model name, 'blend', ...)."""
    return f"{utc_now(compact=True)}-{label}"


def check_id(run_id: str) -> str:
    if not is_run_id(run_id):
        raise RunError(f"{run_id[:120]!r} is not a valid run id; {RUN_ID_RULE}.")
    return run_id


def create(run_id: str, reuse: bool = False) -> Path:
    """The one place a run's folder is made: runs/<run_id>/ for a new run, atomically, never reusing an existing one
    ('-2', '-3', ... is appended until the name is free: two runs started in the same second get two folders); with
    `reuse`, the folder of the run the user named (`kit train --run-id ID`), made if it is not there yet."""
    root = runs_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        if reuse:
            (root / check_id(run_id)).mkdir(exist_ok=True)
            return root / run_id
        for n in range(1, 10_000):
            candidate = root / check_id(run_id if n == 1 else f"{run_id}-{n}")
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:
                continue
    except (NotADirectoryError, FileExistsError, PermissionError) as exc:
        raise RunError(
            f"Cannot create a run in {root} ({exc.strerror}); set $KIT_RUNS_DIR to a writable folder."
        ) from None
    raise RunError(f"Too many runs named {run_id}-N in {root}; choose another name.")


def competition_of(run: Path, comp: Competition) -> Competition:
    """`comp` cut to the training rows `run` used: a run trained with --limit N saw the first N rows. Data that is
    not the run's (the sample against the real data, another test set, fewer rows) is refused."""
    saved = load_config(run).get("data") or {}
    rows = load_folds(run).shape[-1] if (run / FOLDS).is_file() else len(comp.train_labels)
    other = (saved.get("source") == "sample") != comp.is_sample or saved.get("test_rows", len(comp.test_images)) != len(
        comp.test_images
    )
    if other or rows > len(comp.train_labels):
        what = f"{saved.get('source', '?')} data, {rows:,} train rows" if saved else f"{rows:,} train rows"
        raise RunError(
            f"Run {run.name} was trained on other data ({what}) than is installed in {comp.path} "
            f"({comp.source}, {len(comp.train_labels):,} rows); install that data or pass its --data-dir."
        )
    from kit.data import head  # here, not at the top: reading runs needs no pandas

    return head(comp, rows) if rows < len(comp.train_labels) else comp


def training_data(run_id: str | None, comp: Competition, limit: int | None) -> Competition:
    """What `kit train` trains on: the first `limit` rows; without --limit, the rows of the run being resumed
    (`competition_of`), so `kit train --run-id ID` finishes a run made with --limit N."""
    if limit is not None:
        from kit.data import head

        return head(comp, limit)
    run = runs_dir() / check_id(run_id) if run_id else None
    return competition_of(run, comp) if run is not None and (run / CONFIG).is_file() else comp


@contextlib.contextmanager
def fold_locks(run_dir: Path, folds: list[int]) -> Iterator[None]:
    """Hold an exclusive lock on each of `folds` while they train: a second `kit train --run-id` of the same run (or
    the same --fold) stops with one line instead of training the fold twice. Released when the process ends."""
    held = []
    try:
        for k in folds:
            path = run_dir / f".fold{k}.lock"
            lock = locks.try_exclusive(path)
            if lock is None:
                pid = locks.owner(path)
                raise RunError(
                    f"Fold {k} of run {run_dir.name} is being trained by another kit process"
                    f"{f' (pid {pid})' if pid else ''}; wait for it to finish, or choose another --run-id."
                )
            held.append(lock)
        yield
    finally:
        for k, lock in zip(folds, held, strict=False):
            if member_done(run_dir, k):  # a finished member's lock is never needed again: no litter in the run
                for path in (run_dir / f".fold{k}.lock", locks.owner_file(run_dir / f".fold{k}.lock")):
                    with contextlib.suppress(OSError):
                        path.unlink()
            lock.release()


def member_dirs(run_dir: Path, holding: str = METRICS) -> list[Path]:
    """The run's member folders (fold0, fold1, ...) that hold `holding`, in member order: fold2 before fold10."""
    found = [p for p in run_dir.glob("fold*") if p.name[4:].isdigit() and (p / holding).is_file()]
    return sorted(found, key=member_number)


def member_history(folder: Path) -> list[dict[str, float]]:
    """A member's history.json (one row per epoch; [] when it has none or it is not a list of rows)."""
    path = folder / HISTORY
    rows = read_json(path) if path.is_file() else []
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def member_done(run_dir: Path, member: int) -> bool:
    """The member's metrics.json is there and whole (written last and atomically; a damaged one means: train it)."""
    try:
        metrics = read_json(member_dir(run_dir, member) / METRICS)
    except (OSError, RunError):
        return False
    return (
        isinstance(metrics, dict)
        and metrics.get("fold") == member
        and all(isinstance(metrics.get(k), int | float) for k in ("accuracy", "val_rows", "images_per_s", "seconds"))
    )


def predicts_test(saved: dict[str, Any]) -> bool:
    """Whether a run (its config.json, `saved`) predicts the test rows: a CV-only run (`kit train --no-predict`) says
    `"predict": false`; runs made before kit had CV-only runs say nothing, and predict."""
    return saved.get("predict", True) is not False


def members_done(run_id: str, total: int) -> list[int]:
    """The members of run `run_id` (of its `total`) already complete: what a resumed run skips."""
    run_dir = runs_dir() / check_id(run_id)
    return [k for k in range(total) if member_done(run_dir, k)] if run_dir.is_dir() else []


def write_member(run_dir: Path, member: int, files: dict[str, bytes]) -> None:
    """A member trained elsewhere (a Ray task), written as a local fold writes it: every file atomically, and
    metrics.json, which marks the member complete, last."""
    fold_dir = member_dir(run_dir, member)
    for name in sorted(files, key=lambda name: name == METRICS):
        if "/" in name or name.startswith("."):
            raise RunError(f"Member {member} came back with a file kit does not write ({name!r}).")
        write_atomic(fold_dir / name, files[name])


def _created(run: Path) -> str:
    try:
        value = read_json(run / CONFIG)
    except (RunError, OSError):
        return ""  # a damaged run sorts first, so it is never taken for the latest
    return str(value.get("created_utc", "")) if isinstance(value, dict) else ""


def load_probs(path: Path, rows: int | None, unvalidated: bool = False) -> np.ndarray:
    """Class probabilities kit saved ((rows, 10), `rows` None: any), checked as it promises: finite, non-negative,
    each row summing to 1. `unvalidated`: an OOF array, whose rows no member validated are NaN (but not all of them).
    Anything else is a RunError naming the file: nothing is written from it."""
    probs = load_array(path, (rows, 10))
    values = probs.astype(np.float64)
    missing = np.isnan(values).all(axis=1) if unvalidated else np.zeros(len(values), bool)
    kept = values[~missing]
    problem = ""
    if unvalidated and missing.all() and len(values):
        problem = "no row holds a probability"
    elif not np.isfinite(kept).all():
        problem = f"{int((~np.isfinite(kept)).any(axis=1).sum())} row(s) hold NaN or infinity"
    elif (kept < 0).any():
        problem = "negative probabilities"
    elif len(kept) and not np.allclose(kept.sum(axis=1), 1.0, atol=1e-2):
        problem = "rows that do not sum to 1"
    if problem:
        raise RunError(f"{path} is damaged ({problem}); delete the run (or that fold) and train it again.")
    return probs


def load_folds(run: Path) -> np.ndarray:
    """A run's folds.npy, checked against its config.json: one int entry per training row it used, one row per
    repeat, and the split the run was made with (its `folds_id`, where config.json records it)."""
    config = load_config(run)
    rows = (config.get("data") or {}).get("train_rows")
    rows = rows if isinstance(rows, int) else None
    repeats = (config.get("recipe") or {}).get("repeats")
    if repeats is None:  # a derived run (predict, blend) keeps its source's folds: one split or R of them
        folds = load_array(run / FOLDS)
        shape = (rows,) if folds.ndim == 1 else (None, rows)
    else:
        shape = (rows,) if repeats == 1 else (repeats, rows)
    folds = load_array(run / FOLDS, shape)
    if folds.dtype.kind not in "iu":
        raise RunError(f"{run / 'folds.npy'} is damaged (an array of {folds.dtype}); delete the run, train it again.")
    saved = config.get("folds_id")
    if saved is not None and saved != folds_id(folds):
        raise RunError(f"{run / 'folds.npy'} is not the split run {run.name} was made with (it was replaced); "
                       "its CV would be measured on the wrong rows: delete the run and train it again.")  # fmt: skip
    return folds


def all_runs() -> list[Path]:
    """Every run directory with a config.json, oldest first (by creation time in config.json)."""
    root = runs_dir()
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if (p / CONFIG).is_file()]
    return sorted(found, key=lambda p: (_created(p), p.name))


def resolve(ref: str | None = None) -> Path:
    """A run directory from an id, a path, or (None) the latest run."""
    if ref is None:
        runs = all_runs()
        if not runs:
            raise RunError(f"No runs in {runs_dir()}; train one with `kit train`.")
        return runs[-1]
    for candidate in (Path(ref), runs_dir() / ref):
        if (candidate / CONFIG).is_file():
            return candidate
    raise RunError(f"No run '{ref}' in {runs_dir()}; `kit runs` lists the runs.")


def recipe_file(run: str) -> str:
    """`kit runs --recipe RUN`: the run's recipe as the TOML file `kit train --recipe` reads."""
    from kit import config

    run_dir = resolve(run)
    saved = load_config(run_dir).get("recipe")
    if not saved:
        raise RunError(f"Run {run_dir.name} has no recipe of its own (a {load_config(run_dir).get('kind')} run); "
                       "ask for the recipe of a run it came from.")  # fmt: skip
    r = config.from_dict(saved)

    def kept(model: str) -> str:  # your own model: the run's copy of its file, by a path that works from any folder
        if not config.is_user_model(model):
            return model
        file, _, function = model.rpartition(":")
        return f"{(run_dir / Path(file).name).resolve()}:{function}"

    if r.families:
        r = config.blend({n: dataclasses.replace(f, model=kept(f.model)) for n, f in r.families.items()})
    else:
        r = dataclasses.replace(r, model=kept(r.model))
    data = load_config(run_dir).get("data") or {}
    again = "`kit train --recipe FILE` trains it again"
    if isinstance(data.get("limit"), int):  # a run option, not the recipe's: said where the file is read
        again += f" with --limit {data['limit']} (it trained on the first {data['limit']:,} rows; a file holds none)"
    if data.get("source") == "sample":
        again += " on the offline sample data (kit download --sample)"
    return config.to_toml(r, f"the recipe of run {run_dir.name}: {again}")


def saved_recipe(run_id: str | None, kaggle: bool = False) -> dict | None:
    """The recipe in runs/<run_id>/config.json, when that run exists (resuming it); else None. A run still training
    in a Kaggle kernel is resumed only by `kit train --kaggle` (`kaggle`): here it is a RunError (`not_on_kaggle`)."""
    path = runs_dir() / check_id(run_id) / CONFIG if run_id else None
    if path is None or not path.is_file():
        return None
    saved = load_config(path.parent)
    if not kaggle:
        not_on_kaggle(run_id, saved)
    return saved.get("recipe", {})


def not_on_kaggle(run_id: str, saved: dict) -> None:
    """A run whose config.json says it is training on Kaggle cannot be trained here."""
    if saved.get("kind") == "kaggle":
        raise RunError(f"Run '{run_id}' is training on Kaggle; `kit train --kaggle --run-id {run_id}` brings it home "
                       "(or choose a new --run-id).")  # fmt: skip


KINDS = ("train", "predict", "blend", "kaggle")  # train: trained here; kaggle: training in a kernel, until it is home


def write_config(run_dir: Path, kind: str, **fields: Any) -> None:
    """The one writer of a run's config.json: what the run is (`kind`, its id) and `fields` (recipe, data, folds_id,
    where it trained, ...), whole or not at all."""
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r}")
    write_json(run_dir / CONFIG, {"kind": kind, "run_id": run_dir.name, **fields})


def tag(run_id: str, **labels: Any) -> None:
    """Add `labels` to a run's tags in its config.json (kit tune: a pruned trial's `pruned_at` epoch)."""
    run_dir = runs_dir() / check_id(run_id)
    saved = load_config(run_dir)
    kind = saved.pop("kind")
    write_config(run_dir, kind, **{**saved, "tags": {**(saved.get("tags") or {}), **labels}})


def load_config(run: Path) -> dict:
    """A run's config.json, checked: a JSON object whose recipe (a training run's, a Kaggle run's) is one kit can
    train and whose data counts its rows in whole numbers; anything else is a RunError naming it."""
    path = run / CONFIG
    value = _object(path, read_json(path))
    data = value.get("data") or {}
    wrong = [k for k in ("train_rows", "test_rows") if k in data and not _number(data[k], whole=True)]
    if wrong:
        raise RunError(f"{path} is damaged (its data's {wrong[0]} is {str(data[wrong[0]])[:20]!r}, not a number of "
                       "rows); delete the run and train it again.")  # fmt: skip
    if "recipe" in value:
        from kit import config  # the recipe's one home

        wrong = config.mistyped(value["recipe"])
        if wrong:
            raise RunError(f"{path} is damaged ({wrong}); delete the run and train it again.")
    return value


METRIC_TEXT = ("submission", "device", "family", "method", "why", "source", "teacher", "node")  # the rest: numbers


def load_metrics(run: Path) -> dict | None:
    """A run's metrics.json (None before it has one), checked: every value a number (or null) but METRIC_TEXT's."""
    path = run / METRICS
    return checked_metrics(path, _object(path, read_json(path))) if path.is_file() else None


def checked_metrics(path: Path, value: Any) -> Any:
    """`value` (what metrics.json at `path` holds) when its values are numbers where kit writes numbers."""

    def bad(v: Any, key: str) -> str | None:
        if key in METRIC_TEXT or v is None or _number(v):
            return None
        if isinstance(v, dict):
            return next((b for k, x in v.items() if (b := bad(x, str(k)))), None)
        if isinstance(v, list):
            return next((b for x in v if (b := bad(x, key))), None)
        return f"{key} is {str(v)[:20]!r}, not a number"

    problem = bad(value, "")
    if problem:
        raise RunError(f"{path} is damaged ({problem}); delete the run (or that fold) and train it again.")
    return value


def blend_summary(metrics: dict[str, Any], path: Path | None = None) -> dict[str, Any] | None:
    """A blend run's families, weights and shared errors from its metrics.json ({"families", "blend", "overlap"}),
    the one reading of them: None where there are none (no families, or an empty table as some kit wrote); a summary
    that names families without their weights or errors is a RunError naming the file."""
    families = metrics.get("families")
    if not families:
        return None
    blend, overlap = metrics.get("blend"), metrics.get("overlap")
    names = list(families) if isinstance(families, dict) else []
    whole = (isinstance(blend, dict) and isinstance(overlap, dict) and isinstance(blend.get("weights"), dict)
             and isinstance(overlap.get("errors"), dict) and isinstance(overlap.get("pairs"), dict))  # fmt: skip
    whole = whole and all(isinstance(families[n], dict) and n in blend["weights"] and n in overlap["errors"]
                          for n in names)  # fmt: skip
    if not names or not whole:
        where = path or "the run's metrics.json"
        raise RunError(f"{where} is damaged (its blend's families, weights or errors are incomplete); delete the run "
                       "and train it again.")  # fmt: skip
    return {"families": families, "blend": blend, "overlap": overlap}


def _number(value: Any, whole: bool = False) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and (not whole or isinstance(value, int))


def _object(path: Path, value: Any) -> dict:
    if not isinstance(value, dict) or not all(isinstance(value.get(k, {}), dict) for k in ("recipe", "data")):
        raise RunError(f"{path} is damaged (it holds {type(value).__name__} data, not what kit wrote); delete the run "
                       "and train it again.")  # fmt: skip
    return value
