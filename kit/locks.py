"""Exclusive file locks between kit processes, on every OS (the `filelock` library: flock on Linux and macOS,
LockFileEx on Windows); the operating system releases a lock when the process holding it ends, however it ends.

A lock is held by one open lock file, so two holders in one process exclude each other as two processes do.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import filelock


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Wait for the lock at `path` and hold it for the block."""
    with filelock.FileLock(str(path), timeout=-1):
        yield


def try_exclusive(path: Path) -> filelock.BaseFileLock | None:
    """The lock at `path`, held (release it with `.release()`), or None when another holder has it. The holder's pid
    is kept beside it (`owner`): the lock file itself is the library's to truncate."""
    lock = filelock.FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        return None
    with contextlib.suppress(OSError):
        owner_file(path).write_text(f"{os.getpid()}\n", encoding="ascii")
    return lock


def owner(path: Path) -> str:
    """The pid that last took the lock at `path` ('' where unknown)."""
    try:
        return owner_file(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def owner_file(path: Path) -> Path:
    """Where the pid of the lock at `path`'s holder is kept."""
    return path.with_name(path.name + ".pid")
