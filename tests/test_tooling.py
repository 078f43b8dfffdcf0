"""Developer tooling: local pre-commit hooks, and nbstripout keeping only the outputs nbval checks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

from territory_lib.paths import SOURCE_ROOT

BIN = Path(sys.executable).parent


def test_pre_commit_hooks_are_local_and_cover_lint_notebooks_and_types() -> None:
    config = yaml.safe_load((SOURCE_ROOT / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"]  # nothing to download
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert {"ruff-check", "ruff-format", "jupytext-sync", "nbstripout", "mypy"} <= set(hooks)
    result = subprocess.run(
        [BIN / "pre-commit", "validate-config", ".pre-commit-config.yaml"],
        cwd=SOURCE_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_nbstripout_strips_every_output_but_the_checked_ones(tmp_path: Path) -> None:
    notebook = tmp_path / "02.ipynb"
    shutil.copy(SOURCE_ROOT / "notebooks" / "02_define_territories.ipynb", notebook)
    nb = nbformat.read(notebook, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    checked = [cell for cell in code if "nbval-check-output" in cell.metadata.get("tags", [])]
    assert checked and all(cell.outputs for cell in checked)
    for cell in code:  # as saved after Run All in JupyterLab
        cell.execution_count = 1
        if not cell.outputs:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="scratch\n")]
    nbformat.write(nb, notebook)
    config = yaml.safe_load((SOURCE_ROOT / ".pre-commit-config.yaml").read_text())
    hook = next(hook for repo in config["repos"] for hook in repo["hooks"] if hook["id"] == "nbstripout")
    command, *options = hook["entry"].split()
    subprocess.run([BIN / command, *options, notebook], check=True, timeout=120)
    stripped = nbformat.read(notebook, as_version=4)
    kept = {cell.id for cell in stripped.cells if cell.get("outputs")}
    assert kept == {cell.id for cell in checked}
    assert all(cell.execution_count is None for cell in stripped.cells if cell.cell_type == "code")
