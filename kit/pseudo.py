"""Pseudo-labels: a finished run (the teacher) labels the test images, and each member of a new run (a student)
trains on its own training rows plus those test images, with the teacher's probabilities as soft targets.

The OOF score stays honest only if no student learns its own validation rows' labels through the test images: a
teacher member that trained on rows a student member validates carries their labels into its test predictions. So
student member m takes its pseudo-labels only from the teacher members that never trained on any row m validates,
found from the two runs' splits (with a K-fold teacher on the same split: teacher fold k for student fold k).
A teacher with no such member for some student member (another split, a one-model teacher) is refused.

runs/<student>/pseudo.npy   float32 (members, test rows, 10): each member's soft targets for the test images
runs/<student>/pseudo.json  the teacher and, per student member, the teacher members that labelled its images
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kit import files, runs, splits
from kit.config import Recipe, from_dict, member_count
from kit.errors import RunError, UsageError


def _split(r: Recipe) -> str:
    return f"{r.folds} fold(s)" + (f" x {r.repeats} repeats" if r.repeats > 1 else "") + f", seed {r.seed}"


def assign(teacher: Path, student: Recipe, folds: np.ndarray) -> dict[int, list[int]]:
    """For each member of the student run (recipe `student`, split `folds`), the teacher members that never trained
    on a row it validates. A teacher that is not a complete training run on the same rows, or that leaves some student
    member without such a teacher member, is a UsageError saying why."""
    config = runs.load_config(teacher)
    if config.get("kind") != "train" or not isinstance(config.get("recipe"), dict):
        raise UsageError(f"--pseudo {teacher.name}: a {config.get('kind')} run; the teacher must be a training run.")
    t_recipe = from_dict(config["recipe"])
    if t_recipe.pseudo:
        raise UsageError(f"--pseudo {teacher.name}: that run is itself a student; use its teacher or another run.")
    t_folds = runs.load_folds(teacher)
    if t_folds.shape[-1] != folds.shape[-1]:
        raise UsageError(f"--pseudo {teacher.name}: the teacher trained on {t_folds.shape[-1]:,} rows and this run has "
                         f"{folds.shape[-1]:,}; train both on the same data and --limit.")  # fmt: skip
    total = member_count(t_recipe)
    teachers = [t for t in range(total) if runs.member_done(teacher, t)]
    if len(teachers) < total:
        raise UsageError(f"--pseudo {teacher.name}: the teacher is not finished ({len(teachers)} of {total} members); "
                         f"finish it with `kit train --run-id {teacher.name}`.")  # fmt: skip
    assigned = {}
    for m in range(member_count(student)):
        validated = splits.member_rows(folds, student.folds, m)
        assigned[m] = [t for t in teachers if not (splits.training_rows(t_folds, t_recipe.folds, t) & validated).any()]
        if not assigned[m]:
            raise UsageError(
                f"--pseudo {teacher.name}: every member of that run trained on rows that member {m} of this run "
                f"validates, so its labels would leak into this run's CV through the test images (teacher: "
                f"{_split(t_recipe)}; this run: {_split(student)}). Train the students on the teacher's split "
                f"(--folds {t_recipe.folds} --seed {t_recipe.seed}), or use a K-fold teacher."
            )
    return assigned


def targets(teacher: Path, assigned: dict[int, list[int]], test_rows: int) -> np.ndarray:
    """(members, test rows, 10): each student member's soft targets, the mean test probabilities of its teacher
    members."""
    cache: dict[int, np.ndarray] = {}
    out = np.zeros((len(assigned), test_rows, 10), np.float32)
    for m, members in assigned.items():
        for t in members:
            if t not in cache:
                path = runs.member_dir(teacher, t) / runs.TEST_PROBS
                probs = runs.load_probs(path, None)
                if probs.shape != (test_rows, 10):
                    raise RunError(f"{path} holds {probs.shape}, not ({test_rows}, 10): the teacher predicted another "
                                   "test set.")  # fmt: skip
                cache[t] = probs
            out[m] += cache[t] / len(members)
    return out


def prepare(r: Recipe, folds: np.ndarray, test_rows: int) -> dict[str, Any]:
    """Everything a student run needs, computed before it is written (a refused teacher leaves nothing behind):
    the files pseudo.npy and pseudo.json as {name: array or JSON}."""
    teacher = runs.resolve(r.pseudo)
    assigned = assign(teacher, r, folds)
    soft = targets(teacher, assigned, test_rows)
    book = {"teacher": teacher.name, "members": {str(m): t for m, t in assigned.items()}, "test_rows": test_rows,
            "min_confidence": r.pseudo_min}  # fmt: skip
    return {"pseudo.npy": soft, "pseudo.json": book}


def rows_for(run_dir: Path, member: int, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Member `member`'s pseudo-labelled test rows: (their indices, their soft targets), those whose most likely
    label has at least `min_confidence` (all of them at 0)."""
    soft = files.load_array(run_dir / "pseudo.npy")
    if soft.ndim != 3 or member >= len(soft) or soft.shape[2] != 10:
        raise RunError(f"{run_dir / 'pseudo.npy'} holds {soft.shape}, not this run's pseudo-labels; delete the run "
                       "and train it again.")  # fmt: skip
    keep = np.flatnonzero(soft[member].max(1) >= min_confidence)
    return keep, soft[member][keep]
