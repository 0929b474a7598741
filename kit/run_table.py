"""`kit runs`: one row per run in runs/, newest first: what it is, how far it got, what its recipe changed, its CV
and its best public score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kit import config as recipes
from kit.errors import RunError
from kit.files import read_json
from kit.runs import all_runs, load_config, load_metrics, member_done


def summaries(best_scores: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per run in runs/, newest first, for `kit runs`: id, kind (train, predict, blend), model, members
    ("5 x 3", or "3/5 folds" while incomplete), epochs, CV, training time, created, and its best public score
    (from `best_scores`, the leaderboard log's). A damaged run is listed as such, not skipped."""
    rows = []
    for run in reversed(all_runs()):
        score = (best_scores or {}).get(run.name, "")
        row: dict[str, Any] = {"id": run.name, "kind": "damaged", "model": "", "members": "", "epochs": "",
                               "changes": "", "cv": None, "train_seconds": None, "wall_seconds": None, "rows": None,
                               "limited": False, "data": "", "created": "", "public_score": score,
                               "trial": ""}  # fmt: skip
        try:
            rows.append(_summary(run, dict(row)))
        except (RunError, ValueError, TypeError, AttributeError):  # a damaged run is listed as one, and only it
            rows.append(row)
    return rows


def _summary(run: Path, row: dict[str, Any]) -> dict[str, Any]:
    config = load_config(run)
    metrics = load_metrics(run) or {}
    recipe = config.get("recipe") or {}
    data = config.get("data") or {}
    row.update(kind=config.get("kind", "?"), created=config.get("created_utc", ""), cv=metrics.get("cv_accuracy"),
               train_seconds=metrics.get("train_seconds"), wall_seconds=metrics.get("wall_seconds"),
               epochs=recipe.get("epochs", ""), changes=" ".join(recipes.changes(recipe)) if recipe else "",
               rows=data.get("train_rows"), limited="limit" in data, data=data.get("source", ""))  # fmt: skip
    if row["kind"] == "train":
        folds, repeats = int(recipe.get("folds", 1)), int(recipe.get("repeats", 1))
        families = recipe.get("families") or {}
        total = folds * repeats * max(1, len(families))
        if not 0 < total <= 100_000:
            raise ValueError(f"{total} members")
        done = sum(member_done(run, m) for m in range(total))
        row["model"] = " + ".join(families) if families else recipe.get("model", "?")
        if recipe.get("pseudo"):
            book = read_json(run / "pseudo.json") if (run / "pseudo.json").is_file() else {}
            extra = f" (+{book['test_rows']:,} test rows)" if isinstance(book, dict) and "test_rows" in book else ""
            row["model"] += f", students of {recipe['pseudo']}{extra}"
        row["members"] = f"{folds} x {repeats}" if repeats > 1 else str(folds)
        if families:
            row["epochs"] = "/".join(str(f.get("epochs", "?")) for f in families.values())
        if done < total:
            row["members"] = f"{done}/{total} folds"
        if isinstance(config.get("kaggle"), dict):
            row["model"] += f", trained on Kaggle ({', '.join(config['kaggle'].get('gpus') or []) or 'its GPU'})"
        tags = config.get("tags") or {}
        if isinstance(tags, dict) and tags.get("study"):  # a kit tune trial, or its confirmation
            row["trial"] = f"{tags['study']} #{tags.get('trial', '?')}" + (" confirm" if tags.get("confirm") else "")
            row["model"] += f", study {row['trial']}" + (f" (pruned at {tags['pruned']})" if tags.get("pruned") else "")
    elif row["kind"] == "kaggle":  # training in a Kaggle kernel (kit.kaggle_kernel)
        kernel = config.get("kaggle") or {}
        row["model"] = " + ".join(recipe.get("families") or {}) or recipe.get("model", "?")
        row["members"] = f"on Kaggle: {kernel.get('kernel', '?')} v{kernel.get('version', '?')}"
        if kernel.get("status") in ("error", "cancel_requested", "cancel_acknowledged"):
            row["members"] += f" ({kernel['status'].replace('_', ' ')})"
    elif row["kind"] == "predict":
        row["model"] = f"{config.get('source', '?')} ({len(config.get('views') or [])} views)"
    elif row["kind"] == "blend":
        row["model"] = " + ".join(config.get("inputs") or [])
    return row


COLUMNS = ("id", "kind", "model", "members", "epochs", "changes", "cv", "train_seconds", "wall_seconds", "rows",
           "limited", "data", "created", "public_score", "trial")  # fmt: skip
SORTS = {  # `kit runs --sort`: the key of each order, best or newest first
    "created": lambda row: row["created"],
    "cv": lambda row: -1.0 if row["cv"] is None else row["cv"],
    "lb": lambda row: float(row["public_score"] or -1),
    "wall": lambda row: row["wall_seconds"] or row["train_seconds"] or 0.0,
}


def ordered(rows: list[dict[str, Any]], sort: str = "created", last: int | None = None) -> list[dict[str, Any]]:
    """The rows by `sort` (SORTS: the highest first; created: newest first), the first `last` of them."""
    ranked = sorted(rows, key=SORTS[sort], reverse=True)
    return ranked[:last] if last is not None else ranked


def to_csv(rows: list[dict[str, Any]]) -> str:
    """`kit runs --csv`: the rows as CSV, a header first."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
