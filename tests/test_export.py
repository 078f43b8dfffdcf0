"""`territory export NOTEBOOK.ipynb [--out FILE.html]`: an executed notebook as the stakeholder report."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from territory_lib.cli import main
from territory_lib.paths import REPORTS_ENV_VAR


def notebook(path: Path, *, executed: bool = True, params_path: str | None = None) -> Path:
    """A small step-2-like notebook; executed: its code cells carry outputs, as after papermill."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('params_path = "georgia"', metadata={"tags": ["parameters"]})
    table = nbformat.v4.new_code_cell("show_table(plan)")
    if executed:
        params.execution_count, table.execution_count = 1, 2
        table.outputs = [
            nbformat.v4.new_output(
                "display_data", data={"text/html": "<p>Territory <b>T1</b>: 12 units</p>", "text/plain": "T1"}
            )
        ]
    nb.cells = [nbformat.v4.new_markdown_cell("# Step 2 · Define territories"), params, table]
    if params_path:
        nb.metadata["papermill"] = {"parameters": {"params_path": params_path}}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_export_writes_the_stakeholder_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = notebook(tmp_path / "runs" / "02_define_territories.ipynb", params_path="georgia")
    out = tmp_path / "share" / "step2.html"
    assert main(["export", str(source), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    page = out.read_text()
    assert "<b>T1</b>: 12 units" in page
    assert "<title>Georgia, USA: step 2, Define territories</title>" in page
    assert "show_table(plan)" not in page  # no code in the stakeholder report

    assert main(["export", str(source)]) == 0  # default: beside the notebook
    assert source.with_suffix(".html").is_file()


def test_export_refuses_a_notebook_that_was_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = notebook(tmp_path / "fresh.ipynb", executed=False)
    assert main(["export", str(source)]) == 2
    assert (
        "fresh.ipynb has not been run, so there is nothing to show: run it first" in capsys.readouterr().err
    )
    assert not source.with_suffix(".html").exists()
    assert main(["export", str(tmp_path / "missing.ipynb")]) == 2
    assert "missing.ipynb: no such notebook" in capsys.readouterr().err


def test_export_never_writes_into_a_published_market_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = tmp_path / "reports"
    monkeypatch.setenv(REPORTS_ENV_VAR, str(reports))
    (reports / "georgia").mkdir(parents=True)
    (reports / "georgia" / "manifest.json").write_text(json.dumps({"market": "georgia"}))
    published = reports / "georgia" / "02_define_territories.html"
    published.write_text("the published report")
    source = notebook(tmp_path / "02_define_territories.ipynb")
    assert main(["export", str(source), "--out", str(published)]) == 2
    assert "published reports of market 'georgia'" in capsys.readouterr().err
    assert published.read_text() == "the published report"
