"""The run's papermill engine: the output notebook is written when the run starts and ends, not at
every cell, and still as far as it ran when the kernel dies."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill as pm
import pytest
from papermill import engines

from territory_lib.kernels import LocalKernelManager
from territory_lib.notebook_engine import ENGINE_NAME
from territory_lib.runner import kernel_name


def _notebook(path: Path, *sources: str) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.metadata["kernelspec"] = {"name": kernel_name(), "display_name": "Python", "language": "python"}
    nbformat.write(notebook, path)
    return path


def _run(source: Path, target: Path) -> None:
    pm.execute_notebook(
        str(source),
        str(target),
        kernel_name=kernel_name(),
        kernel_manager_class=LocalKernelManager,
        engine_name=ENGINE_NAME,
        progress_bar=False,
    )


def test_the_output_notebook_is_written_at_the_start_and_the_end_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[str] = []
    real_write = engines.write_ipynb

    def counted(nb, path):
        writes.append(path)
        real_write(nb, path)

    monkeypatch.setattr(engines, "write_ipynb", counted)
    target = tmp_path / "out.ipynb"
    _run(_notebook(tmp_path / "in.ipynb", *[f"print({i})" for i in range(8)]), target)
    # papermill's own engine writes before and after each of the 8 cells as well (18 writes).
    assert writes == [str(target)]
    ran = nbformat.read(target, as_version=4)
    assert [cell.outputs[0]["text"] for cell in ran.cells] == [f"{i}\n" for i in range(8)]


def test_a_notebook_whose_kernel_dies_is_written_as_far_as_it_ran(tmp_path: Path) -> None:
    target = tmp_path / "out.ipynb"
    source = _notebook(tmp_path / "in.ipynb", "print('before')", "import os\nos._exit(1)", "print('after')")
    with pytest.raises(Exception, match=r"(?i)kernel died"):
        _run(source, target)
    ran = nbformat.read(target, as_version=4)
    assert ran.cells[0].outputs[0]["text"] == "before\n"
    assert ran.cells[2].outputs == []


def test_cell_done_hears_of_each_cell_after_it_ran(tmp_path: Path) -> None:
    """The runner starts the next step's kernel from here, after the cell tagged for it."""
    heard: list[tuple[str, list]] = []
    source = _notebook(tmp_path / "in.ipynb", "print('a')", "print('b')", "x = 1")
    pm.execute_notebook(
        str(source),
        str(tmp_path / "out.ipynb"),
        kernel_name=kernel_name(),
        kernel_manager_class=LocalKernelManager,
        engine_name=ENGINE_NAME,
        progress_bar=False,
        cell_done=lambda cell: heard.append((cell.source, [out.get("text") for out in cell.outputs])),
    )
    # In order, each with its output already recorded.
    assert heard == [("print('a')", ["a\n"]), ("print('b')", ["b\n"]), ("x = 1", [])]
