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
