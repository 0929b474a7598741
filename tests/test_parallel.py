"""kit.parallel: how folds share the cores, and the worker scheduler (with stand-in worker commands)."""

from __future__ import annotations

import json
import sys
import time

import pytest

from kit import config, parallel
from kit.device import Device
from kit.errors import RunError
from kit.progress import Progress


def test_threads_give_the_last_worker_every_core():
    # 5 folds, 2 jobs, 2 cores: four folds run in pairs on one thread each, the fifth alone on two.
    plan = [parallel.threads_for(2, 2, not_started) for not_started in (5, 4, 3, 2, 1)]
    assert plan == [1, 1, 1, 1, 2]
    assert parallel.threads_for(16, 5, 5) == 3 and parallel.threads_for(1, 4, 4) == 1


def test_auto_jobs_only_splits_cpu_runs_with_several_folds(monkeypatch):
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    cpu = Device("tensorflow", "cpu", ["cpu"], "float32", "float32", False)
    gpu = Device("tensorflow", "gpu", ["gpu:0"], "float16", "mixed_float16", True)
    assert parallel.auto_jobs(cpu, 4) == 2 and parallel.auto_jobs(cpu, 1) == 1
    assert parallel.auto_jobs(cpu, 5) == 3  # 3 + 2: the fifth fold does not run alone
    assert parallel.auto_jobs(gpu, 5) == 2  # folds share the GPU, one worker per core at most
    assert parallel.auto_jobs(Device("tensorflow", "cpu", ["a", "b"], "float32", "float32", False, object()), 5) == 1


def _gpus(n: int, strategy=None) -> Device:
    return Device("tensorflow", "gpu", [f"/device:GPU:{i}" for i in range(n)], "float16", "mixed_float16", True,
                  strategy)  # fmt: skip


def test_one_fold_per_gpu(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert parallel.auto_jobs(_gpus(2), 5) == 2 and parallel.auto_jobs(_gpus(4), 3) == 3
    assert parallel.auto_jobs(_gpus(8), 1) == 1 and parallel.auto_jobs(_gpus(2, strategy=object()), 5) == 1
    # up to FOLDS_PER_GPU folds share each GPU, as many workers as cores at most (never fewer than one per GPU)
    assert parallel.auto_jobs(_gpus(1), 5, n_cores=16) == 5 and parallel.auto_jobs(_gpus(1), 15, n_cores=16) == 5
    assert parallel.auto_jobs(_gpus(2), 15, n_cores=16) == 10 and parallel.auto_jobs(_gpus(2), 15, n_cores=4) == 4
    assert parallel.auto_jobs(_gpus(4), 15, n_cores=2) == 4
    assert parallel.plan(_gpus(2), 2, 5) == "2 folds at once, one per GPU"
    assert parallel.plan(_gpus(2), 4, 5) == "4 folds at once, sharing 2 GPU(s)"
    assert parallel.plan(_gpus(1), 1, 5) == "one fold at a time"
    assert "MirroredStrategy" in parallel.plan(_gpus(2, strategy=object()), 1, 5)
    assert parallel.worker_gpus(_gpus(2)) == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 3")  # the parent was itself given GPUs 2 and 3
    assert parallel.worker_gpus(_gpus(2)) == ["2", "3"]
    assert parallel.worker_gpus(_gpus(2, strategy=object())) == []
    cpu = Device("tensorflow", "cpu", ["cpu"], "float32", "float32", False)
    assert parallel.worker_gpus(cpu) == [] and "CUDA_VISIBLE_DEVICES" in parallel.worker_env(None)  # inherited as is
    env = parallel.worker_env("3")
    assert env["CUDA_VISIBLE_DEVICES"] == "3" and env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"


@pytest.mark.parametrize(("folds", "gpus", "jobs"), [(5, 2, 2), (3, 4, 3), (4, 2, 4)])
def test_workers_are_pinned_to_their_own_gpu(tmp_path, folds, gpus, jobs):
    """K folds on N GPUs: every worker starts with one CUDA id, and no GPU runs more workers at once than its share
    (one each while jobs <= N; two each with --jobs 4 on 2 GPUs)."""
    script = """
import os, time
tell(0, start=time.time(), gpu=os.environ["CUDA_VISIBLE_DEVICES"], prealloc=os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"])
time.sleep(0.4)
tell(1, end=time.time())
"""
    ids = [str(i) for i in range(gpus)]
    events, launched = [], []  # launched: the folds in the order their workers started

    def command(fold, threads):
        launched.append(fold)
        return _fake_worker(script)(fold, threads)

    parallel.run_workers(command, list(range(folds)), jobs, tmp_path, events.append, n_cores=2, gpus=ids)
    starts = {e.member: e.logs for e in events if e.epoch == 0}
    ends = {e.member: e.logs["end"] for e in events if e.epoch == 1}
    assert sorted(starts) == sorted(ends) == list(range(folds))
    assert {e["gpu"] for e in starts.values()} == set(ids[: min(folds, gpus)])
    assert all(e["prealloc"] == "false" for e in starts.values())
    share = -(-jobs // gpus)
    for gpu in ids:
        spans = [(starts[k]["start"], ends[k]) for k in starts if starts[k]["gpu"] == gpu]
        most = max((sum(a <= t < b for a, b in spans) for t, _ in spans), default=0)
        assert most <= share, (gpu, spans)
    first = [starts[k]["gpu"] for k in launched[: min(jobs, gpus)]]
    assert len(set(first)) == len(first)  # the first workers launched went to different GPUs


def test_fill_cores_keeps_the_last_round_full():
    assert [parallel.fill_cores(folds, 2) for folds in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 3, 2, 3, 2, 4]
    assert parallel.fill_cores(10, 4) == 5 and parallel.fill_cores(8, 4) == 4 and parallel.fill_cores(5, 1) == 1
    for folds in range(1, 30):
        for n_cores in (1, 2, 3, 4, 8, 16):
            jobs = parallel.fill_cores(folds, n_cores)
            rounds = _rounds(folds, jobs)
            assert min(folds, n_cores) <= jobs <= folds
            assert rounds[-1] >= min(folds, n_cores)  # the last round still has a worker per core
            # and no fewer workers (down to one per core) would do that
            assert all(_rounds(folds, fewer)[-1] < min(folds, n_cores) for fewer in range(min(folds, n_cores), jobs))


def _rounds(folds: int, jobs: int) -> list[int]:
    """How many folds train at once in each round when `jobs` workers take them in order."""
    rounds = []
    while folds > 0:
        rounds.append(min(jobs, folds))
        folds -= rounds[-1]
    return rounds


_TELL = """
from kit.progress import Progress, to_line
def tell(epoch, **logs):
    print(to_line(Progress(FOLD, 3, epoch, 1, logs=logs)), flush=True)
"""


def _fake_worker(script: str):
    """A worker command running `script` with FOLD and THREADS set, and tell(epoch, **logs) printing a Progress."""
    return lambda fold, threads: [sys.executable, "-c", f"FOLD, THREADS = {fold}, {threads}\n{_TELL}\n{script}"]


def test_run_workers_forwards_events_and_keeps_to_the_job_limit(tmp_path):
    script = """
import time
from kit.progress import LINE
print("TensorFlow noise on stdout")
print(LINE + "{garbled")
print(LINE + '{"member": 0}')  # JSON, but not a Progress
tell(0, threads=THREADS, start=time.time())
time.sleep(0.5)
tell(1, end=time.time())
"""
    events = []
    parallel.run_workers(_fake_worker(script), [0, 1, 2], 2, tmp_path, events.append, n_cores=2)
    assert all(isinstance(e, Progress) for e in events) and len(events) == 6  # the garbled lines cost nothing
    starts = {e.member: e.logs for e in events if e.epoch == 0}
    ends = {e.member: e.logs["end"] for e in events if e.epoch == 1}
    assert sorted(starts) == sorted(ends) == [0, 1, 2]
    assert [starts[k]["threads"] for k in range(3)] == [1, 1, 2]
    assert starts[2]["start"] >= min(ends[0], ends[1])  # the third waited for a free slot
    assert starts[1]["start"] < ends[0]  # the first two ran at once


def test_a_failing_worker_stops_the_others_and_names_its_log(tmp_path):
    script = """
import sys, time
if FOLD == 1:
    sys.stderr.write("Traceback...\\nerror: the data is gone\\n")
    sys.exit(3)
time.sleep(30)
"""
    begin = time.time()
    with pytest.raises(RunError, match=r"Fold 1 failed \(exit 3\): error: the data is gone .*fold1\.log"):
        parallel.run_workers(_fake_worker(script), [0, 1, 2], 2, tmp_path, n_cores=2)
    assert time.time() - begin < 20  # fold 0 was stopped, not waited for; fold 2 never started
    assert not (tmp_path / "fold2.log").exists()


def test_worker_reports_user_errors_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KIT_RUNS_DIR", str(tmp_path))
    (tmp_path / "missing").mkdir()
    (tmp_path / "missing" / "config.json").write_text(json.dumps({"recipe": config.recipe("seed").to_dict()}))
    command = parallel.worker_command("missing", 0, 1, {"path": str(tmp_path / "nodata"), "rows": None})
    assert command[1:3] == ["-m", "kit.parallel"]
    assert parallel.main(command[3:]) == 1
    assert "error: No competition data in" in capsys.readouterr().err
