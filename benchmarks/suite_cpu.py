"""CPU seconds of every test (its process's and its waited-for children's), to rank the suite by the work it does:
on 2 cores the suite is CPU-bound, so its wall time follows its CPU time, not the tests' own wall times.

    PYTHONPATH=benchmarks .venv/bin/python -m pytest -q -n 3 -p suite_cpu     # appends to suite_cpu.jsonl
    python benchmarks/suite_cpu.py [suite_cpu.jsonl]                            # the heaviest tests, the total

Processes a test starts but does not wait for (a Ray instance's, an orphaned fold worker) are not counted.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

import pytest

OUT = os.environ.get("SUITE_CPU_OUT", "suite_cpu.jsonl")


def _cpu() -> float:
    mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cpu, start = _cpu(), time.time()
    yield
    row = {"id": item.nodeid, "cpu": round(_cpu() - cpu, 1), "wall": round(time.time() - start, 1),
           "start": round(start, 1), "worker": os.environ.get("PYTEST_XDIST_WORKER", "")}  # fmt: skip
    with open(OUT, "a") as f:
        f.write(json.dumps(row) + "\n")


def main() -> None:
    with open(sys.argv[1] if len(sys.argv) > 1 else OUT) as f:
        rows = [json.loads(line) for line in f]
    total = sum(r["cpu"] for r in rows)
    print(f"{len(rows)} tests, {total:.0f} CPU-s")
    for r in sorted(rows, key=lambda r: -r["cpu"])[:30]:
        print(f"{r['cpu']:7.1f} CPU-s {r['cpu'] / total:6.1%} {r['wall']:7.1f} s  {r['id']}")


if __name__ == "__main__":
    main()
