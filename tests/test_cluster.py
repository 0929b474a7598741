"""`kit train --ray`: folds as Ray tasks on a real multi-node Ray cluster on 127.0.0.1 (ray.cluster_utils.Cluster: a
head and two nodes of one CPU each, token authentication on), a fold that fails, and the door checks."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kit import cluster, data, locks
from kit.errors import OfflineError, UsageError
from tests.conftest import ROOT, run_kit

pytestmark = pytest.mark.usefixtures("one_cluster_at_a_time")

# Ray keeps every address of a cluster on 127.0.0.1 with this (meant for Windows and macOS, where multi-node clusters
# are opt-in); tests talk to loopback only. Ray starts its workers at nice 15: beside the suite's other workers (nice
# 0) a task got so little CPU that `import keras` took 238 s instead of 7.5 (the 2-fold run: 196 s beside two busy
# loops, 28 s idle), so the tests' Ray workers run at the suite's priority.
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0"}
FOLD_FILES = {"history.json", "metrics.json", "model.keras", "test_probs.npy", "val_probs.npy"}


@pytest.fixture(scope="module")
def one_cluster_at_a_time(tmp_path_factory):
    """A lock the pytest-xdist workers share, held while this module's tests run on one of them: two Ray clusters at
    once on 2 cores time out. (xdist's own xdist_group does not group under pytest 9.2, whose node ids it cannot
    change.)"""
    with locks.exclusive(tmp_path_factory.getbasetemp().parent / "ray-tests.lock"):
        yield


# Every Python process of the test cluster (its nodes' and the tasks' workers, which inherit its environment) starts
# with this sitecustomize: while the file KIT_TEST_FAIL_FOLD names exists, fold 1 trains for real, then raises. The
# fault is the test's; kit's tasks carry no hook for it.
_FAIL_FOLD_ONE = """
import os
from kit import training
_real = training.train_member
def _failing(r, comp, folds, member, *args, **kwargs):
    metrics = _real(r, comp, folds, member, *args, **kwargs)
    if member == 1 and os.path.exists(os.environ["KIT_TEST_FAIL_FOLD"]):
        raise ValueError("the node ran out of something")
    return metrics
training.train_member = _failing
"""


@pytest.fixture(scope="module")
def two_nodes(one_cluster_at_a_time, tmp_path_factory):
    """A head (no CPUs: it only runs Ray's control plane) and two worker nodes of one CPU each; (address, the
    environment a driver needs: loopback and the token, the file whose existence fails fold 1 on the nodes)."""
    hooked = tmp_path_factory.mktemp("hooked")
    (hooked / "sitecustomize.py").write_text(_FAIL_FOLD_ONE)
    fail = hooked / "fail-fold-1"
    env = {**LOOPBACK, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "PYTHONPATH": f"{hooked}:{ROOT}", "KIT_TEST_FAIL_FOLD": str(fail)}  # fmt: skip
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # before Ray is imported: it reads them then
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        for _ in range(2):
            nodes.add_node(num_cpus=1)
        nodes.wait_for_nodes()
        yield nodes.address, env, fail
    finally:
        nodes.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def sample(env):
    data.install_sample(data.data_dir())
    return data.load_competition()


@pytest.mark.slow
def test_a_two_fold_run_trains_its_folds_on_two_nodes(env, sample, two_nodes):
    address, ray_env, _ = two_nodes
    args = ["train", "--folds", "2", "--epochs", "1", "--limit", "600", "--run-id", "on-ray", "--ray", address]
    result = run_kit(args, {**env, **ray_env}, timeout=600)  # a 3-node cluster on cores the other tests share
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ray cluster" in result.stdout and "3 node(s), 2 CPUs, 0 GPUs" in result.stdout

    run = Path(env["KIT_RUNS_DIR"]) / "on-ray"
    nodes = []
    for fold in (0, 1):
        assert {p.name for p in (run / f"fold{fold}").iterdir()} == FOLD_FILES  # what a local fold writes
        metrics = json.loads((run / f"fold{fold}" / "metrics.json").read_text())
        nodes.append(metrics["node"]["id"])
        assert metrics["node"]["address"] == "127.0.0.1" and metrics["val_rows"] == 300
        assert np.load(run / f"fold{fold}" / "val_probs.npy").shape == (300, 10)
    assert nodes[0] != nodes[1]  # one fold on each node
    oof = np.load(run / "oof.npy")
    assert oof.shape == (600, 10) and not np.isnan(oof).any()  # every row once
    assert np.load(run / "test_probs.npy").shape == (len(sample.test_images), 10)
    valid = run_kit(["validate", str(Path(env["KIT_SUBMISSIONS_DIR"]) / "on-ray.csv")], env)
    assert valid.returncode == 0, valid.stdout + valid.stderr


@pytest.mark.slow
def test_your_own_model_file_travels_with_the_tasks(env, sample, two_nodes, tmp_path):
    """`--model FILE.py:build --ray`: the tasks train from the run's copy of the file, sent with them (the nodes run
    elsewhere than the user's folder), and its custom layer loads back for `kit predict`."""
    address, ray_env, _ = two_nodes
    own = tmp_path / "mine" / "nets.py"
    own.parent.mkdir()
    own.write_bytes((ROOT / "tests" / "own_model.py").read_bytes())
    args = ["train", "--model", f"{own}:build", "--folds", "2", "--epochs", "1", "--limit", "400", "--run-id",
            "own-ray", "--ray", address]  # fmt: skip
    result = run_kit(args, {**env, **ray_env}, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    run = Path(env["KIT_RUNS_DIR"]) / "own-ray"
    assert {p.name for p in (run / "fold0").iterdir()} == FOLD_FILES and (run / "nets.py").is_file()
    own.unlink()
    assert run_kit(["predict", "own-ray"], env).returncode == 0


@pytest.mark.slow
def test_a_failed_fold_is_one_line_the_other_is_kept_and_the_rerun_completes(env, sample, two_nodes):
    address, ray_env, fail = two_nodes
    args = ["train", "--model", "seed", "--folds", "2", "--epochs", "1", "--limit", "400", "--run-id", "flaky",
            "--ray", address]  # fmt: skip
    fail.touch()
    try:
        failed = run_kit(args, {**env, **ray_env}, timeout=600)
    finally:
        fail.unlink()
    assert failed.returncode == 8, failed.stdout + failed.stderr
    message = failed.stderr.strip().splitlines()[-1]
    assert message.startswith("error: Fold 1 failed on ") and "(127.0.0.1): ValueError: the node ran out" in message
    assert "The completed folds are kept; re-run the same command" in message and "Traceback" not in failed.stderr
    run = Path(env["KIT_RUNS_DIR"]) / "flaky"
    assert (run / "fold0" / "metrics.json").is_file() and not (run / "fold1").exists()

    again = run_kit(args, {**env, **ray_env}, timeout=600)  # the same command, fold 1 no longer failing
    assert again.returncode == 0, again.stdout + again.stderr
    assert "fold 2/2" in again.stdout and "fold 1/2" not in again.stdout  # only the missing fold trained
    assert json.loads((run / "metrics.json").read_text())["cv_rows"] == 400


def test_the_door_checks(env, monkeypatch):
    with pytest.raises(UsageError, match=r"--ray 'nonsense': must be local, auto, HOST:PORT or ray://HOST:PORT"):
        cluster.check("nonsense")
    with pytest.raises(OfflineError, match=r"No Ray cluster answers at --ray 127.0.0.1:1 \(Connection refused\)"):
        cluster.check("127.0.0.1:1")
    # one CPU share per member, such that the last round still fills the CPUs, and fits on a node; one GPU a member
    # where there are GPUs
    assert cluster.task_resources(cluster.Cluster("x", 1, 2, 0, 2), 5) == {"num_cpus": round(2 / 3, 4)}
    assert cluster.task_resources(cluster.Cluster("x", 2, 2, 0, 1), 2) == {"num_cpus": 1.0}
    assert cluster.task_resources(cluster.Cluster("x", 1, 8, 0, 8), 1) == {"num_cpus": 8.0}
    assert cluster.task_resources(cluster.Cluster("x", 2, 2, 0, 1), 1) == {"num_cpus": 1.0}  # 2 would never start
    assert cluster.task_resources(cluster.Cluster("x", 3, 12, 0, 4), 2) == {"num_cpus": 4.0}
    assert cluster.task_resources(cluster.Cluster("x", 4, 64, 8, 16), 5) == {"num_gpus": 1, "num_cpus": 1}


_LOCAL_ADDRESSES = """
from kit import cluster
cluster.check("local")  # what `kit train --ray local` does at the door, before connecting
with cluster.connect("local"):
    import ray
    print("ADDRESSES", sorted({n["NodeManagerAddress"] for n in ray.nodes()}))
"""


@pytest.mark.slow
def test_a_local_instance_listens_on_loopback_only(env):
    clean = {k: v for k, v in env.items() if not k.startswith("RAY_")}
    result = subprocess.run([sys.executable, "-c", _LOCAL_ADDRESSES], env=clean, capture_output=True, text=True,
                            timeout=120, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ADDRESSES ['127.0.0.1']" in result.stdout


@pytest.mark.slow
def test_without_ray_the_install_command(env):
    code = "import sys; sys.modules['ray'] = None; sys.argv = ['kit'] + sys.argv[1:]; from kit.cli import main; main()"
    args = ["train", "--folds", "2", "--ray", "local", "--run-id", "x"]
    result = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--ray needs Ray on this machine: pip install 'kit[ray]'" in result.stderr
    assert "Traceback" not in result.stderr
    for both in (["--jobs", "2"], ["--mirrored"]):
        refused = run_kit(["train", "--ray", "local", *both], env)
        assert refused.returncode == 2 and "--ray places the folds itself" in refused.stderr
