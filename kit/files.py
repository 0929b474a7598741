"""Files kit writes whole or not at all, and reads back checked: JSON and numpy arrays in runs/, the leaderboard log,
the data cache. A reader never sees half a file; a damaged one is a RunError naming it."""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from kit.errors import RunError


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (temp file + rename): readers never see half a file."""
    write_atomic(path, (json.dumps(payload, indent=2, default=_jsonable) + "\n").encode())


def read_json(path: Path) -> Any:
    """A JSON file kit wrote; a damaged one (truncated, overwritten, not UTF-8) is a RunError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunError(
            f"{path} is damaged ({type(exc).__name__}); delete the run (or that fold) and train it again."
        ) from None


def load_array(path: Path, shape: tuple[int | None, ...] | None = None) -> np.ndarray:
    """An array kit saved in a run; a damaged one (truncated, overwritten, or not of `shape`, None standing for any
    length) is a RunError naming it."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise RunError(f"{path} is missing; the run is incomplete: train it again with the same --run-id.") from None
    except (ValueError, OSError, EOFError) as exc:
        raise RunError(
            f"{path} is damaged ({type(exc).__name__}); delete the run (or that fold) and train it again."
        ) from None
    if array.dtype.kind not in "fiu":
        raise RunError(
            f"{path} is damaged (an array of {array.dtype}); delete the run (or that fold) and train it again."
        )
    if shape is not None and (
        array.ndim != len(shape) or any(w not in (None, g) for w, g in zip(shape, array.shape, strict=False))
    ):
        want = "(" + ", ".join("N" if w is None else str(w) for w in shape) + ("," if len(shape) == 1 else "") + ")"
        raise RunError(f"{path} is damaged (shape {array.shape}, where the run needs {want}); delete the run (or that "
                       "fold) and train it again.")  # fmt: skip
    return array


def save_array(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_atomic(path, buffer.getvalue())


@functools.cache
def _umask() -> int:
    """The process's umask, read once (reading it means setting it, which another thread could see meanwhile)."""
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def write_atomic(path: Path, payload: bytes) -> None:
    """Write a file whole or not at all (a temp file beside it, synced, then renamed): readers never see half of
    it, and a failure (a full disk, Ctrl-C) leaves no temp file. A full disk is a RunError naming the folder. The
    file gets the permissions a plain `open` would give it (the user's umask: teammates on a shared box can read a
    run), not the temp file's private 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with contextlib.suppress(OSError, NotImplementedError):  # a file system without modes keeps its own
            os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise RunError(f"{path.parent} is full (no space left on its disk); free some space, or point "
                           "KIT_RUNS_DIR / KIT_SUBMISSIONS_DIR elsewhere.") from None  # fmt: skip
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
