"""A full disk, for real: a tiny tmpfs (mounted by the test; skipped where this machine does not allow it) as the
submissions and runs folders. What kit writes there fails with one line naming the full folder, and leaves no temp
file and no half-made run behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kit import ensemble, files, submission
from kit.errors import RunError
from tests.conftest import log_row


@pytest.fixture
def full(tmp_path, monkeypatch):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip() or 'not permitted'})")
    try:
        for sub in ("subs", "runs"):
            (disk / sub).mkdir()
        monkeypatch.setenv("KIT_SUBMISSIONS_DIR", str(disk / "subs"))
        monkeypatch.setenv("KIT_RUNS_DIR", str(disk / "runs"))
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _fill(disk: Path, leave: int) -> None:
    """Fill the disk until fewer than `leave` bytes are free."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 1024)
        except OSError:
            pass
    os.truncate(filler, max(0, filler.stat().st_size - leave))


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name)


def test_a_full_disk_is_one_line_naming_the_folder_and_leaves_nothing_half_written(full):
    _fill(full, 2048)
    with pytest.raises(RunError, match=f"{full / 'subs'} is full"):
        submission.write(np.zeros(28_000, np.int64), full / "subs" / "a.csv")
    with pytest.raises(RunError, match="is full"):
        log_row(run_id="r", file="a.csv", sha256="0" * 64, message="x" * 20_000, status="pending")
    assert _left(full) == [] and not (full / "subs" / "a.csv").exists()


def test_a_blend_on_a_full_disk_leaves_no_run_without_its_config(full, tmp_path, monkeypatch):
    labels = np.repeat(np.arange(10), 30)
    for name in ("a", "b"):
        run = tmp_path / name
        run.mkdir()
        files.write_json(run / "config.json", {"kind": "train", "created_utc": "2026-01-01", "data": {}})
        np.save(run / "test_probs.npy", np.full((28_000, 10), 0.1, np.float32))
    _fill(full, 4096)
    with pytest.raises(RunError, match="is full"):
        ensemble.blend([tmp_path / "a", tmp_path / "b"], None, labels)
    assert list((full / "runs").iterdir()) == [] and _left(full) == []


@pytest.mark.slow
def test_a_fold_worker_that_fills_the_disk_says_so_through_the_parent_and_leaves_no_temp_model(full, env):
    """The worker's log is on the full disk too: its error reaches `kit train` through the pipe instead."""
    from kit import data
    from tests.conftest import run_kit

    data.install_sample(Path(env["KIT_DATA_DIR"]))
    args = ["train", "--folds", "2", "--epochs", "1", "--model", "seed", "--jobs", "2", "--limit", "200",
            "--run-id", "full"]  # fmt: skip
    result = run_kit(args, {**env, "KIT_RUNS_DIR": str(full / "runs"), "KIT_SUBMISSIONS_DIR": str(full / "subs")})
    assert result.returncode == 8, result.stdout + result.stderr
    assert "failed (exit 1): cannot write" in result.stderr and "No space left on device" in result.stderr
    assert "Traceback" not in result.stderr and not list((full / "runs").rglob(".model.tmp.keras"))
