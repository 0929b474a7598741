"""The docs a user reads: docs/commands.md is every command's --help as generated (`make docs`), and neither the
README nor docs/ names a folder of the machine a figure was measured on."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def test_the_commands_reference_is_what_the_cli_says(tmp_path):
    generated = tmp_path / "commands.md"
    subprocess.run([sys.executable, "-m", "typer", "kit.cli", "utils", "docs", "--name", "kit", "--title",
                    "kit commands", "--output", str(generated)], check=True, capture_output=True, cwd=ROOT)  # fmt: skip
    assert generated.read_text() == (ROOT / "docs" / "commands.md").read_text(), (
        "docs/commands.md no longer matches the commands' --help: run `make docs` and commit it"
    )


def test_the_readme_and_docs_name_no_folder_of_a_machine():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        found = re.findall(r"(?<![\w.~])/(?:tmp|work|home|root|Users|mnt)/[\w./-]*", text)
        assert not found, f"{path.name} names {found[:3]}"
    assert len((ROOT / "README.md").read_bytes()) < 10_000, "the README is a front page: detail goes to docs/"
