"""The arrows point one way: no module of kit imports one that imports it back, lazy imports inside functions
included (DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

KIT = Path(__file__).resolve().parents[1] / "kit"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "kit":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kit."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("kit.")}
    return found - {path.stem}


def test_no_import_circles():
    graph = {p.stem: _imports(p) for p in KIT.glob("*.py") if p.stem != "__init__"}
    assert graph["dispatch"] >= {"parallel", "training"} and "parallel" not in graph["training"]
    assert "cli" not in graph["api"] and "render" in graph["cli"] and graph["render"] <= {"progress"}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    circles = sorted(module for module in graph if reaches(module, module, {module}))
    assert circles == [], f"modules on an import circle: {circles}"


def test_help_imports_no_heavy_library():
    """`kit --help` and `kit train --help` answer at once: no numpy, pandas, TensorFlow, Keras or Kaggle client (which
    authenticates on import)."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom kit.cli import app\n"
        "for args in (['--help'], ['train', '--help']):\n"
        "    try:\n        app(args)\n    except SystemExit:\n        pass\n"
        "print('HEAVY', sorted(m for m in ('numpy', 'pandas', 'tensorflow', 'keras', 'kaggle') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=KIT.parent)  # fmt: skip
    assert "HEAVY []" in result.stdout, result.stdout[-500:] + result.stderr[-2000:]


def test_only_the_run_module_spells_the_run_folders_layout():
    """kit.runs owns runs/<id>/: its file names (runs.METRICS, ...) and member folders (runs.member_dir) are spelled
    there and nowhere else in kit/, code and docstrings alike."""
    import re

    names = re.compile(r"metrics\.json|oof\.npy|test_probs\.npy|val_probs\.npy|folds\.npy|config\.json|history\.json|"
                       r"model\.keras|kaggle\.log|/ f\"fold\{")  # fmt: skip
    found = [f"{p.name}:{n}" for p in sorted(KIT.glob("*.py")) if p.stem != "runs"
             for n, line in enumerate(p.read_text().splitlines(), 1) if names.search(line)]  # fmt: skip
    assert found == [], f"the run folder's layout spelled outside kit/runs.py: {found}"
