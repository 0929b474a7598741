"""Where kit keeps things: the data, runs and submissions folders, and inside a Kaggle Notebook the attached
competition data (read-only, under /kaggle/input) and the folder whose files the notebook keeps (/kaggle/working);
and how the files kit writes there spell a time (`utc_now`).

Each folder's environment variable wins: KIT_DATA_DIR, KIT_RUNS_DIR, KIT_SUBMISSIONS_DIR; KIT_KAGGLE_INPUT stands in
for /kaggle/input (and marks a Kaggle Notebook, so tests can play one).
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime
from pathlib import Path

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # a run's folder name, matched whole
RUN_ID_RULE = "use letters, digits, '.', '_' and '-' (up to 100 characters)"


def is_run_id(text: object) -> bool:
    """Whether `text` can name a run (its folder under runs/): RUN_ID, the whole string (no trailing newline)."""
    return isinstance(text, str) and RUN_ID.fullmatch(text) is not None


KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_WORKING = Path("/kaggle/working")


def in_kaggle_notebook() -> bool:
    """Kaggle sets KAGGLE_KERNEL_RUN_TYPE in its notebooks ("Interactive" or "Batch"), and mounts their inputs
    under /kaggle/input."""
    return bool(os.environ.get("KAGGLE_KERNEL_RUN_TYPE") or os.environ.get("KIT_KAGGLE_INPUT")) or KAGGLE_INPUT.is_dir()


def kaggle_input() -> Path:
    return Path(os.environ.get("KIT_KAGGLE_INPUT") or KAGGLE_INPUT)


def _home() -> Path:
    """The folder runs/, submissions/ and data/ go in by default: /kaggle/working in a Kaggle Notebook (the rest of
    its disk is not kept), else the working directory."""
    return KAGGLE_WORKING if in_kaggle_notebook() and KAGGLE_WORKING.is_dir() else Path()


def data_dir(explicit: Path | None = None) -> Path:
    """The data directory: `explicit`, else $KIT_DATA_DIR, else data/digit-recognizer."""
    if explicit is not None:
        return Path(explicit)
    return Path(os.environ.get("KIT_DATA_DIR") or _home() / "data" / "digit-recognizer")


def runs_dir() -> Path:
    return Path(os.environ.get("KIT_RUNS_DIR") or _home() / "runs")


def submissions_dir() -> Path:
    return Path(os.environ.get("KIT_SUBMISSIONS_DIR") or _home() / "submissions")


def utc_seconds(stamp: str) -> float | None:
    """A time as `utc_now` spells it, in seconds since the epoch (None where it is not one)."""
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def utc_now(when: datetime | None = None, compact: bool = False) -> str:
    """Now (or `when`, a datetime taken as UTC when it has no zone) as every file kit writes spells a time: ISO 8601
    UTC to the second (2026-12-01T17:38:36Z); `compact`: as a run id begins (20261201-173836)."""
    stamp = time.gmtime() if when is None else when.utctimetuple()
    return time.strftime("%Y%m%d-%H%M%S" if compact else "%Y-%m-%dT%H:%M:%SZ", stamp)
