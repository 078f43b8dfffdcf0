"""The project's shape: one environment for pip and conda, notebooks that follow the conventions."""

from __future__ import annotations

import json
import re
import tomllib

import jupytext
import papermill as pm
import pytest
import yaml

from territory_lib.paths import SOURCE_ROOT
from territory_lib.runner import NOTEBOOK_PARAMETERS
from territory_lib.steps import STEPS


def requirement(spec: str) -> tuple[str, str]:
    name, bound = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec).groups()
    return name.lower().replace("_", "-"), bound.replace(" ", "")


def test_environment_yml_lists_the_same_packages_as_pyproject() -> None:
    project = tomllib.loads((SOURCE_ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(map(requirement, project["dependencies"] + project["optional-dependencies"]["test"]))
    environment = yaml.safe_load((SOURCE_ROOT / "environment.yml").read_text())
    listed: dict[str, str] = {}
    for entry in environment["dependencies"]:
        items = entry["pip"] if isinstance(entry, dict) else [entry]
        for item in items:
            if item.startswith("-e") or item.split("=")[0] in {"python", "pip"}:
                continue
            name, bound = requirement(item)
            listed[name] = bound
    assert listed == wanted


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.notebook)
def test_notebook_follows_the_conventions(step) -> None:
    notebook = json.loads(step.path.read_text())
    cells = notebook["cells"]
    assert cells[0]["cell_type"] == "markdown"
    assert "".join(cells[0]["source"]).startswith(f"# Step {step.number} ")
    tagged = [cell for cell in cells if "parameters" in cell.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    for cell in cells:
        if cell["cell_type"] == "code":
            checked = "nbval-check-output" in cell["metadata"].get("tags", [])
            assert checked or cell["outputs"] == [], (
                "commit notebooks without outputs, except the headline cells nbval checks"
            )
            assert cell["execution_count"] is None
            assert not checked or cell["metadata"].get("keep_output"), "nbstripout would strip it"
    declared = pm.inspect_notebook(str(step.path))
    assert tuple(declared) == NOTEBOOK_PARAMETERS
    for name, info in declared.items():
        assert info["inferred_type_name"] == "str", f"{name} needs a type annotation"
        assert info["help"], f"{name} needs a '#' comment saying what it is"


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.notebook)
def test_notebook_is_in_sync_with_its_py_twin(step) -> None:
    paired = jupytext.read(step.path.with_suffix(".py"))
    stored = jupytext.read(step.path)
    assert [cell.source for cell in paired.cells] == [cell.source for cell in stored.cells], (
        f"run `make notebooks` to re-sync {step.path.name} with its .py twin"
    )
    assert [cell.metadata.get("tags", []) for cell in paired.cells] == [
        cell.metadata.get("tags", []) for cell in stored.cells
    ]


def test_every_install_line_in_the_readme_installs_this_project() -> None:
    readme = (SOURCE_ROOT / "README.md").read_text()
    lines = re.findall(r"pip install ([^`\n#]+)", readme)
    assert len(lines) >= 3
    for line in lines:
        target = next(word for word in line.split() if not word.startswith("-")).strip("'\"")
        # this checkout (with extras) or its wheel: the name 'territory' on PyPI is another project
        assert target.startswith((".", "dist/territory_planner-")), line
