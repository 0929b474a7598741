"""How close `kit train --time` lands to its budget, on this machine: the wall time of timed runs over their budget.

    python benchmarks/time_budget.py [--time 2m] [--limit 3000] [--folds 2]

Runs `kit train --time T --limit N --folds K --no-predict` twice in a runs folder of its own: first with no run to
recall (the pace measured on the spot), then recalling the first run's pace. Each prints the epochs it chose; this
prints each run's wall over the budget (the issue's bar: inside 1.25x), the ratios last as JSON. Uses the installed
data (KIT_DATA_DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time", default="2m")
    parser.add_argument("--limit", type=int, default=3000)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--keep", help="Keep the runs in this folder (default: a temporary one, removed).")
    args = parser.parse_args()
    from kit.budget import parse_duration

    budget = parse_duration(args.time)
    ratios = {}
    with tempfile.TemporaryDirectory() as scratch:
        runs = args.keep or scratch
        env = {**os.environ, "KIT_RUNS_DIR": runs, "KIT_SUBMISSIONS_DIR": os.path.join(runs, "subs")}
        for name in ("measured", "recalled"):
            command = [sys.executable, "-m", "kit", "train", "--time", args.time, "--limit", str(args.limit),
                       "--folds", str(args.folds), "--no-predict", "--run-id", name]  # fmt: skip
            start = time.perf_counter()
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - start
            chose = re.search(r"^--time .*$", done.stdout, re.M)
            print(f"{name}: {chose.group(0) if chose else done.stderr.strip()[-300:]}")
            print(f"{name}: exit {done.returncode}, wall {wall:.0f} s = {wall / budget:.2f}x the budget", flush=True)
            ratios[name] = round(wall / budget, 3)
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
