"""The split: which rows each member of a run validates and trains on. `assign` draws it (stratified holdout, K-fold,
repeated K-fold) and saves nothing; the run keeps it (kit.runs.load_folds reads it back, checked
against `folds_id`).

Member m of a run with K folds and R repeats is fold m % K of repeat m // K; a blend's families share the split, so
member m of a family validates what member m % KR does.
"""

from __future__ import annotations

import numpy as np

from kit.errors import UsageError


def assign(labels: np.ndarray, folds: int, holdout: float, seed: int, repeats: int = 1) -> np.ndarray:
    """int8 per row: the fold whose model validates it. folds=1: a stratified holdout (fold 0), the rest -1.
    With `repeats` R > 1, an (R, N) array: R stratified K-fold splits, seeded seed, seed + 1, ..."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    if repeats > 1:
        return np.stack([assign(labels, folds, holdout, seed + r) for r in range(repeats)])

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


def members(folds: np.ndarray, n_folds: int) -> list[int]:
    """The members (fold models) of a run, from its saved split: fold numbers 0..K-1 for one split (N,), and
    0..K*R-1 for R repeated splits (R, N), member m being fold m % K of repeat m // K."""
    if folds.ndim == 1:
        return sorted(int(f) for f in np.unique(folds) if f >= 0)
    return list(range(folds.shape[0] * n_folds))


def member_rows(folds: np.ndarray, n_folds: int, member: int) -> np.ndarray:
    """The rows `member` validates (a boolean mask). A blend's families share the split: member m of a run with KR
    members a family validates what member m % KR does."""
    if folds.ndim == 1:
        return folds == member % max(1, n_folds)
    repeat, fold = divmod(member % (folds.shape[0] * n_folds), n_folds)
    return folds[repeat] == fold


def training_rows(folds: np.ndarray, n_folds: int, member: int) -> np.ndarray:
    """The rows `member` trains on (a boolean mask): those the other folds of its split validate (K-fold), or those
    outside the holdout (one model)."""
    return ~member_rows(folds, n_folds, member) if n_folds > 1 else folds == -1


def folds_id(folds: np.ndarray) -> str:
    """What identifies a split (its shape and entries): in the run's config beside the split, checked on reading."""
    import hashlib

    digest = hashlib.sha256(str(folds.shape).encode() + np.ascontiguousarray(folds, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]
