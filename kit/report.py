"""Look at a run: confusion matrix, the worst misclassified digits, learning curves (PNG, matplotlib Agg),
and per-class precision/recall with the most confused pairs (scikit-learn), all from the run directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kit import runs
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
    blend: dict | None = None  # a blend run's families, weights and error overlap (its metrics.json), else None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def oof_predictions(run_dir: Path, comp: Competition) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row indices, true labels, OOF probabilities) of the rows some fold validated."""
    if not (run_dir / "oof.npy").is_file():
        raise RunError(f"Run {run_dir.name} has no OOF predictions yet; finish its folds first.")
    oof = runs.load_array(run_dir / "oof.npy", (len(comp.train_labels), 10))  # comp: cut to the run's rows
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
    """The wrong predictions the model was most sure of, each titled 'true -> predicted (confidence)'."""
    plt = _pyplot()
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != y_true)
    worst = wrong[np.argsort(-probs[wrong, pred[wrong]])][:limit]
    cols = 6
    rows = max(1, -(-len(worst) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.8, rows * 2.0), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, worst, strict=False):
        ax.imshow(images[i, :, :, 0], cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(f"{y_true[i]} -> {pred[i]} ({probs[i, pred[i]]:.2f})", fontsize=9)
    if len(worst) == 0:
        axes.flat[0].text(0.5, 0.5, "no misclassified digits", ha="center", va="center")
    fig.suptitle("Most confident mistakes: true -> predicted (confidence)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return len(worst)


def learning_curves_png(run_dir: Path, path: Path) -> bool:
    """Loss and accuracy per epoch, train (solid) and validation (dashed), one colour per fold."""
    histories = sorted(run_dir.glob("fold*/history.json"))
    if not histories:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for n, file in enumerate(histories):
        rows = runs.read_json(file)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise RunError(f"{file} is damaged (it is not the per-epoch rows kit wrote); delete that fold and train it "
                           "again.")  # fmt: skip
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
    y_pred = probs.argmax(1)
    folder = run_dir / "report"
    folder.mkdir(exist_ok=True)
    folds = runs.load_config(run_dir).get("recipe", {}).get("folds", 1)
    title = "OOF" if folds and folds > 1 else "holdout"
    pictures = [folder / "confusion_matrix.png", folder / "misclassified.png"]
    counts = confusion_png(y_true, y_pred, pictures[0], f"{run_dir.name} {title}")
    misclassified_png(comp.train_images[rows], y_true, probs, pictures[1])
    if learning_curves_png(run_dir, folder / "learning_curves.png"):
        pictures.append(folder / "learning_curves.png")
    precision, recall, _, support = precision_recall_fscore_support(y_true, y_pred, labels=range(10), zero_division=0)
    per_class = [(d, float(precision[d]), float(recall[d]), int(support[d])) for d in range(10)]
    off = [(i, j, int(counts[i, j])) for i in range(10) for j in range(10) if i != j and counts[i, j] > 0]
    confused = sorted(off, key=lambda t: -t[2])[:5]
    metrics = runs.load_metrics(run_dir) or {}
    blend = {k: metrics[k] for k in ("families", "blend", "overlap")} if "families" in metrics else None
    return Report(folder, pictures, len(rows), float((y_pred == y_true).mean()), per_class, confused, blend)
