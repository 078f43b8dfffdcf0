"""Store the outputs that nbval checks: ``python -m tests.checked_outputs`` (``make checked-outputs``).

Cells tagged ``nbval-check-output`` (with ``keep_output`` so nbstripout keeps them) are the only
ones committed with outputs: headline figures that must not change unnoticed. This runs every step
notebook on its default market into a temporary reports folder, as the notebook tests do, and
copies those cells' outputs into the committed notebooks. Review the diff: it is what changed.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

import nbformat

CHECK_TAG = "nbval-check-output"


def checked_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """The code cells whose outputs nbval compares."""
    return [cell for cell in notebook.cells if CHECK_TAG in cell.get("metadata", {}).get("tags", [])]


def store_outputs(executed: Path, notebook: Path) -> int:
    """Copy the checked cells' outputs from ``executed`` into ``notebook``; return how many cells."""
    ran = nbformat.read(executed, as_version=4)
    by_source = {cell.source: cell for cell in ran.cells if cell.cell_type == "code"}
    stored = nbformat.read(notebook, as_version=4)
    cells = checked_cells(stored)
    for cell in cells:
        outputs = by_source[cell.source].outputs
        for output in outputs:
            if "execution_count" in output:
                output.execution_count = None
        cell.outputs, cell.execution_count = outputs, None
    if cells:
        nbformat.write(stored, notebook)
    return len(cells)


def main() -> int:
    os.environ["TERRITORY_REPORTS_DIR"] = tempfile.mkdtemp(prefix="territory-checked-outputs-")
    from conftest import NOTEBOOK_MARKET
    from territory_lib.runner import run_step
    from territory_lib.steps import STEPS, resolve_output_dir

    folder = resolve_output_dir("", NOTEBOOK_MARKET)
    for step in STEPS:
        executed = run_step(step.number, NOTEBOOK_MARKET, folder, dt.date.today().isoformat())
        count = store_outputs(executed, step.path)
        print(f"{step.path.name}: {count} checked cell(s) stored")
    return 0


if __name__ == "__main__":
    sys.exit(main())
