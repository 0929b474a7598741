"""Property: damage any one file kit wrote (under runs/, the data directory or submissions/), by cutting it in half,
overwriting it with random bytes, or (for JSON and arrays) replacing it with one that parses but holds the wrong
thing (JSON of another type, an array of another shape or dtype; or the right layout with damaged fields: numbers as
text, probabilities that are NaN or infinite, a split reordered), then run every command that reads that file. No
command may end in a traceback, and none computes from a damaged array and exits 0: each either works on what is
intact or stops with one line (a KitError, or an OSError that `kit.cli.main` turns into one line), and `kit runs`
still lists every run.

Which command reads which file is measured, not assumed: each command runs once on an intact copy of the world while
an audit hook notes every file it opens, and once more with the cache older than the CSVs (a damaged file is newer
than the others, and kit's one comparison of times, in `kit.data.load_competition`, reads CSVs newer than the cache).
A command that never opens a file cannot see the damage done to it (one file is damaged at a time, and the commands
are deterministic), so it is not run in that file's cases."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kit import data
from kit.errors import KitError
from tests.conftest import copy_world, kit_here, log_row, made_once, world_env

pytestmark = pytest.mark.slow

COMMANDS = [
    ["report", "r1"],
    ["predict", "r1"],
    ["blend", "r1", "r1-predict"],
    ["submit", "r1", "--dry-run"],
    ["leaderboard"],
    ["download", "--sample"],
    ["validate", "{subs}/r1.csv"],
    ["train", "--run-id", "r1"],
    ["runs"],
]
# Files that parse but hold the wrong thing, for each kind of file kit reads back.
WRONG = {".json": [b"[]", b'"text"', b'{"recipe": [], "data": 3}'],
         ".npy": [np.zeros(7, np.float32), np.zeros((10, 10), np.float64), np.zeros((2, 3), np.int64)]}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory, sample_run) -> Path:
    """The session's finished 2-fold run r1 on the sample (the seed net, without TTA: `predict` runs one view in
    every case), its re-prediction r1-predict, and a leaderboard row: made once for the whole session, read only
    (every case damages a copy)."""

    def make(root: Path) -> None:
        copy_world(sample_run, root)
        done = kit_here(["predict", "r1"], world_env(root))
        assert done.returncode == 0, done.stderr
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("KIT_SUBMISSIONS_DIR", str(root / "subs"))
            log_row(run_id="r1", file="x.csv", sha256="0" * 64, status="complete", public_score="0.99")
        reads = {" ".join(command): _reads(root, command, root.parent / "faults-probe") for command in COMMANDS}
        (root / ".reads.json").write_text(json.dumps(reads))

    return made_once(tmp_path_factory, "faults-world", make)


_opened: list[str] | None = None  # while `_reads` runs: every path opened in this process
_hooked = False


def _note_open(event: str, args: tuple) -> None:
    if _opened is not None and event == "open" and isinstance(args[0], str | bytes | os.PathLike):
        _opened.append(os.path.abspath(os.fsdecode(args[0])))


def _reads(world: Path, command: list[str], probe: Path) -> list[str]:
    """The world's files that `kit COMMAND` opens when it runs on an intact copy of it, or on one whose CSVs are
    newer than its cache."""
    global _opened, _hooked
    from kit import cli

    if not _hooked:  # a hook stays for the process's life: one, idle while `_opened` is None
        sys.addaudithook(_note_open)
        _hooked = True
    read: set[str] = set()
    for stale_cache in (False, True):
        shutil.rmtree(probe, ignore_errors=True)
        shutil.copytree(world, probe)
        if stale_cache:
            os.utime(probe / "data" / data.CACHE, (0, 0))
        with pytest.MonkeyPatch.context() as mp:
            for key, sub in (("KIT_DATA_DIR", "data"), ("KIT_RUNS_DIR", "runs"), ("KIT_SUBMISSIONS_DIR", "subs")):
                mp.setenv(key, str(probe / sub))
            _opened = []
            try:
                CliRunner().invoke(cli.app, [a.replace("{subs}", str(probe / "subs")) for a in command])
                opened = {Path(p) for p in _opened}
            finally:
                _opened = None
        read |= {str(p.relative_to(probe)) for p in opened & {probe / f for f in _files(world)}}
    shutil.rmtree(probe)
    return sorted(read)


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and "home" not in p.relative_to(root).parts)  # fmt: skip


TRUSTING = ("report", "predict", "blend", "train")  # commands that compute from the arrays they read


def _field_damage(path: Path) -> bytes | np.ndarray:
    """The file as it parses, with damaged values: a JSON file's numbers as text (a fold's accuracy "0.9", `folds`
    "5"); a float array all NaN and inf; an int array (a split) reordered, so it no longer is the run's split."""
    if path.suffix == ".json":

        def text(value):
            if isinstance(value, dict):
                return {k: text(v) for k, v in value.items()}
            if isinstance(value, list):
                return [text(v) for v in value]
            return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

        return json.dumps(text(json.loads(path.read_text()))).encode()
    array = np.load(path)
    if array.dtype.kind == "f":
        return np.where(np.arange(array.size).reshape(array.shape) % 2, np.nan, np.inf).astype(array.dtype)
    return np.roll(array, 1, axis=-1)


@pytest.fixture(autouse=True)
def _float32_afterwards():
    yield
    import keras

    keras.mixed_precision.set_global_policy("float32")  # `kit train` in this process set the policy


SHARDS = 4  # the cases in four tests, which `pytest -n` spreads over its workers


@pytest.mark.parametrize("shard", range(SHARDS))
def test_damaging_any_file_never_ends_in_a_traceback(world, tmp_path, monkeypatch, shard):
    from kit import cli

    runner = CliRunner()
    rng = np.random.default_rng(0)
    files = _files(world)
    assert len(files) > 20 and Path("runs/r1/fold1/model.keras") in files and Path("subs/leaderboard.csv") in files
    reads = json.loads((world / ".reads.json").read_text())
    assert "runs/r1/fold1/model.keras" in reads["predict r1"] and "subs/leaderboard.csv" in reads["leaderboard"]
    assert "runs/r1/config.json" in reads["runs"] and "subs/r1.csv" in reads["validate {subs}/r1.csv"]
    assert "data/test.csv" in reads["predict r1"]  # read when newer than the cache, as a damaged copy is
    failures = []
    cases = [(relative, "damaged") for relative in files]
    typed = [relative for relative in files if relative.suffix in WRONG]  # one wrong-but-parsing variant each, in turn
    cases += [(relative, n % len(WRONG[relative.suffix])) for n, relative in enumerate(typed)]
    cases += [(relative, "fields") for relative in typed]  # right shape or layout, wrong values
    for n, (relative, kind) in list(enumerate(cases))[shard::SHARDS]:
        content = (world / relative).read_bytes()
        if kind == "fields":
            wrong = _field_damage(world / relative)
            how = "its fields damaged (numbers as text)" if relative.suffix == ".json" else "non-finite or reordered"
        elif kind != "damaged":
            wrong = WRONG[relative.suffix][kind]
            how = f"parses, holds {wrong[:20] if isinstance(wrong, bytes) else wrong.shape}"
        elif n % 2:
            damaged, how = content[: len(content) // 2], "cut in half"
        else:
            damaged, how = rng.integers(0, 256, max(1, len(content)), dtype=np.uint8).tobytes(), "random bytes"
        for c, command in enumerate(COMMANDS):
            if str(relative) not in reads[" ".join(command)]:
                continue  # it never opens the file: the damage cannot reach it
            here = tmp_path / f"{n}-{c}"  # each command on its own copy, the one file damaged
            shutil.copytree(world, here)
            for key, sub in (("KIT_DATA_DIR", "data"), ("KIT_RUNS_DIR", "runs"), ("KIT_SUBMISSIONS_DIR", "subs")):
                monkeypatch.setenv(key, str(here / sub))
            target = here / relative
            if kind == "damaged":
                target.write_bytes(damaged)
            elif isinstance(wrong, bytes):
                target.write_bytes(wrong)
            else:
                np.save(target, wrong)
            args = [a.replace("{subs}", str(here / "subs")) for a in command]
            result = runner.invoke(cli.app, args)
            if result.exception is not None and not isinstance(result.exception, SystemExit | KitError | OSError):
                failures.append(f"{relative} ({how}): kit {' '.join(command)}: {result.exception!r}")
            elif kind == "fields" and relative.suffix == ".npy" and command[0] in TRUSTING and result.exit_code == 0:
                failures.append(f"{relative} ({how}): kit {' '.join(command)} used it and exited 0")
            elif relative == Path("subs/r1.csv") and command[0] in ("validate", "submit") and result.exit_code == 0:
                failures.append(f"{relative} ({how}): kit {' '.join(command)} passed a damaged submission")
            elif command == ["runs"] and result.exit_code == 0 and relative.parts[:1] == ("runs",):
                shown = [line for line in result.output.splitlines() if " r1" in line or "r1-predict" in line]
                if len(shown) < 2:  # one damaged run never hides another
                    failures.append(f"{relative} ({how}): kit runs lists {len(shown)} of the 2 runs")
    assert failures == [], "\n".join(failures)
