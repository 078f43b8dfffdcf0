"""The `territory` kernel, step notebooks that test alone, and a fresh run without stray outputs."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from territory_lib import runner
from territory_lib.paths import REPORTS_ENV_VAR, SOURCE_ROOT
from territory_lib.steps import STEPS


def test_the_territory_kernel_is_installed_and_runs_this_environment() -> None:
    spec = KernelSpecManager().get_kernel_spec("territory")
    assert spec.display_name == "Territory" and spec.language == "python"
    result = subprocess.run(
        [spec.argv[0], "-c", "import ipykernel, territory_lib; print(territory_lib.__name__)"],
        capture_output=True,
        text=True,
        timeout=120,
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
    )
    assert result.stdout.strip() == "territory_lib", result.stderr
    makefile = (SOURCE_ROOT / "Makefile").read_text()
    assert 'ipykernel install --sys-prefix --name territory --display-name "Territory"' in makefile


def test_notebooks_runner_and_nbval_use_the_territory_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    for step in STEPS:
        assert json.loads(step.path.read_text())["metadata"]["kernelspec"]["name"] == "territory"
    assert runner.kernel_name() == "territory"
    options = tomllib.loads((SOURCE_ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--nbval-kernel-name territory" in options["addopts"]
    # Another environment's `territory` kernel (installed with --user) would run its own library.
    monkeypatch.setattr(sys, "executable", "/elsewhere/venv/bin/python")
    assert runner.kernel_name() == "python3"
    monkeypatch.undo()
    monkeypatch.setattr(runner, "KERNEL_NAME", "territory-not-installed")  # a plain pip install
    assert runner.kernel_name() == "python3"


@pytest.mark.slow
def test_a_step_notebook_test_runs_alone(tmp_path: Path) -> None:
    """Step 2's notebook test alone: the session builds step 1's results first."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "notebooks/02_define_territories.ipynb",
        ],
        cwd=SOURCE_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "passed" in result.stdout and "failed" not in result.stdout and "error" not in result.stdout


@pytest.mark.slow
def test_a_fresh_notebook_run_shows_no_warnings_or_stray_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REPORTS_ENV_VAR, str(tmp_path / "reports"))
    folder = tmp_path / "reports" / "_scratch" / "georgia"
    executed = json.loads(runner.run_step(1, "georgia", folder, dt.date.today().isoformat()).read_text())
    for cell in executed["cells"]:
        for output in cell.get("outputs", []):
            assert output.get("name") != "stderr", "".join(output["text"])  # e.g. TqdmWarning
            text = "".join(output.get("data", {}).get("text/plain", ""))
            assert "Path(" not in text, text  # a saved file's path echoed by the last line of a cell
    assert (folder / "artifacts" / "unit_metrics.parquet").is_file()
