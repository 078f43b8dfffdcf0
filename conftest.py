"""pytest setup shared by the test suite and the nbval notebook runs.

Reports written during tests go to a temporary folder, never into ``reports/``: the variable is
set before any notebook kernel starts, and kernels inherit it (each pytest-xdist worker has its own).

A notebook test runs alone (``pytest notebooks/04_monitor_performance.ipynb``, ``-k``, ``-n 2``):
before its first cell, the steps before it are run into the folder its default parameters read,
``<reports>/_scratch/<market>``, unless their results are already there from this session.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

import pytest

from territory_lib.paths import REPORTS_ENV_VAR

os.environ[REPORTS_ENV_VAR] = tempfile.mkdtemp(prefix="territory-test-reports-")

#: The market the step notebooks' default parameters name.
NOTEBOOK_MARKET = "georgia"


def pytest_configure(config: pytest.Config) -> None:
    """With pytest-xdist, generate the built-in markets' data once, before the workers start.

    Otherwise two workers could generate the same ``data/<market>/`` at the same moment.
    """
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        from territory_lib.config import available_markets, load_config
        from territory_lib.io import prepare_builtin_data

        for name in available_markets():
            prepare_builtin_data(load_config(name))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Let nbval compare the stored output of the headline cells (tagged ``nbval-check-output``).

    Those are committed with their output but, like every cell, without an execution count
    (nbstripout strips counts); nbval takes a cell without a count for one never run and refuses
    its output, so the count is set here, in memory.
    """
    for item in items:
        cell = getattr(item, "cell", None)
        options = getattr(item, "options", {})
        if cell is not None and options.get("check") and cell.get("outputs") and cell.execution_count is None:
            cell.execution_count = 1


def upstream_steps(notebook: Path) -> list[int]:
    """The steps that must have run before ``notebook`` (a step notebook) can run; none for others."""
    from territory_lib.steps import STEPS

    number = next((step.number for step in STEPS if step.notebook == notebook.stem), None)
    return list(range(1, number)) if number else []


def missing_steps(numbers: list[int], folder: Path) -> list[int]:
    """The steps of ``numbers`` whose artifacts are not all in ``folder``, and every step after them."""
    from territory_lib.steps import ARTIFACT_PRODUCERS, Workspace

    workspace = Workspace(folder)
    for number in numbers:
        made = [name for name, step in ARTIFACT_PRODUCERS.items() if step == number]
        if not all(workspace.artifact_path(name).is_file() for name in made):
            return [n for n in numbers if n >= number]
    return []


def build_upstream(notebook: Path) -> list[int]:
    """Run the steps before ``notebook`` that have no results yet in its default folder; return them."""
    from territory_lib.runner import run_step
    from territory_lib.steps import resolve_output_dir

    folder = resolve_output_dir("", NOTEBOOK_MARKET)
    steps = missing_steps(upstream_steps(notebook), folder)
    for number in steps:
        # The notebooks' default run date is today, so the snapshot the steps share matches theirs.
        run_step(number, NOTEBOOK_MARKET, folder, dt.date.today().isoformat())
    return steps


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before the first cell of a step notebook (nbval), build the results of the steps before it."""
    parent = item.parent
    if item.path.suffix != ".ipynb" or parent is None:
        return
    if not hasattr(parent, "upstream_failure"):
        try:
            build_upstream(item.path)
            parent.upstream_failure = None  # type: ignore[attr-defined]
        except Exception as exc:
            parent.upstream_failure = exc  # type: ignore[attr-defined]
    if parent.upstream_failure is not None:  # type: ignore[attr-defined]
        # Every cell of the notebook fails with the cause, not with the NameErrors that would follow.
        raise parent.upstream_failure  # type: ignore[attr-defined]
