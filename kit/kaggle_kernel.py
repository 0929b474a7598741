"""Training on Kaggle's GPU: `kit train --kaggle` pushes a private script kernel that runs the same `kit train` on
Kaggle's GPU image, waits for it, and brings the run home into runs/<id>/ and submissions/<id>.csv as a local run
lands there.

kit's own code travels inside the kernel's one code file (a zip, base64-encoded), not as a private dataset: one push,
nothing to create or keep in step in the user's account, and the kernel runs exactly the kit that pushed it. The
kernel installs nothing (it runs with the internet off): Kaggle's own TensorFlow and Keras train.

While the kernel runs, the run's config is {"kind": "kaggle", "recipe", "kaggle": {kernel, version, url, args}}:
`kit runs` lists it, and `kit train --kaggle --run-id ID` re-attaches to that version instead of pushing again (or,
after the kernel failed, pushes a new version). The run that comes home replaces it, its config carrying where
it trained ("kaggle": kernel, version, GPUs, Python, TensorFlow and Keras versions).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import kit
from kit import config, files, kaggle_api, kaggle_script, runs, submission
from kit.config import Recipe
from kit.errors import Detached, KaggleError, OfflineError, QuotaError, RunError, UsageError
from kit.kaggle_script import ABOUT, PACKED
from kit.paths import runs_dir, submissions_dir, utc_now
from kit.runs import RunResult

MACHINE = "NvidiaTeslaT4"  # Kaggle's "GPU T4 x2"
CODE_FILE = "kit_train.py"
ENDED = ("complete", "error", "cancel_requested", "cancel_acknowledged")
StatusHook = Callable[[str, float, str], None]  # (status, seconds since the push, the latest epoch line)

# The options of `kit train` the kernel's command line may carry beside its recipe file (booleans: (on, off)).
FLAGS = {"limit": "--limit", "jobs": "--jobs", "mirrored": ("--mirrored", None), "predict": (None, "--no-predict"),
         "time": "--time", "track": "--track"}  # fmt: skip


def command_line(given: dict[str, Any]) -> list[str]:
    """The `kit train` options given (None: not given), as the kernel's command line."""
    args: list[str] = []
    for name, value in given.items():
        flag = FLAGS[name]
        if value is None:
            continue
        if isinstance(flag, tuple):
            chosen = flag[0] if value else flag[1]
            args += [chosen] if chosen else []
        elif isinstance(value, list):  # a repeatable option
            args += [part for item in value for part in (flag, str(item))]
        else:
            args += [flag, str(value)]
    return args


def result(run_dir: Path) -> RunResult:
    """A run brought home, as `kit train` reports a finished run."""
    members = runs.member_dirs(run_dir)
    csv = submissions_dir() / f"{run_dir.name}.csv"
    return RunResult(run_dir, [runs.checked_metrics(p / runs.METRICS, files.read_json(p / runs.METRICS))
                               for p in members], [], runs.load_metrics(run_dir),
                     csv if csv.is_file() else None)  # fmt: skip


def slug(run_id: str) -> str:
    """The kernel's slug for a run: lower case, digits and hyphens, at most 50 characters."""
    return ("kit-" + re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-"))[:50].rstrip("-")


def _payload(run_id: str, recipe: Recipe, model_files: dict[str, Path]) -> bytes:
    """What the kernel unpacks, as a zip: kit's package (its .py files) and work/, the folder `kit train` runs in:
    the run's recipe file and your own model files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(Path(kit.__file__).parent.glob("*.py")):
            archive.write(path, f"kit/{path.name}")
        archive.writestr(f"work/{kaggle_script.RECIPE}", config.to_toml(recipe, f"run {run_id}, for its Kaggle kernel"))
        for name, path in model_files.items():
            archive.writestr(f"work/{name}", path.read_bytes())
    return buffer.getvalue()


def write_kernel(folder: Path, owner: str, run_id: str, args: list[str], recipe: Recipe,
                 model_files: dict[str, Path] | None = None) -> Path:  # fmt: skip
    """The kernel to push, in `folder`: kernel-metadata.json and the code file (kit.kaggle_script, which runs
    `kit train --recipe` on the recipe with `args`; kit and your own model files inside it)."""
    name = slug(run_id)
    payload = base64.b64encode(_payload(run_id, recipe, model_files or {})).decode()
    code = Path(kaggle_script.__file__).read_text(encoding="utf-8")
    code += (f"\n\n# pushed by `kit train --kaggle` (kit {kit.__version__})\nRUN_ID = {run_id!r}\nARGS = {args!r}\n"
             f"PAYLOAD = {payload!r}\n\nif __name__ == \"__main__\":\n    main(RUN_ID, ARGS, PAYLOAD)\n")  # fmt: skip
    (folder / CODE_FILE).write_text(code, encoding="utf-8")
    meta = {"id": f"{owner}/{name}", "title": name, "code_file": CODE_FILE, "language": "python",
            "kernel_type": "script", "is_private": True, "enable_gpu": True, "enable_internet": False,
            "machine_shape": MACHINE, "competition_sources": [kit.COMPETITION], "dataset_sources": [],
            "kernel_sources": [], "model_sources": []}  # fmt: skip
    (folder / "kernel-metadata.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return folder


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def _again(run_id: str) -> str:
    return f"kit train --kaggle --run-id {run_id}"


def pending(run_id: str) -> dict[str, Any] | None:
    """The kernel a run is training in on Kaggle ({"kernel", "version", "url", "args", "status", ...}), or None
    when runs/<id>/ does not exist. A run of this machine's, or one already home, is a RunError: its id is taken."""
    run_dir = runs_dir() / runs.check_id(run_id)
    if not (run_dir / runs.CONFIG).is_file():
        return None
    saved = runs.load_config(run_dir)
    info = saved.get("kaggle")
    if saved.get("kind") != "kaggle" or not isinstance(info, dict):
        where = "came home from Kaggle" if isinstance(info, dict) else "exists on this machine"
        raise RunError(f"Run '{run_id}' {where} already; `kit report {run_id}` shows it. Choose a new --run-id to "
                       "train again on Kaggle.")  # fmt: skip
    return info


def launch(api: Any, run_id: str, args: list[str], recipe: Recipe, timeout_s: int,
           model_files: dict[str, Path] | None = None) -> dict[str, Any]:  # fmt: skip
    """Check the GPU quota, push the kernel (Kaggle stops it after `timeout_s` seconds), and write
    the run's config saying which kernel version trains it. The intent is written first (the kernel's newest
    version before the push), so a push that Ctrl-C or a lost connection interrupts is found again by the next
    `kit train --kaggle --run-id ID` (`resume_push`) instead of pushed twice; your own model files are kept in the
    run beside it, for a push after a failure. Nothing stays when Kaggle refuses."""
    quota = kaggle_api.gpu_quota(api)
    if quota is not None and quota["used_s"] >= quota["allowed_s"]:
        raise QuotaError(f"Your Kaggle GPU quota is used up ({_hours(quota['used_s'])} of "
                         f"{_hours(quota['allowed_s'])} this week); it refreshes weekly (see "
                         "https://www.kaggle.com/settings): train here meanwhile, or wait.")  # fmt: skip
    owner = kaggle_api.username(api)
    kernel = f"{owner}/{slug(run_id)}"
    info = {"kernel": kernel, "version": 0, "url": f"https://www.kaggle.com/code/{kernel}", "args": args,
            "pushed_utc": utc_now(), "pushed_at": time.time(), "status": "pushing", "gpu_quota": quota,
            "timeout_s": timeout_s, "versions_before": kaggle_api.kernel_version(api, kernel)}  # fmt: skip
    run_dir = runs.create(run_id, reuse=True)  # the run's own id: the kernel's slug is made of it
    before = runs.load_config(run_dir) if (run_dir / runs.CONFIG).is_file() else None
    _record(run_id, recipe, info)
    try:
        for name, path in (model_files or {}).items():
            files.write_atomic(run_dir / name, path.read_bytes())
        with tempfile.TemporaryDirectory(prefix="kit-kernel-") as folder:
            kernel = write_kernel(Path(folder), owner, run_id, args, recipe, model_files)
            pushed = kaggle_api.push_kernel(api, kernel, timeout_s)
        if not pushed["version"]:
            raise KaggleError("Kaggle accepted the kernel but gave no version number; try again.")
    except (OfflineError, KeyboardInterrupt):
        raise  # it may have been pushed: the intent stays for the next command to resolve
    except BaseException:  # Kaggle said no: nothing was pushed, nothing stays
        if before is None:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            runs.write_config(run_dir, **before)
        raise
    info.update(version=pushed["version"], url=pushed["url"] or info["url"], status="queued")
    _record(run_id, recipe, info)
    return info


def _record(run_id: str, recipe: Recipe, info: dict[str, Any]) -> None:
    runs.write_config(runs_dir() / run_id, "kaggle", created_utc=info["pushed_utc"], recipe=recipe.to_dict(),
                      kaggle=info)  # fmt: skip


def resume_push(api: Any, run_id: str, recipe: Recipe, info: dict[str, Any]) -> dict[str, Any] | None:
    """A push that was interrupted (its intent recorded, no version): the version it made, when the kernel has one
    newer than before it (recorded as queued), else None (nothing was pushed)."""
    newest = kaggle_api.kernel_version(api, info["kernel"])
    if newest <= int(info.get("versions_before") or 0):
        return None
    info = {**info, "version": newest, "status": "queued"}
    _record(run_id, recipe, info)
    return info


class _LogTail:
    """The latest epoch line of the kernel's log, read from Kaggle's log stream in a thread; best effort (the status
    polls go on whatever happens to the stream)."""

    def __init__(self, api: Any, kernel: str, version: int):
        self.latest = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, args=(api, kernel, version), daemon=True)
        self._thread.start()

    def _follow(self, api: Any, kernel: str, version: int) -> None:
        while not self._stop.is_set():
            try:
                for line in kaggle_api.kernel_log_lines(api, kernel, version):
                    if " epoch " in line and line.startswith("fold "):
                        self.latest = line.strip()
                    if self._stop.is_set():
                        return
            except Exception:  # noqa: BLE001 - no live log is no reason to stop waiting
                pass
            self._stop.wait(10)

    def stop(self) -> None:
        self._stop.set()


def wait(api: Any, run_id: str, info: dict[str, Any], on_status: StatusHook | None = None) -> dict[str, str]:
    """Poll the kernel version until it ends (kaggle_api.poll's pace); returns its last status. Losing Kaggle
    meanwhile is an OfflineError saying the kernel keeps running and how to re-attach."""
    tail = _LogTail(api, info["kernel"], info["version"])

    def ask() -> dict[str, str]:
        try:
            return kaggle_api.kernel_status(api, info["kernel"], info["version"])
        except OfflineError:
            where = f"kernel {info['kernel']} version {info['version']}"
            raise OfflineError(f"Lost Kaggle while waiting for {where}; it keeps running there: "
                               f"`{_again(run_id)}` re-attaches to it.") from None  # fmt: skip

    def show(state: dict[str, str]) -> None:
        if on_status is not None:
            on_status(state["status"], time.time() - float(info.get("pushed_at", time.time())), tail.latest)

    try:
        return kaggle_api.poll(ask, lambda state: state["status"] in ENDED, on_poll=show)
    finally:
        tail.stop()


def _log_text(raw: str) -> str:
    """Kaggle keeps a kernel's log as a JSON list of {stream_name, time, data}; plain text is taken as it is."""
    try:
        events = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(events, list):
        return raw
    return "".join(str(e.get("data", "")) for e in events if isinstance(e, dict))


def _reason(log: str, failure: str) -> str:
    """Why a kernel failed: kit's own one-line error from its log, else Kaggle's failure message."""
    errors = [line.strip() for line in log.splitlines() if line.strip().startswith("error:")]
    if errors:
        return errors[-1].removeprefix("error:").strip()
    return failure or "Kaggle gave no reason"


def _extract(packed: Path, into: Path, run_id: str) -> None:
    """The packed run: only regular files and folders under <id>/, and <id>.csv (nothing that lands elsewhere)."""
    try:
        with tarfile.open(packed, "r:gz") as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                inside = parts and (parts[0] == run_id or member.name == f"{run_id}.csv") and ".." not in parts
                if not inside or not (member.isfile() or member.isdir()) or Path(member.name).is_absolute():
                    raise RunError(f"The kernel's {PACKED} holds {member.name!r}, which kit does not write; it was "
                                   "not used.")  # fmt: skip
            tar.extractall(into, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise RunError(f"The kernel's {PACKED} is damaged ({exc}); `{_again(run_id)}` downloads it again.") from None


def bring_home(api: Any, run_id: str, info: dict[str, Any]) -> Path:
    """Download the finished kernel's output, check it, and write runs/<id>/ and submissions/<id>.csv as a local run
    writes them: every file atomically, the members' metrics after their other files, the run's metrics
    after those, and its config (which says the run is no longer on Kaggle) last. Returns the run directory."""
    run_dir = runs_dir() / run_id
    with tempfile.TemporaryDirectory(prefix=f".{run_id}.kaggle-", dir=runs_dir()) as tmp:
        out, staged = Path(tmp) / "output", Path(tmp) / "staged"
        fetched = kaggle_api.kernel_output(api, info["kernel"], info["version"], out, _again(run_id))
        logs = [f for f in fetched if f.suffix == ".log"]
        if logs:
            files.write_atomic(run_dir / runs.KAGGLE_LOG, _log_text(logs[0].read_text(errors="replace")).encode())
        if not (out / PACKED).is_file():
            raise KaggleError(f"Kernel {info['kernel']} version {info['version']} completed without {PACKED}; its "
                              f"log is in {run_dir / runs.KAGGLE_LOG}.")  # fmt: skip
        _extract(out / PACKED, staged, run_id)
        home = staged / run_id
        config = runs.load_config(home)
        metrics = runs.load_metrics(home)
        if config.get("kind") != "train" or metrics is None:
            raise RunError(f"The kernel's run {run_id} is not a finished training run; it was not used.")
        csv = staged / f"{run_id}.csv"
        test_rows = (config.get("data") or {}).get("test_rows")
        if not isinstance(test_rows, int):
            raise RunError(f"The kernel's run {run_id} does not say what data it trained on; it was not used.")
        cv_only = not runs.predicts_test(config)  # `--no-predict`: no test prediction, no submission
        if not cv_only:
            submission.validate(csv, test_rows, "the kernel's run was not used")
        about = files.read_json(out / ABOUT) if (out / ABOUT).is_file() else {}
        trained = {k: info[k] for k in ("kernel", "version", "url", "pushed_utc")}
        config["kaggle"] = {**trained, **(about if isinstance(about, dict) else {}), "home_utc": utc_now()}
        order = sorted((p for p in home.rglob("*") if p.is_file() and p.name != runs.CONFIG),
                       key=lambda p: (p.name == runs.METRICS, p.parent == home, str(p)))  # fmt: skip
        for path in order:
            target = run_dir / path.relative_to(home)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
        if not cv_only:
            files.write_atomic(submissions_dir() / f"{run_id}.csv", csv.read_bytes())
        runs.write_config(run_dir, **config)
    return run_dir


def failed(api: Any, run_id: str, info: dict[str, Any], state: dict[str, str]) -> KaggleError:
    """The error for a kernel that ended without completing: its log kept (runs.KAGGLE_LOG), kit's own error
    line (or Kaggle's failure message) as the reason; the run is marked so the next `kit train --kaggle --run-id
    ID` pushes a new version."""
    run_dir = runs_dir() / run_id
    log = ""
    # the log is worth trying for, not required
    with (
        tempfile.TemporaryDirectory(prefix=f".{run_id}.kaggle-", dir=runs_dir()) as tmp,
        suppress(KaggleError, OfflineError),
    ):
        fetched = kaggle_api.kernel_output(api, info["kernel"], info["version"], Path(tmp), _again(run_id))
        for f in fetched:
            if f.suffix == ".log":
                log = _log_text(f.read_text(errors="replace"))
                files.write_atomic(run_dir / runs.KAGGLE_LOG, log.encode())
    saved = runs.load_config(run_dir)
    saved["kaggle"] = {**info, "status": state["status"]}
    runs.write_config(run_dir, **saved)
    kept = f"; its log is in {run_dir / runs.KAGGLE_LOG}" if log else ""
    limit = info.get("timeout_s")
    ran = time.time() - float(info.get("pushed_at", time.time()))
    if isinstance(limit, int | float) and ran >= limit:  # queued time counts here, not there: never too early
        return KaggleError(f"Kaggle stopped kernel {info['kernel']} version {info['version']} at its run-time limit "
                           f"({limit / 60:.0f} min){kept}. Give it longer with `{_again(run_id)} --kaggle-timeout "
                           f"MINUTES` (Kaggle's own limit is 720), or train fewer folds or epochs.")  # fmt: skip
    how = "was cancelled" if state["status"].startswith("cancel") else "failed"
    return KaggleError(f"Kernel {info['kernel']} version {info['version']} {how}: {_reason(log, state['failure'])}"
                       f"{kept}. Fix that and run `{_again(run_id)}` to push it again.")  # fmt: skip


def _check_owner(api: Any, run_id: str, info: dict[str, Any]) -> None:
    """A run's kernel is re-attached to only by its owner: Kaggle shows a private kernel to nobody else (a 403 on
    every call), so a run folder from a teammate's account is one line, not a 403 half way."""
    owner, me = str(info.get("kernel", "")).partition("/")[0], kaggle_api.username(api)
    if owner.lower() != me.lower():
        raise KaggleError(f"Run '{run_id}' is training in kernel {info.get('kernel')}, which belongs to Kaggle user "
                          f"{owner}, and you are signed in as {me}: only {owner}'s credentials can bring it home; "
                          "choose a new --run-id to train it in your own account.")  # fmt: skip


def train(run_id: str, args: list[str], recipe: Recipe, timeout_s: int, on_status: StatusHook | None = None,
          on_push: Callable[[dict[str, Any], bool], None] | None = None,
          model_files: dict[str, Path] | None = None) -> Path:  # fmt: skip
    """`kit train --recipe RECIPE ARGS --run-id ID` on Kaggle's GPU (`model_files`: your own models', which travel
    with it): push it (or re-attach to the version already training that run, given the same recipe and options),
    wait, and bring the run home; returns runs/<id>/. Kaggle stops the kernel after `timeout_s` seconds; Ctrl-C
    stops the waiting, never the kernel (Detached)."""
    info = pending(run_id)
    if info is not None and info.get("status") not in ("error", "cancel_requested", "cancel_acknowledged"):
        differ = config.differences(config.from_dict(runs.load_config(runs_dir() / run_id).get("recipe", {})), recipe)
        if args and info.get("args") != args:
            differ.append(f"options {' '.join(info.get('args') or []) or 'none'} vs {' '.join(args)}")
        if differ:
            raise UsageError(f"Run '{run_id}' is already training on Kaggle with other options ({'; '.join(differ[:3])}"
                             f"); re-attach with `{_again(run_id)}` alone, or choose a new --run-id.")  # fmt: skip
        attached = True
    else:
        attached = False
    kaggle_api.require_client(kaggle_api.KERNELS_CLIENT, "kit train --kaggle")
    api = kaggle_api.client()
    if attached and info is not None:
        _check_owner(api, run_id, info)
    if attached and info is not None and info.get("status") == "pushing":  # an interrupted push: made, or not?
        info = resume_push(api, run_id, recipe, info)
        attached = info is not None
        args = args or (pending(run_id) or {}).get("args") or []
    if not attached:
        info = launch(api, run_id, args, recipe, timeout_s, model_files)
    assert info is not None
    if on_push is not None:
        on_push(info, attached)
    try:
        state = wait(api, run_id, info, on_status)
    except KeyboardInterrupt:
        raise Detached(f"Stopped waiting; kernel {info['kernel']} version {info['version']} keeps running on Kaggle "
                       f"({info['url']}): `{_again(run_id)}` re-attaches to it and brings the run home, and its "
                       "page's Cancel button stops it.") from None  # fmt: skip
    if state["status"] != "complete":
        raise failed(api, run_id, info, state)
    return bring_home(api, run_id, info)  # a folder kit cannot write to is kit.cli.main's one line
