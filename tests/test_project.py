"""The project folder: found from --project, the environment or the current folder; scaffolded by
`territory init`; its own notebooks replace the built-in ones; notebooks refuse undeclared parameters."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from territory_lib.cli import main
from territory_lib.errors import ConfigError
from territory_lib.paths import PROJECT_ENV_VAR, SOURCE_ROOT, builtin_dir, project_dir, reports_dir
from territory_lib.runner import NOTEBOOK_PARAMETERS, check_notebook_parameters, run_markets
from territory_lib.steps import STEPS


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary current folder outside any project, with no project named in the environment."""
    monkeypatch.delenv(PROJECT_ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_project_is_the_nearest_folder_with_params_else_the_checkout(elsewhere: Path) -> None:
    assert project_dir() == SOURCE_ROOT  # tests run from the checkout's code
    (elsewhere / "acme" / "params").mkdir(parents=True)
    (elsewhere / "acme" / "notebooks").mkdir()
    os.chdir(elsewhere / "acme" / "notebooks")  # e.g. JupyterLab opened in notebooks/
    assert project_dir() == elsewhere / "acme"


def test_the_environment_names_the_project(elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TERRITORY_REPORTS_DIR")
    monkeypatch.setenv(PROJECT_ENV_VAR, str(elsewhere))
    assert project_dir() == elsewhere
    assert reports_dir() == elsewhere / "reports"
    monkeypatch.setenv(PROJECT_ENV_VAR, str(elsewhere / "missing"))
    with pytest.raises(ConfigError, match="territory init"):
        project_dir()


def test_init_scaffolds_a_project_and_never_overwrites(
    elsewhere: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["init", "acme", "--with-notebooks"]) == 0
    project = elsewhere / "acme"
    builtin_params = sorted(path.name for path in builtin_dir("params").glob("*.yaml"))
    assert sorted(path.name for path in (project / "params").iterdir()) == builtin_params
    assert "north_carolina.yaml" in builtin_params
    assert sorted(path.name for path in (project / "notebooks").iterdir()) == [
        f"{step.notebook}.ipynb" for step in STEPS
    ]
    assert (project / "reports").is_dir() and "territory run" in (project / "README.md").read_text()
    capsys.readouterr()

    (project / "README.md").write_text("mine")
    assert main(["init", "acme"]) == 2
    err = capsys.readouterr().err
    assert "README.md" in err and "params/georgia.yaml" in err and "never overwrites" in err
    assert (project / "README.md").read_text() == "mine"


def test_init_refuses_before_writing_anything(elsewhere: Path, capsys: pytest.CaptureFixture) -> None:
    (elsewhere / "acme" / "params").mkdir(parents=True)
    (elsewhere / "acme" / "params" / "georgia.yaml").write_text("market: mine\n")
    assert main(["init", "acme"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "params/georgia.yaml" in err and "never overwrites" in err
    assert sorted(path.name for path in (elsewhere / "acme").rglob("*")) == ["georgia.yaml", "params"]


def test_project_option_before_or_after_the_command(elsewhere: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["init", "acme"]) == 0
    for name in ("georgia.yaml", "us_states.yaml"):
        (elsewhere / "acme" / "params" / name).unlink()
    capsys.readouterr()
    assert main(["--project", "acme", "markets"]) == 0
    assert capsys.readouterr().out.split()[0] == "north_carolina"
    assert main(["markets", "--project", str(elsewhere / "acme")]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("north_carolina ")
    assert PROJECT_ENV_VAR not in os.environ  # only for that command
    assert main(["--project", "nowhere", "markets"]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_a_folder_without_markets_says_how_to_start(elsewhere: Path, capsys: pytest.CaptureFixture) -> None:
    (elsewhere / "params").mkdir()
    assert main(["run"]) == 2
    assert "has no params YAML" in capsys.readouterr().err
    assert main(["run", "north_carolina"]) == 2
    assert "is a built-in market: create a project that has it with `territory init DIR`" in (
        capsys.readouterr().err
    )
    assert not (elsewhere / "reports").exists()


def test_a_project_notebook_replaces_the_builtin_one(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = elsewhere / "acme"
    shutil.copytree(SOURCE_ROOT / "params", project / "params")
    (project / "notebooks").mkdir()
    notebook = json.loads(STEPS[0].path.read_text())
    for cell in notebook["cells"]:  # a local edit that drops the run_date parameter
        if "parameters" in cell["metadata"].get("tags", []):
            cell["source"] = [line for line in cell["source"] if not line.startswith("run_date")]
    (project / "notebooks" / f"{STEPS[0].notebook}.ipynb").write_text(json.dumps(notebook))
    monkeypatch.setenv(PROJECT_ENV_VAR, str(project))
    assert STEPS[0].path == project / "notebooks" / f"{STEPS[0].notebook}.ipynb"
    assert STEPS[1].path == builtin_dir("notebooks") / f"{STEPS[1].notebook}.ipynb"
    with pytest.raises(ConfigError) as error:
        check_notebook_parameters(STEPS[0].path, NOTEBOOK_PARAMETERS)
    assert "does not declare 'run_date'; it declares params_path, output_dir" in str(error.value)
    with pytest.raises(ConfigError, match="does not declare 'run_date'"):  # before any market runs
        run_markets(["north_carolina"], steps=[1, 2])
    assert not (project / "data").exists()  # nothing ran


@pytest.mark.slow
def test_papermill_with_an_undeclared_parameter_fails_instead_of_running_the_default_market(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PYTHONPATH": str(SOURCE_ROOT)}
    papermill = [sys.executable, "-m", "papermill", "--kernel", "python3", "--no-progress-bar"]
    notebook = str(STEPS[0].path)
    result = subprocess.run(
        [*papermill, notebook, str(tmp_path / "out.ipynb"), "-p", "market", "north_carolina"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0
    assert "parameter 'market' is not declared by this notebook" in result.stderr + result.stdout
    assert "params_path, output_dir, run_date" in result.stderr + result.stdout
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    outputs = json.dumps([cell.get("outputs", []) for cell in executed["cells"]])
    assert "Georgia" not in outputs  # stopped before loading the default market
