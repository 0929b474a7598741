"""kit off Linux: nothing POSIX-only at import time, and the locks hold without `fcntl` (as on Windows, where
`filelock` locks with LockFileEx). CI runs Linux only: these tests are what stands for Windows and macOS."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

KIT = ROOT / "kit"
POSIX_ONLY = {"fcntl", "termios", "tty", "pty", "resource", "pwd", "grp", "syslog", "crypt", "spwd", "nis", "posix"}


def without_fcntl(folder: Path) -> dict[str, str]:
    """An environment whose Python processes cannot import fcntl (a sitecustomize puts None in its place)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text('import sys\nsys.modules["fcntl"] = None  # as on Windows\n')
    return {"PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)])}


def test_kit_imports_no_posix_only_module():
    found = []
    for path in sorted(KIT.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in POSIX_ONLY]
    assert found == []


CHECK = """
import importlib, pkgutil, sys
import kit
for module in pkgutil.iter_modules(kit.__path__):
    if module.name != "__main__":
        importlib.import_module("kit." + module.name)
assert sys.modules.get("fcntl") is None, "fcntl was importable"

from pathlib import Path
from kit import runs
from kit.errors import RunError
folder = Path(sys.argv[1])
with runs.fold_locks(folder, [0, 1]):
    try:
        with runs.fold_locks(folder, [2, 1]):
            raise SystemExit("fold 1 was locked twice")
    except RunError as exc:
        assert "Fold 1 of run" in str(exc) and "another kit process (pid" in str(exc), exc
    with runs.fold_locks(folder, [2]):
        pass
with runs.fold_locks(folder, [0, 1, 2]):
    pass
print("locks held")
"""


def test_every_module_imports_and_fold_locks_hold_without_fcntl(tmp_path):
    env = {**os.environ, **without_fcntl(tmp_path / "site")}
    result = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path)], env=env, capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0 and "locks held" in result.stdout, result.stdout + result.stderr


def _append_many(folder: str, n: int) -> None:
    from tests.conftest import log_row

    os.environ["KIT_SUBMISSIONS_DIR"] = folder
    for i in range(n):
        log_row(run_id=f"p{os.getpid()}-{i}", status="pending")


@pytest.mark.parametrize("fcntl", ["available", "blocked"])
def test_concurrent_appends_lose_no_row(env, tmp_path, monkeypatch, fcntl):
    import multiprocessing

    from kit import ledger

    if fcntl == "blocked":
        monkeypatch.setenv("PYTHONPATH", without_fcntl(tmp_path / "site")["PYTHONPATH"])
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(env["KIT_SUBMISSIONS_DIR"], 25)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    rows = ledger.rows()
    assert len(rows) == 75 and len({r["run_id"] for r in rows}) == 75
