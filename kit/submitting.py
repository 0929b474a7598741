"""`kit submit`: validate, check quota and duplicates, upload, wait for the score, log it.

The order guarantees what a Kaggler cares about: nothing leaves the machine before the file is valid, the
quota is known and the content is new; the log row exists before the upload starts and only ever moves
forward (failed -> never sent; pending -> sent, score unknown; complete / error -> Kaggle's verdict), so a
crash or a lost connection after the upload leaves `pending`, never a false success.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit import kaggle_api, ledger, paths, runs, submission
from kit.errors import DataError, KaggleError, KitError, NothingSent, OfflineError, QuotaError, UsageError


@dataclass
class Target:
    """What is being submitted: the file, its content hash, the run it came from, the message."""

    path: Path
    sha256: str
    run_id: str
    cv_accuracy: float | None
    message: str


def resolve(ref: str | None, message: str | None) -> Target:
    """A CSV path or a run id (None: the latest run) -> the file to submit and its default message."""
    run_dir = None
    if ref is not None and not Path(ref).is_file() and (ref.lower().endswith(".csv") or "/" in ref):
        raise DataError(f"{ref}: no such file; pass the path of a submission CSV, or a run id.")
    if ref is not None and Path(ref).is_file():
        path = Path(ref)
        candidate = paths.runs_dir() / path.stem
        run_dir = candidate if (candidate / runs.CONFIG).is_file() else None
    else:
        run_dir = runs.resolve(ref)
        path = paths.submissions_dir() / f"{run_dir.name}.csv"
        if not path.is_file():
            metrics = runs.load_metrics(run_dir)
            path = Path(metrics["submission"]) if metrics and metrics.get("submission") else path
        if not path.is_file():
            raise DataError(
                f"Run {run_dir.name} has no submission file ({path}); finish its folds with `kit train --run-id "
                f"{run_dir.name}`, or pass a CSV path."
            )
    run_id, cv, describe = "", None, path.name
    if run_dir is not None:
        config = runs.load_config(run_dir)
        metrics = runs.load_metrics(run_dir) or {}
        run_id, cv = run_dir.name, metrics.get("cv_accuracy")
        what = config.get("recipe", {}).get("model") or config.get("kind", "run")
        folds = config.get("recipe", {}).get("folds")
        describe = f"{run_id} ({what}{f', {folds} folds' if folds and folds > 1 else ''})"
        if cv is not None:
            describe += f", CV {cv:.5f}"
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return Target(path, sha, run_id, cv, message or f"kit: {describe}")


def check(target: Target, force: bool) -> None:
    """Validation and the duplicate check: everything that needs no network. Kaggle scores the competition's
    28,000 test rows, whatever data is installed (a file made from the offline sample is refused here)."""
    submission.validate(target.path, submission.REAL_TEST_ROWS, consequence="nothing was uploaded")
    previous = ledger.find_sha(target.sha256)
    if previous is not None and not force and not _stale(previous):  # stale: `submit` asks Kaggle's list first
        raise _duplicate(previous)


def _unsettled(row: dict[str, str] | None) -> bool:
    """A row whose send kit never heard the end of (pending, no ref): in flight, or its upload broke off."""
    return row is not None and row["status"] == "pending" and not row["ref"]


def _stale(row: dict[str, str] | None) -> bool:
    """An unsettled row old enough that Kaggle's list says for sure whether the submission was made."""
    age = ledger.seconds_since(row) if row is not None else None
    return _unsettled(row) and age is not None and age > ledger.UNLISTED_S


def _duplicate(previous: dict[str, str]) -> QuotaError:
    score = f", public score {previous['public_score']}" if previous["public_score"] else ""
    if _unsettled(previous):  # in flight, or its upload broke off too recently for Kaggle's list to tell
        return QuotaError(f"This exact file was already submitted on {previous['utc_time']} (status pending: kit has "
                          "not heard whether Kaggle made it); `kit leaderboard --sync` settles it from Kaggle's list "
                          f"(a send not listed {ledger.UNLISTED_S / 60:.0f} minutes on never reached Kaggle and blocks "
                          "nothing), or use --force to spend a submission on it now.")  # fmt: skip
    return QuotaError(
        f"This exact file was already submitted on {previous['utc_time']} (ref {previous['ref'] or '?'}, "
        f"status {previous['status']}{score}); use --force to spend a submission on it again."
    )


def submit(
    target: Target,
    wait: bool,
    timeout: float,
    on_poll: Callable[[dict[str, Any]], None] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Check the quota, log, upload, and (with `wait`) poll until scored. Returns the last known state. The log row
    is claimed with the duplicate check in one step, so the same file submitted twice at once is uploaded once."""
    if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout >= 0):
        raise UsageError(f"--timeout {timeout}: must be a number of seconds >= 0 (0: do not wait for the score).")
    api = kaggle_api.client()
    left = kaggle_api.remaining_today(api)
    if left is not None and left <= 0:
        raise QuotaError(
            "No submissions left today on Kaggle (the daily allowance resets at 00:00 UTC); try again then."
        )
    cv = "" if target.cv_accuracy is None else f"{target.cv_accuracy:.5f}"
    fields = dict(run_id=target.run_id, file=str(target.path), message=target.message, cv_accuracy=cv)
    row, previous = ledger.claim(target.sha256, force, **fields, status="pending")
    if row is None and _stale(previous):
        sync()  # a send whose fate kit never learnt: Kaggle's list settles it (made, or never reached Kaggle)
        row, previous = ledger.claim(target.sha256, force, **fields, status="pending")
    if row is None:
        raise _duplicate(previous)
    try:
        ref = kaggle_api.upload(api, target.path, target.message)
    except KitError as exc:
        # The upload or the create call failed. If Kaggle said no, nothing was created; if the network
        # failed, it may have been: keep the row pending so `kit leaderboard --sync` can settle it.
        if isinstance(exc, OfflineError) and not isinstance(exc, NothingSent):
            ledger.update(row, error=f"connection lost during upload: {exc}")
        else:
            ledger.update(row, status="failed", error=str(exc))
        raise
    if ref is None:  # created, its ref unsaid: pending; --sync matches it by its message
        ledger.update(row, error="Kaggle created it without saying its ref")
        raise KaggleError("Kaggle accepted the submission but did not say its number, so kit cannot wait for its "
                          "score: `kit leaderboard --sync` fills in its ref and score (do not submit the file "
                          "again).")  # fmt: skip
    ledger.update(row, ref=ref)
    state: dict[str, Any] = {"ref": ref, "status": "pending", "public_score": "", "private_score": "", "error": ""}
    if wait:
        try:
            state = kaggle_api.wait_for_score(api, ref, timeout, on_poll)
        except KitError as exc:  # the submission exists: say so, never just "try again"
            ledger.update(row, error=f"lost contact while waiting for the score: {exc}")
            if isinstance(exc, OfflineError):
                raise OfflineError(
                    f"Submission {ref} was made, but Kaggle stopped answering while kit waited for its score; "
                    "`kit leaderboard --sync` fills the score in later (do not submit the file again)."
                ) from None
            if "--sync" not in str(exc):
                raise type(exc)(f"Submission {ref} was made, but kit stopped waiting for its score: {exc} "
                                "`kit leaderboard --sync` fills the score in later (do not submit the file "
                                "again).") from None  # fmt: skip
            raise
        ledger.update(
            row, status=state["status"], public_score=state["public_score"],
            private_score=state["private_score"], error=state["error"],
        )  # fmt: skip
        if state["status"] == "error":
            raise KaggleError(f"Kaggle could not score submission {ref}: {state['error'] or 'no reason given'}.")
    return state


def sync() -> tuple[int, int]:
    """Fill in pending rows and add submissions made outside kit, from Kaggle's list. (updated, added)"""
    api = kaggle_api.client()
    return ledger.merge_remote(kaggle_api.list_submissions(api))
