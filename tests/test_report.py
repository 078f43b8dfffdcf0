"""Stakeholder HTML: no code, no tracebacks, nothing from another host; an index that links every step."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from territory_lib import presentation, report
from territory_lib.errors import TerritoryError
from territory_lib.paths import SOURCE_ROOT

HOSTILE = "<script>alert(1)</script>"
CODE_MARKERS = ("print('to stderr'", "choropleth_map(", "market = ", "import pandas", "secret_parameter")


def code(source: str, *tags: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


@pytest.fixture(scope="module")
def executed_notebook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny step notebook, executed in a real kernel like papermill would."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Analyze the market"),
        code("market = 'georgia'\nsecret_parameter = 42", "parameters"),
        code("market = 'georgia'  # injected", "injected-parameters"),
        code(
            "from territory_lib.presentation import notebook_header\n"
            f"notebook_header('Analyze the market', 'Georgia, USA {HOSTILE}', "
            "'2026-11-27T08:00:00+00:00', 'Counties are real (1990 census); accounts are synthetic.')"
        ),
        code("import sys, warnings\nprint('to stderr', file=sys.stderr)\nwarnings.warn('careful')"),
        code(
            "import geopandas as gpd\nimport shapely\nfrom territory_lib.maps import choropleth_map\n"
            "units = gpd.GeoDataFrame({'name': ['A', 'B', 'C'], 'potential': [1000.0, 2500.0, 4000.0]},\n"
            "    geometry=[shapely.box(i, 0, i + 1, 1) for i in range(3)], crs=4326)\n"
            "choropleth_map(units, 'potential', tooltip_columns=['name', 'potential'],\n"
            "    legend_title='Potential')"
        ),
        code("import pandas as pd\npd.DataFrame({'territory': ['T1', 'T2'], 'accounts': [1200, 3400]})"),
        code("print('hidden output')", "remove-output"),
        code("print('hidden cell')", "remove-cell"),
        code("x = 1"),
    ]
    NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(SOURCE_ROOT)}}).execute()
    path = tmp_path_factory.mktemp("nb") / "01_analyze_market.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def exported(executed_notebook: Path) -> Path:
    out = executed_notebook.parent / "reports" / "georgia" / "01_analyze_market.html"
    return report.export_html(
        executed_notebook,
        out,
        title="Georgia, USA: Analyze the market",
        nav=[("1. Analyze the market", "01_analyze_market.html"), ("2. Define territories", "02_x.html")],
        home_href="../index.html",
    )


@pytest.mark.slow
def test_report_shows_no_code_prompts_or_stderr(exported: Path) -> None:
    page = exported.read_text(encoding="utf-8")
    for marker in CODE_MARKERS:
        assert marker not in page, f"code leaked into the report: {marker!r}"
    for element in ("jp-CodeMirrorEditor", "jp-InputPrompt", "jp-OutputPrompt"):
        assert f'class="{element}' not in page
    assert "to stderr" not in page and "careful" not in page and "Warning" not in page
    assert "hidden output" not in page and "hidden cell" not in page
    # Only cells with something to show remain: title, header, map, table.
    assert page.count('class="jp-Cell ') == 4


def test_report_has_title_header_map_and_table(exported: Path) -> None:
    page = exported.read_text(encoding="utf-8")
    assert "<title>Georgia, USA: Analyze the market</title>" in page
    assert re.search(r"<h1\b[^>]*>Analyze the market<", page)
    assert f"Georgia, USA {html.escape(HOSTILE)}" in page and HOSTILE not in page
    assert "27 November 2026, 08:00 UTC" in page and "accounts are synthetic" in page
    # The map sits in the page itself (no iframe), with Leaflet inlined once before it.
    assert page.index("territory-run-header") < page.index('class="territory-map"')
    assert page.count('class="territory-map"') == 1 and "<iframe" not in page
    assert page.count('<script data-territory-asset="leaflet">') == 1
    assert '<table border="1" class="dataframe">' in page and "<td>3400</td>" in page
    nav = re.search(r"<nav\b.*?</nav>", page, re.S).group(0)
    assert 'href="../index.html"' in nav and 'href="02_x.html"' in nav
    assert re.search(r'<a aria-current="page" href="01_analyze_market.html"', nav)


def test_report_loads_nothing_from_another_host(exported: Path) -> None:
    page = exported.read_text(encoding="utf-8")
    assert report.external_resources(page) == []
    assert "cdnjs" not in page and "require.js" not in page and "mathjax" not in page.casefold()


def test_papermill_error_banner_and_traceback_are_removed(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    banner = nbformat.v4.new_markdown_cell('<span style="color:red">An Exception was encountered</span>')
    banner.metadata["tags"] = ["papermill-error-cell-tag"]
    failing = code("1 / 0")
    failing.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="partial result\n"),
        nbformat.v4.new_output(
            "error", ename="ZeroDivisionError", evalue="division by zero", traceback=["Traceback ..."]
        ),
    ]
    nb.cells = [banner, nbformat.v4.new_markdown_cell("# Step"), failing]
    path = tmp_path / "failed.ipynb"
    nbformat.write(nb, path)
    page = report.export_html(path, tmp_path / "failed.html", title="Failed").read_text(encoding="utf-8")
    assert "An Exception was encountered" not in page
    assert "ZeroDivisionError" not in page and "Traceback" not in page
    assert "partial result" in page


def test_export_refuses_outputs_that_need_a_cdn(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cell = code("show()")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data", data={"text/html": '<script src="https://cdn.example.com/lib.js"></script>'}
        )
    ]
    nb.cells = [cell]
    path = tmp_path / "cdn.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(TerritoryError, match=r"cdn\.example\.com"):
        report.export_html(path, tmp_path / "cdn.html", title="x")
    assert not (tmp_path / "cdn.html").exists()


def test_export_names_a_missing_or_broken_notebook(tmp_path: Path) -> None:
    with pytest.raises(TerritoryError, match=r"missing\.ipynb does not exist"):
        report.export_html(tmp_path / "missing.ipynb", tmp_path / "x.html", title="x")
    (tmp_path / "broken.ipynb").write_text("{not json", encoding="utf-8")
    with pytest.raises(TerritoryError, match=r"broken\.ipynb is not valid notebook JSON"):
        report.export_html(tmp_path / "broken.ipynb", tmp_path / "x.html", title="x")


def test_external_resources_looks_inside_iframes() -> None:
    inner = '<link rel="stylesheet" href="https://cdn.example.com/a.css"><script src="//x.org/b.js"></script>'
    page = f'<iframe srcdoc="{html.escape(inner)}"></iframe><a href="https://example.com">link</a>'
    assert report.external_resources(page) == ["https://cdn.example.com/a.css", "//x.org/b.js"]
    assert report.external_resources("<style>@import url('https://f.example/x.css');</style>") == [
        "https://f.example/x.css"
    ]
    assert report.external_resources('<img src="data:image/png;base64,AAA"><script>var a;</script>') == []


def test_notebook_header_escapes_everything() -> None:
    box = presentation.notebook_header(HOSTILE, HOSTILE, "not a date <b>", provenance=HOSTILE).data
    assert "<script>" not in box and "<b>" not in box
    assert box.count(html.escape(HOSTILE)) == 3 and "not a date &lt;b&gt;" in box
    assert "Data" not in presentation.notebook_header("Step", "Market", "2026-11-27").data
    assert "27 November 2026" in presentation.notebook_header("Step", "Market", "2026-11-27").data


STEPS = [
    (1, "01_analyze_market", "Analyze the market"),
    (2, "02_define_territories", "Define territories"),
    (3, "03_align_resources", "Align resources"),
    (4, "04_monitor_performance", "Monitor performance"),
    (5, "05_feedback_optimize", "Feedback and optimize"),
]


def write_market(root: Path, market: str, title: str, *, failed_step: int | None = None) -> None:
    folder = root / market
    folder.mkdir(parents=True)
    for _, notebook, _ in STEPS:
        (folder / f"{notebook}.html").write_text("<html></html>", encoding="utf-8")
        (folder / f"{notebook}.ipynb").write_text("{}", encoding="utf-8")
    (folder / "alignment.csv").write_text("unit_id,territory_id\n", encoding="utf-8")
    manifest = {
        "market": market,
        "title": title,
        "run_started": "2026-11-27T08:00:00+00:00",
        "run_finished": "2026-11-27T08:01:30+00:00",
        "status": "failed" if failed_step else "ok",
        "steps": [
            {
                "step": n,
                "notebook": nb,
                "title": t,
                "html": f"{nb}.html",
                "ipynb": f"{nb}.ipynb",
                "seconds": 8.1,
            }
            for n, nb, t in STEPS
        ],
        "downloads": [
            {"label": "Alignment (unit → territory)", "href": "alignment.csv"},
            {"label": "Account assignment", "href": "account_assignment.csv"},
        ],
        "last_failure": None,
    }
    if failed_step:
        manifest["last_failure"] = {
            "time": "2026-11-28T09:00:00+00:00",
            "step": failed_step,
            "notebook": STEPS[failed_step - 1][1],
            "message": "DataError: reps.csv has no column 'capacity'\nTraceback (most recent call last): ...",
        }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_index_links_every_step_and_download_and_escapes(tmp_path: Path) -> None:
    write_market(tmp_path, "north-carolina", "North Carolina, USA")
    write_market(tmp_path, "georgia", f"Georgia {HOSTILE}", failed_step=3)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "notes").mkdir()  # a folder without a manifest is not a market
    write_market(tmp_path / "_failed", "hidden-market", "Hidden working copy")

    page = report.write_index(tmp_path).read_text(encoding="utf-8")

    for market in ("georgia", "north-carolina"):
        for _, notebook, _ in STEPS:
            assert f'href="{market}/{notebook}.html"' in page
        assert f'href="{market}/alignment.csv"' in page
    assert "Account assignment (not produced yet)" in page  # file missing on disk: no dead link
    assert HOSTILE not in page and html.escape(HOSTILE) in page
    assert page.index("broken") < page.index("Georgia") < page.index("North Carolina")
    assert "stopped at step 3, Align resources: DataError: reps.csv has no column" in page
    assert "previous successful run" in page and "Traceback" not in page
    assert "could not be read" in page and "territory run broken" in page
    assert "notes" not in page and "Hidden working copy" not in page
    assert report.external_resources(page) == [] and "<script" not in page


def test_index_without_markets_says_what_to_do(tmp_path: Path) -> None:
    page = report.write_index(tmp_path / "reports").read_text(encoding="utf-8")
    assert "No market has been run yet" in page


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Chromium (apt-get install chromium)")
def test_report_map_draws_with_no_network(exported: Path) -> None:
    from browser import count_drawn_polygons

    assert count_drawn_polygons(exported) == [3]


@pytest.mark.slow
def test_the_exporter_made_once_per_process_renders_each_report_as_a_new_one_would(
    executed_notebook: Path, tmp_path: Path
) -> None:
    """One exporter serves every export of a run (its templates compiled once, ahead of the first
    report): nothing of one export, or of the warm-up, carries into the next."""
    nav = [("1. Analyze the market", "01_analyze_market.html")]

    def export(name: str, title: str) -> str:
        out = report.export_html(
            executed_notebook, tmp_path / name, title=title, nav=nav, home_href="../i.html"
        )
        return out.read_text(encoding="utf-8")

    report._exporter.cache_clear()
    fresh = export("01_analyze_market.html", "Georgia, USA: Analyze the market")
    report.warm_exporter()
    other = export("other.html", "Another market: Analyze the market")
    again = export("01_analyze_market.html", "Georgia, USA: Analyze the market")
    assert again == fresh
    assert "Another market" in other and "Another market" not in again
