"""Look at a run: confusion matrix, the worst misclassified digits, learning curves (PNG, matplotlib Agg),
per-class precision/recall with the most confused pairs (scikit-learn), all from the run directory, and one
self-contained HTML page with all of it (`page`); and the leaderboard log's CV against its public scores
(`cv_vs_lb_png`)."""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from kit import config as recipes
from kit import files, ledger, runs
from kit.data import Competition
from kit.errors import RunError


@dataclass
class Report:
    folder: Path
    pictures: list[Path]
    rows: int  # OOF (or holdout) rows the figures are computed on
    accuracy: float
    per_class: list[tuple[int, float, float, int]]  # digit, precision, recall, support
    confused: list[tuple[int, int, int]]  # (true, predicted, count), most frequent first
    blend: dict | None = None  # a blend run's families, weights and error overlap (its metrics), else None
    page: Path | None = None  # report/index.html


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def oof_predictions(run_dir: Path, comp: Competition) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row indices, true labels, OOF probabilities) of the rows some fold validated."""
    if not (run_dir / runs.OOF).is_file():
        raise RunError(f"Run {run_dir.name} has no OOF predictions yet; finish its folds first.")
    oof = runs.load_probs(run_dir / runs.OOF, len(comp.train_labels), unvalidated=True)  # comp: cut to the run's rows
    rows = np.flatnonzero(~np.isnan(oof[:, 0]))
    return rows, comp.train_labels[rows].astype(int), oof[rows]


def confusion_png(y_true: np.ndarray, y_pred: np.ndarray, path: Path, title: str) -> np.ndarray:
    from sklearn.metrics import confusion_matrix

    plt = _pyplot()
    counts = confusion_matrix(y_true, y_pred, labels=range(10))
    normalised = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(15, 6.5))
    for ax, matrix, name, fmt in ((axes[0], counts, "counts", "d"), (axes[1], normalised, "row-normalised", ".3f")):
        ax.imshow(matrix, cmap="Blues")
        for i in range(10):
            for j in range(10):
                value = matrix[i, j]
                ax.text(j, i, format(value, fmt), ha="center", va="center", fontsize=7 if fmt != "d" else 8,
                        color="white" if value > matrix.max() / 2 else "black")  # fmt: skip
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
        ax.set_xlabel("Predicted label")
        ax.set_ylabel("True label")
        ax.set_title(f"{title}: {name}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return counts


def misclassified_png(images: np.ndarray, y_true, probs: np.ndarray, path: Path, limit: int = 36) -> int:
    """The wrong predictions the model was most sure of, each titled 'true -> predicted (confidence)': one picture
    of the digits side by side (an axes per digit: 1.0-1.2 s to draw 36 here; the one mosaic 0.3 s)."""
    plt = _pyplot()
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != y_true)
    worst = wrong[np.argsort(-probs[wrong, pred[wrong]])][:limit]
    cols, cell, top = 6, 34, 10  # a 28-pixel digit in a 34-pixel cell, 10 pixels above it for its title
    rows = max(1, -(-len(worst) // cols))
    mosaic = np.zeros((rows * (cell + top), cols * cell), np.float32)
    fig, ax = plt.subplots(figsize=(cols * 1.8, rows * 2.0 + 0.4))
    for n, i in enumerate(worst):
        y0, x0 = (n // cols) * (cell + top) + top + 3, (n % cols) * cell + 3
        mosaic[y0 : y0 + 28, x0 : x0 + 28] = images[i, :, :, 0]
        ax.text(x0 + 14, y0 - 2, f"{y_true[i]} -> {pred[i]} ({probs[i, pred[i]]:.2f})", ha="center", va="bottom",
                fontsize=9)  # fmt: skip
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    ax.axis("off")
    if len(worst) == 0:
        ax.text(0.5, 0.5, "no misclassified digits", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle("Most confident mistakes: true -> predicted (confidence)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return len(worst)


def learning_curves_png(run_dir: Path, path: Path) -> bool:
    """Loss and accuracy per epoch, train (solid) and validation (dashed), one colour per fold."""
    histories = [member / runs.HISTORY for member in runs.member_dirs(run_dir, runs.HISTORY)]
    if not histories:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for n, file in enumerate(histories):
        rows = files.read_json(file)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise RunError(f"{file} is damaged (it is not the per-epoch rows kit wrote); delete that fold and train it "
                           "again.")  # fmt: skip
        runs.checked_metrics(file, rows)  # numbers where kit wrote numbers
        epochs = range(1, len(rows) + 1)
        colour = f"C{n % 10}"
        for ax, key in ((axes[0], "loss"), (axes[1], "accuracy")):
            ax.plot(epochs, [r.get(key) for r in rows], color=colour, label=f"{file.parent.name} train")
            ax.plot(epochs, [r.get(f"val_{key}") for r in rows], color=colour, linestyle="--",
                    label=f"{file.parent.name} validation")  # fmt: skip
    for ax, key in ((axes[0], "loss"), (axes[1], "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.set_title(key)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_report(run_dir: Path, comp: Competition) -> Report:
    from sklearn.metrics import precision_recall_fscore_support

    rows, y_true, probs = oof_predictions(run_dir, comp)
    metrics = runs.load_metrics(run_dir) or {}
    blend = runs.blend_summary(metrics, run_dir / runs.METRICS)  # checked before anything is drawn
    y_pred = probs.argmax(1)
    folder = run_dir / "report"
    folder.mkdir(exist_ok=True)
    if (run_dir / runs.FOLDS).is_file():  # a derived run (predict, blend) has its source's split and no recipe
        split = runs.load_folds(run_dir)
        title = "OOF" if split.ndim > 1 or split.max() > 0 else "holdout"
    else:
        title = "OOF" if (runs.load_config(run_dir).get("recipe") or {}).get("folds", 1) > 1 else "holdout"
    pictures = [folder / "confusion_matrix.png", folder / "misclassified.png"]
    counts = confusion_png(y_true, y_pred, pictures[0], f"{run_dir.name} {title}")
    misclassified_png(comp.train_images[rows], y_true, probs, pictures[1])
    if learning_curves_png(run_dir, folder / "learning_curves.png"):
        pictures.append(folder / "learning_curves.png")
    precision, recall, _, support = precision_recall_fscore_support(y_true, y_pred, labels=range(10), zero_division=0)
    per_class = [(d, float(precision[d]), float(recall[d]), int(support[d])) for d in range(10)]
    off = [(i, j, int(counts[i, j])) for i in range(10) for j in range(10) if i != j and counts[i, j] > 0]
    confused = sorted(off, key=lambda t: -t[2])[:5]
    found = Report(folder, pictures, len(rows), float((y_pred == y_true).mean()), per_class, confused, blend)
    logged = ledger.rows()
    points, _ = ledger.cv_and_lb(logged)
    if any(row["run_id"] == run_dir.name for row, _, _ in points):  # the run has scores: where they sit among all
        found.pictures.append(cv_vs_lb_png(logged, folder / "cv_vs_lb.png", highlight=run_dir.name).path)
    found.page = page(run_dir, found, title, metrics, [r for r in logged if r["run_id"] == run_dir.name])
    return found


# The public leaderboard scores 25 % of the 28,000 test images (7,000; https://marcelojo.org/marcelojoeng/
# kaggle-mnist-competition/): at accuracy p its own noise is sqrt(p (1 - p) / 7,000), 0.00075 at 0.996.
PUBLIC_ROWS = 7_000
STRAY_SD = 3  # a submission whose LB is this many of those from the line strays from it


@dataclass
class CvLb:
    path: Path
    points: list[tuple[dict, float, float]]  # (ledger row, CV, public LB), plotted
    others: list[tuple[dict, str]]  # (ledger row, why it is not plotted)
    slope: float | None = None  # the line LB = slope * CV + intercept (least squares without the strays;
    # slope 1 below 3 CVs)
    intercept: float | None = None
    correlation: float | None = None  # Pearson's r of CV and LB (from 3 points with different CVs)
    strays: list[dict] = field(default_factory=list)  # the rows whose LB is off the line by more than its noise
    method: str = ""  # how the line was fitted: "least squares" or "CV + mean gap"


class Line(NamedTuple):
    slope: float | None
    intercept: float | None
    correlation: float | None
    strays: list[dict]
    method: str  # "least squares" or "CV + mean gap"


def fit_cv_lb(points: list[tuple[dict, float, float]]) -> Line:
    """The CV-LB line, its correlation and the rows that stray from it (`CvLb`). The line is fitted again without
    the strays until they stay the same (one bad submission would otherwise tilt the line and mark the good ones)."""
    if not points:
        return Line(None, None, None, [], "")
    cv = np.array([c for _, c, _ in points])
    lb = np.array([score for _, _, score in points])
    keep = np.ones(len(points), bool)
    for _ in range(len(points)):
        if keep.sum() >= 3 and np.ptp(cv[keep]) > 0:
            slope, intercept = (float(v) for v in np.polyfit(cv[keep], lb[keep], 1))
            method = "least squares"
        else:  # too few to fit a slope: LB = CV + the mean gap
            slope, intercept, method = 1.0, float(np.mean((lb - cv)[keep])), "CV + mean gap"
        line = np.clip(slope * cv + intercept, 1e-4, 1 - 1e-4)
        stray = np.abs(lb - line) > STRAY_SD * np.sqrt(line * (1 - line) / PUBLIC_ROWS)
        if np.array_equal(~stray, keep) or (~stray).sum() < 2:
            break
        keep = ~stray
    fitted = len(points) >= 3 and np.ptp(cv) > 0 and np.ptp(lb) > 0
    correlation = float(np.corrcoef(cv, lb)[0, 1]) if fitted else None
    return Line(
        slope, intercept, correlation, [row for (row, _, _), off in zip(points, stray, strict=True) if off], method
    )


def cv_vs_lb_png(found: list[dict[str, str]], path: Path, highlight: str | None = None) -> CvLb:
    """Each scored submission of the leaderboard log `found` as CV (x) against public LB (y), named by its run, with
    the fitted line and LB = CV; strays ringed in red; the runs `highlight` names drawn larger."""
    points, others = ledger.cv_and_lb(found)
    slope, intercept, correlation, strays, method = fit_cv_lb(points)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 6))
    if points:
        cv = np.array([c for _, c, _ in points])
        lb = np.array([score for _, _, score in points])
        mine = np.array([row["run_id"] == highlight for row, _, _ in points])
        ax.scatter(cv[~mine], lb[~mine], color="C0", zorder=3, label="submission")
        if mine.any():
            ax.scatter(cv[mine], lb[mine], color="C1", s=90, zorder=4, label=highlight)
        stray = np.array([row in strays for row, _, _ in points])
        if stray.any():
            ax.scatter(cv[stray], lb[stray], s=220, facecolors="none", edgecolors="red", linewidths=1.5, zorder=5,
                       label=f"LB off the line by > {STRAY_SD} sd of its {PUBLIC_ROWS:,}-row noise")  # fmt: skip
        for row, c, score in points:
            ax.annotate(row["run_id"] or row["file"] or row["ref"], (c, score), textcoords="offset points",
                        xytext=(5, 4), fontsize=8)  # fmt: skip
        low, high = min(cv.min(), lb.min()), max(cv.max(), lb.max())
        pad = max(1e-3, (high - low) * 0.1)
        xs = np.array([low - pad, high + pad])
        ax.plot(xs, xs, color="grey", linestyle=":", label="LB = CV")
        ax.plot(xs, slope * xs + intercept, color="C2", label=f"LB = {slope:.3f} CV {intercept:+.4f} ({method})")
        ax.set_xlim(*xs)
        ax.set_ylim(*xs)
    else:
        ax.text(0.5, 0.5, "no submission has both a CV and a public score yet", ha="center", va="center",
                transform=ax.transAxes)  # fmt: skip
    r_text = f"r = {correlation:.3f}" if correlation is not None else "r: needs 3 submissions with different CVs"
    ax.set_title(f"CV against public LB: {len(points)} submission(s), {r_text}")
    ax.set_xlabel("local CV (OOF accuracy)")
    ax.set_ylabel("public leaderboard score")
    ax.grid(alpha=0.3)
    if points:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return CvLb(path, points, others, slope, intercept, correlation, strays, method)


# ---------------------------------------------------------------------------------------------------- the page

# Every rule under .kit-report, so the page shown inside a notebook's output (IPython's HTML) styles only itself.
_STYLE = """
.kit-report { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
.kit-report h1 { margin-bottom: 0.2em; } .kit-report h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.kit-report table { border-collapse: collapse; margin: 0.6em 0; }
.kit-report td, .kit-report th { border: 1px solid #ccc; padding: 3px 9px; } .kit-report th { background: #f3f3f3; }
.kit-report td.n { text-align: right; font-variant-numeric: tabular-nums; }
.kit-report .cv { font-size: 1.6em; font-weight: bold; } .kit-report img { max-width: 100%; border: 1px solid #eee; }
.kit-report .note { color: #666; }
"""


def _real(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and not math.isnan(x)


def _pct(x: object) -> str:
    return f"{100 * x:.3f} %" if _real(x) else "-"


def _number(x: object) -> str:
    return f"{x:,.0f}" if _real(x) else ""


def _table(header: list[str], rows: list[list[object]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{html.escape(str(v))}</td>'
                         for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'


def page(run_dir: Path, found: Report, title: str, metrics: dict, mine: list[dict[str, str]]) -> Path:
    """report/index.html: the run on one page that needs nothing else (pictures embedded, no scripts, no network):
    recipe, CV per member and overall (with and without TTA), per-class scores, most confused pairs, the confusion
    matrix, the worst mistakes, learning curves, and `mine`, the run's rows of the leaderboard log."""
    config = runs.load_config(run_dir)
    folders = [member / runs.METRICS for member in runs.member_dirs(run_dir)]
    members = [runs.load_metrics(p.parent) for p in folders]
    cv = metrics.get("cv_accuracy", found.accuracy)
    parts = [f"<h1>{html.escape(run_dir.name)}</h1>"]
    kind = config.get("kind", "train")
    made = " ".join(str(v) for v in (kind, "run,", "created", config.get("created_utc", "?")))
    sample = " SAMPLE data: these scores say nothing about the competition." if (config.get("data") or {}).get(
        "source") == "sample" else ""  # fmt: skip
    parts.append(f'<p class="note">{html.escape(made)}; {found.rows:,} {title} rows.{sample}</p>')
    parts.append(f'<p>CV ({html.escape(title)}): <span class="cv" id="cv">{_pct(cv)}</span>'
                 + (f" &nbsp; without TTA: {_pct(metrics['cv_accuracy_plain'])}" if "cv_accuracy_plain" in metrics
                    else "") + "</p>")  # fmt: skip
    if members:
        rows = [[m.get("fold", ""), m.get("family", ""), _pct(m.get("accuracy")), _pct(m.get("accuracy_plain")),
                 m.get("val_rows", ""), _number(m.get("images_per_s")), _number(m.get("seconds"))]
                for m in members]  # fmt: skip
        parts += ["<h2>Members</h2>", _table(["member", "family", "accuracy", "without TTA", "val rows", "img/s",
                                              "seconds"], rows, {0, 2, 3, 4, 5, 6})]  # fmt: skip
    if found.blend:
        weights = found.blend["blend"]["weights"]
        rows = [[name, f"{weights[name]:.3f}", _pct(f["cv_accuracy"]), found.blend["overlap"]["errors"][name]]
                for name, f in found.blend["families"].items()]  # fmt: skip
        parts += ["<h2>Families and their blend</h2>", _table(["family", "weight", "CV", "errors"], rows, {1, 2, 3}),
                  f"<p>{html.escape(str(found.blend['blend'].get('why', '')))}</p>"]  # fmt: skip
    recipe = config.get("recipe") or {k: v for k, v in config.items() if k not in ("versions",)}
    changed = recipes.changes(config["recipe"]) if config.get("recipe") else []
    said = html.escape(" ".join(changed)) if changed else "none: the preset as it is"
    parts += ["<h2>Recipe</h2>", f"<p>Changed from its preset (as --set writes them): {said}</p>",
              _table(["field", "value"], [[k, json.dumps(v)] for k, v in recipe.items()])]  # fmt: skip
    parts += ["<h2>Per class</h2>", _table(["digit", "precision", "recall", "support"],
              [[d, _pct(p), _pct(r), f"{n:,}"] for d, p, r, n in found.per_class], {0, 1, 2, 3})]  # fmt: skip
    pairs = [[t, pr, n] for t, pr, n in found.confused]
    parts += ["<h2>Most confused (true, predicted)</h2>",
              _table(["true", "predicted", "count"], pairs, {0, 1, 2}) if pairs else "<p>none</p>"]  # fmt: skip
    names = {"confusion_matrix.png": "Confusion matrix", "misclassified.png": "Most confident mistakes",
             "learning_curves.png": "Learning curves", "cv_vs_lb.png": "CV against the public leaderboard"}  # fmt: skip
    for picture in found.pictures:
        parts += [f"<h2>{names.get(picture.name, picture.stem)}</h2>", _image(picture, names.get(picture.name, ""))]
    if mine:
        rows = [[r["utc_time"], r["cv_accuracy"], r["public_score"], r["private_score"], r["status"], r["message"]]
                for r in mine]  # fmt: skip
        parts += ["<h2>Submissions</h2>", _table(["time (UTC)", "CV", "public LB", "private", "status", "message"],
                                                  rows, {1, 2, 3})]  # fmt: skip
    body = '<div class="kit-report">\n' + "\n".join(parts) + "\n</div>"
    head = f'<meta charset="utf-8"><title>kit report: {html.escape(run_dir.name)}</title><style>{_STYLE}</style>'
    text = f'<!doctype html>\n<html lang="en"><head>{head}</head><body>\n{body}\n</body></html>\n'
    target = found.folder / "index.html"
    files.write_atomic(target, text.encode())
    return target


def study_page(result) -> Path:
    """runs/studies/NAME/index.html (`kit tune --show`): the study on one self-contained page: its trials by number
    (OOF errors of the complete ones, the best so far, where the pruned stopped), each trial's per-epoch values (kept
    and pruned), the parameters' importances where Optuna can tell them, the trials table and the best recipe."""
    plt = _pyplot()
    folder = result.folder
    pictures = []
    done = [r for r in result.trials if r.errors is not None]
    if done:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot([r.number for r in done], [r.errors for r in done], "o", label="complete")
        best, line = None, []
        for r in done:
            best = r.errors if best is None else min(best, r.errors)
            line.append(best)
        ax.step([r.number for r in done], line, where="post", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel(f"OOF errors (of {done[0].rows:,})")
        ax.legend()
        fig.tight_layout()
        pictures.append(("Optimization history", folder / "history.png"))
        fig.savefig(pictures[-1][1], dpi=100)
        plt.close(fig)
    if result.curves:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        states = {r.number: r.state for r in result.trials}
        for number, values in sorted(result.curves.items()):
            steps = sorted(values)
            pruned = states.get(number) == "pruned"
            ax.plot(steps, [values[s] for s in steps], "--" if pruned else "-", color="grey" if pruned else None,
                    alpha=0.6 if pruned else 0.9, label=None if pruned else f"trial {number}")  # fmt: skip
        if sum(states.get(n) != "pruned" for n in result.curves) <= 10:
            ax.legend(fontsize=7)
        ax.set_xlabel("fold" if result.definition.prune == "wilcoxon" else "epoch")
        ax.set_ylabel("validation accuracy (dashed: pruned)")
        fig.tight_layout()
        pictures.append(("Per-epoch values", folder / "curves.png"))
        fig.savefig(pictures[-1][1], dpi=100)
        plt.close(fig)
    if result.importances:
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(result.importances) + 1))
        names = list(result.importances)[::-1]
        ax.barh(names, [result.importances[n] for n in names])
        ax.set_xlabel("importance (Optuna's fANOVA)")
        fig.tight_layout()
        pictures.append(("Parameter importances", folder / "importances.png"))
        fig.savefig(pictures[-1][1], dpi=100)
        plt.close(fig)
    names = [text.partition("=")[0] for text in result.definition.space]
    rows = [[r.number, r.state + (f" at {r.pruned_at}" if r.pruned_at else ""),
             "" if r.errors is None else f"{r.errors:,}", _pct(r.accuracy),
             *[f"{r.params[n]:.4g}" if isinstance(r.params.get(n), float) else r.params.get(n, "") for n in names],
             r.run_id, (r.confirmed or {}).get("errors", "")] for r in result.trials]  # fmt: skip
    parts = [f"<h1>study {html.escape(result.name)}</h1>",
             f'<p class="note">space: {html.escape(", ".join(result.definition.space))}; pruning: '
             f"{html.escape(result.definition.prune)}</p>",
             "<h2>Trials</h2>", _table(["trial", "state", "OOF errors", "OOF", *names, "run", "confirmed errors"],
                                       rows, {0, 2, 3})]  # fmt: skip
    for title, path in pictures:
        parts += [f"<h2>{title}</h2>", _image(path, title)]
    if result.best_recipe:
        parts += ["<h2>Best recipe</h2>", f"<pre>{html.escape(result.best_recipe)}</pre>"]
    body = '<div class="kit-report">\n' + "\n".join(parts) + "\n</div>"
    head = f'<meta charset="utf-8"><title>kit study: {html.escape(result.name)}</title><style>{_STYLE}</style>'
    target = folder / "index.html"
    files.write_atomic(
        target, f'<!doctype html>\n<html lang="en"><head>{head}</head><body>\n{body}\n</body></html>\n'.encode()
    )
    return target
