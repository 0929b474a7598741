"""The code file of the kernel `kit train --kaggle` pushes: this module's text, with a call to `main` added at its end
(kit.kaggle_kernel.write_kernel). On Kaggle's GPU image it uses the standard library only until it hands over to
`python -m kit`: it unpacks kit and the run's recipe file (with your own model files), installs the attached
competition data, runs `kit train --recipe`, and packs the run and its submission into PACKED for kit to bring home.
Nothing is installed: Kaggle's own TensorFlow and Keras train. It imports nothing of kit's, so it runs anywhere.
"""

from __future__ import annotations

import base64
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

PACKED = "kit-run.tar.gz"  # the run and its submission, one file (a kernel keeps at most 500 output files)
ABOUT = "kit-kaggle.json"  # where it ran: GPUs, Python, TensorFlow, Keras
RECIPE = "kit-recipe.toml"  # the run's recipe, in the payload's work/ folder beside your own model files


def version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def gpus() -> list[str]:
    try:
        found = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                               text=True, timeout=60)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in found.stdout.splitlines() if line.strip()]


def main(run_id: str, args: list[str], payload: str, work: Path | None = None) -> None:
    """Train run `run_id` with `kit train --recipe RECIPE ARGS` from `payload` (a base64 zip: kit/ and work/), and
    leave PACKED and ABOUT in `work` (the kernel's /kaggle/working, whose files Kaggle keeps). A failed step exits
    with a line naming it (kit's own error is the line before it)."""
    work = work or Path.cwd()
    home = Path(tempfile.mkdtemp(prefix="kit-"))
    zipfile.ZipFile(io.BytesIO(base64.b64decode(payload))).extractall(home / "src")
    # WANDB_MODE: `--track wandb` logs offline into the run's folder (the kernel has no internet), brought home with it
    env = dict(os.environ, PYTHONPATH=str(home / "src"), PYTHONUNBUFFERED="1", COLUMNS="160",
               KIT_DATA_DIR=str(home / "data"), KIT_RUNS_DIR=str(home / "runs"),
               KIT_SUBMISSIONS_DIR=str(home / "subs"), WANDB_MODE="offline")  # fmt: skip
    about = {"python": platform.python_version(), "tensorflow": version("tensorflow"), "keras": version("keras"),
             "gpus": gpus()}  # fmt: skip
    (work / ABOUT).write_text(json.dumps(about))
    print("kit on Kaggle:", json.dumps(about), flush=True)
    for step in (["download"], ["train", "--recipe", RECIPE, *args, "--run-id", run_id]):
        code = subprocess.run([sys.executable, "-m", "kit", *step], env=env, cwd=home / "src" / "work").returncode
        if code:
            sys.exit(f"kit {step[0]} failed on Kaggle (exit {code}): its error is the line before this one")
    with tarfile.open(work / (PACKED + ".part"), "w:gz") as tar:
        # links left out (W&B's latest-run and debug logs point into its run folder, which travels): kit takes
        # only regular files home
        tar.add(home / "runs" / run_id, arcname=run_id, filter=lambda info: None if info.issym() else info)
        if (home / "subs" / (run_id + ".csv")).is_file():  # a CV-only run (--no-predict) makes none
            tar.add(home / "subs" / (run_id + ".csv"), arcname=run_id + ".csv")
    os.replace(work / (PACKED + ".part"), work / PACKED)
    print("kit on Kaggle: packed", PACKED, flush=True)
