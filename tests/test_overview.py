"""The market overview (today vs plan vs proposal), index card alerts and the "Method and data" fold."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from territory_lib import overview, report
from territory_lib.config import MarketConfig
from territory_lib.market import unit_metrics
from territory_lib.presentation import notebook_header
from territory_lib.snapshot import build_snapshot
from territory_lib.steps import Workspace

HOSTILE = "<script>alert(1)</script> & <b>Co</b>"
RUN_DATE = "2026-11-27"
#: Units the hand-made plan moves from today's territory, and the units its proposal moves again.
PLAN_MOVES = {"13121": "T02", "13089": "T03", "13067": "T01"}
PROPOSAL_MOVES = [("13121", "T02", "T01")]


@pytest.fixture(scope="module")
def run_folder(
    tmp_path_factory: pytest.TempPathFactory, georgia_config: MarketConfig
) -> tuple[MarketConfig, Path]:
    """A run folder as the steps leave it, with a plan and a proposal made by hand from today's map."""
    config = georgia_config.model_copy(update={"title": f"Georgia {HOSTILE}", "description": HOSTILE})
    folder = tmp_path_factory.mktemp("run") / "georgia"
    market, _ = build_snapshot(config, folder, RUN_DATE, "run")
    workspace = Workspace(folder)
    metrics = unit_metrics(market)
    workspace.write("unit_metrics", metrics)
    workspace.write("accounts", market.accounts)
    plan = metrics.assign(territory_id=metrics["unit_id"].map(PLAN_MOVES).fillna(metrics["territory_id"]))
    workspace.write(
        "alignment", plan[["unit_id", "name", "territory_id", "accounts", "potential", "geometry"]]
    )
    reps = market.reps
    workspace.write(
        "rep_assignment",
        pd.DataFrame(
            {"territory_id": reps["territory_id"], "rep_id": reps["rep_id"], "rep_name": reps["name"]}
        ),
    )
    workspace.write(
        "proposed_moves",
        pd.DataFrame(PROPOSAL_MOVES, columns=["unit_id", "from_territory", "to_territory"]),
    )
    (folder / "02_define_territories.html").write_text("<p>step 2</p>", encoding="utf-8")
    return config, folder


@pytest.fixture(scope="module")
def page(run_folder: tuple[MarketConfig, Path]) -> str:
    config, folder = run_folder
    built = overview.build_overview(config, folder, RUN_DATE)
    assert built.path == folder / "overview.html"
    return built.path.read_text(encoding="utf-8")


def comparison_cells(page: str) -> dict[str, list[str]]:
    """The comparison table: measure -> the cells of its row (header row under "Measure")."""
    start = page.index('<table class="comparison">')
    table = page[start : page.index("</table>", start)]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.DOTALL):
        cells = [
            html.unescape(re.sub(r"<[^>]+>", "", cell))
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)
        ]
        rows[cells[0]] = cells[1:]
    return rows


def test_overview_compares_today_plan_and_proposal_in_one_table(page: str) -> None:
    rows = comparison_cells(page)
    assert rows["Measure"] == ["Today", "Plan", "Proposal"]
    assert rows["Territories"] == ["8", "8", "8"]
    # Today is the reference: nobody changes rep; the plan moves three counties' accounts.
    changing = [int(value.replace(",", "")) for value in rows["Accounts changing rep"]]
    assert changing[0] == 0 and changing[1] > 0 and changing[2] != changing[1]
    assert rows["Sales changing rep (12 months)"][0] == "$0" and rows["Sales changing rep (12 months)"][
        1
    ].startswith("$")
    assert all(value.endswith("%") for value in rows["Largest deviation from an equal share, potential"])
    assert all(value.endswith("miles") for value in rows["Annual driving, all reps"])  # a US market: miles
    assert all(
        re.fullmatch(r"0\.\d\d", value) for value in rows["Mean compactness (Polsby-Popper, 1 = circle)"]
    )
    assert "Recommendation." in page and "Adopt" in page
    assert page.count('class="panel overview-map"') == 3


def test_overview_today_deviation_matches_step_2s_current_balance(
    page: str, run_folder: tuple[MarketConfig, Path]
) -> None:
    from territory_lib.presentation import percent
    from territory_lib.territories import balance_targets, current_balance

    config, folder = run_folder
    metrics = Workspace(folder).read("unit_metrics")
    expected = current_balance(metrics, balance_targets(config, metrics))
    assert comparison_cells(page)["Largest deviation from an equal share, potential"][0] == percent(
        expected["potential"]
    )


def test_overview_escapes_the_market_title_and_links_only_reports_that_exist(page: str) -> None:
    assert HOSTILE not in page and "<b>Co</b>" not in page
    assert html.escape(HOSTILE) in page
    assert 'href="02_define_territories.html"' in page
    assert 'href="01_analyze_market.html"' not in page and "1. Analyze the market (not produced yet)" in page
    assert report.external_resources(page) == []
    # Leaflet once per page, however many maps.
    assert page.count("Leaflet 1.9.4, a JS library") == 1


def test_overview_shows_a_dash_for_what_no_step_recorded(page: str) -> None:
    tiles = dict(re.findall(r'<div class="label">(.*?)</div><div class="value">(.*?)</div>', page))
    assert tiles["Sales trend"] == "–"  # step 4 did not run in this folder
    assert tiles["Territories"] == "8" and tiles["Reps"] == "8"
    assert tiles["Annual potential"].startswith("$") and tiles["Annual potential"][-1] in "KMB"


def test_alerts_name_reps_over_capacity_and_territories_beyond_day_trips() -> None:
    workload = pd.DataFrame(
        {
            "territory_id": ["T01", "T02"],
            "rep_name": ["Ann <A>", "Bo"],
            "utilisation": [1.4, 0.9],
            "status": ["over capacity", "balanced"],
            "off_segment_accounts": [3, 0],
            "annual_drive_km": [90_000.0, 20_000.0],
            "travel_status": ["needs flights", "day trips"],
            "visits_missed": [120.0, 0.0],
        }
    )
    alerts = overview.overview_alerts(workload, {"step1": {"expected_false_spots": 0.4}}, ["note"], "km")
    assert alerts[0] == "1 rep over capacity in the plan: Ann <A> (140%)."
    assert alerts[1].startswith("3 accounts would be served by a rep who does not sell")
    assert alerts[2] == "Not workable by day trips from the rep's home: T01 (needs flights)."
    assert alerts[3] == "Visits that do not fit in the rep's working year: T01 (120)."
    assert "0.4" in alerts[4] and alerts[-1] == "note"


def test_index_card_links_the_overview_and_carries_its_alerts(tmp_path: Path) -> None:
    market = tmp_path / "georgia"
    market.mkdir()
    (market / "overview.html").write_text("x", encoding="utf-8")
    manifest = {"market": "georgia", "title": "Georgia", "status": "ok", "steps": []}
    manifest |= {"overview": "overview.html", "alerts": [f"2 reps over capacity {HOSTILE}"]}
    (market / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    index = report.write_index(tmp_path).read_text(encoding="utf-8")
    assert 'href="georgia/overview.html"' in index
    assert f"2 reps over capacity {html.escape(HOSTILE)}" in index and HOSTILE not in index


def folded_notebook(tmp_path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    header = notebook_header(
        "Define territories", "Georgia", RUN_DATE, "Counties are real. " + "Long detail " * 40
    )
    cells = [
        nbformat.v4.new_markdown_cell("# Define territories"),
        nbformat.v4.new_code_cell(
            "", outputs=[nbformat.v4.new_output("display_data", {"text/html": header.data})]
        ),
        nbformat.v4.new_markdown_cell("## Regression formula (for analysts)"),
        nbformat.v4.new_code_cell(
            "", outputs=[nbformat.v4.new_output("display_data", {"text/html": "<p>FIT-STATISTICS-R2</p>"})]
        ),
        nbformat.v4.new_markdown_cell("## Findings\n\nBUSINESS-FINDING"),
    ]
    cells[2].metadata["tags"] = ["method"]
    cells[3].metadata["tags"] = ["method"]
    nb.cells = cells
    path = tmp_path / "02_define_territories.ipynb"
    nbformat.write(nb, path)
    return path


def test_method_cells_fold_into_one_details_section_after_the_findings(tmp_path: Path) -> None:
    page = report.export_html(folded_notebook(tmp_path), tmp_path / "out.html", title="t").read_text("utf-8")
    assert page.count('<details class="territory-method">') == 1 and page.count("</details>") == 1
    opened, closed = page.index('<details class="territory-method">'), page.index("</details>")
    assert page.index("BUSINESS-FINDING") < opened < page.index("FIT-STATISTICS-R2") < closed
    assert opened < page.index("Regression formula") < closed
    # The header keeps a one-line data note; the full provenance is in the fold.
    assert page.index("Counties are real.") < opened
    assert opened < page.index("Long detail Long detail") < closed
    assert page[:opened].count("Long detail") == 0


def test_a_notebook_cannot_smuggle_html_past_the_raw_cell_cleaning(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_raw_cell(
            "<img src=x onerror=alert(1)>", metadata={"raw_mimetype": "text/html", "territory_fold": True}
        )
    ]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    page = report.export_html(path, tmp_path / "n.html", title="t").read_text("utf-8")
    assert "<img src=x" not in page and "&lt;img src=x" in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def rendered(page_html: str, width: int) -> str:
    """The DOM of ``page_html`` shown ``width`` px wide, offline, with its scroll and client widths.

    Headless Chromium keeps a window at least 500 px wide, so the page is loaded in an iframe of
    exactly ``width`` px (its media queries see that width); the outer page records the frame's
    widths as ``data-scroll-width`` and ``data-client-width`` and takes in the frame's DOM.
    """
    from browser import _OFFLINE_FLAGS

    outer = (
        f'<!DOCTYPE html><html><body style="margin:0"><iframe id="frame" src="page.html" '
        f'style="width:{width}px;height:900px;border:0"></iframe><script>'
        "document.getElementById('frame').addEventListener('load', () => setTimeout(() => {"
        "const doc = document.getElementById('frame').contentDocument;"
        "document.body.dataset.scrollWidth = doc.documentElement.scrollWidth;"
        "document.body.dataset.clientWidth = doc.documentElement.clientWidth;"
        "const copy = document.createElement('div'); copy.id = 'framed';"
        "copy.innerHTML = doc.body.innerHTML; document.body.appendChild(copy);}, 1000));"
        "</script></body></html>"
    )
    with tempfile.TemporaryDirectory(prefix="territory-overview-") as tmp:
        (Path(tmp) / "page.html").write_text(page_html, encoding="utf-8")
        target = Path(tmp) / "outer.html"
        target.write_text(outer, encoding="utf-8")
        result = subprocess.run(
            [
                CHROMIUM,
                *_OFFLINE_FLAGS,
                "--allow-file-access-from-files",  # the outer page may read its frame's DOM
                f"--user-data-dir={Path(tmp) / 'profile'}",
                "--dump-dom",
                target.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=True,
        )
    return result.stdout


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")
@pytest.mark.parametrize("width", [1400, 400])
def test_overview_draws_its_maps_offline_without_sideways_scroll(page: str, width: int) -> None:
    dom = rendered(page, width)
    maps = dom.split('class="folium-map')[1:]
    drawn = [len(re.findall(r'<path\b[^>]*class="[^"]*leaflet-interactive', part)) for part in maps]
    assert len(drawn) == 3 and all(count >= 159 for count in drawn), drawn
    assert '<table class="comparison">' in dom
    scroll = int(re.search(r'data-scroll-width="(\d+)"', dom).group(1))
    client = int(re.search(r'data-client-width="(\d+)"', dom).group(1))
    assert client == width - 15 or client == width  # the frame's own width, less a scroll bar
    assert scroll <= client, f"the page scrolls sideways at {width} px ({scroll} > {client})"


def test_large_maps_draw_one_outline_per_territory(
    run_folder: tuple[MarketConfig, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config, folder = run_folder
    copy = tmp_path / "georgia"
    shutil.copytree(folder, copy)
    monkeypatch.setattr(overview, "OVERVIEW_UNIT_LIMIT", 100)  # Georgia's 159 counties count as large
    page = overview.build_overview(config, copy, RUN_DATE).path.read_text(encoding="utf-8")
    drawn = re.findall(r'territoryShapes\["\w+"\]=(\[.*?\]);</script>', page)
    # Three maps of 8 territories (each map's units: its territories' outlines), not 3 x 159 counties.
    assert sorted(len(json.loads(shapes)) for shapes in drawn) == [8, 8, 8]
    units = Workspace(folder).read("unit_metrics")
    shapes = overview.territory_shapes(units)
    assert len(shapes) == 8 and shapes.is_valid.all()
    assert shapes.to_crs(5070).area.sum() == pytest.approx(units.to_crs(5070).area.sum(), rel=1e-3)


def test_an_overview_that_cannot_be_built_says_why_instead_of_failing_the_run(
    georgia_config: MarketConfig, tmp_path: Path
) -> None:
    page, failure = overview.try_build_overview(georgia_config, tmp_path / "georgia", RUN_DATE)
    assert page is None and failure is not None and "snapshot" in failure
    assert not (tmp_path / "georgia" / "overview.html").exists()


def test_overview_reads_the_workloads_steps_3_and_5_saved(
    run_folder: tuple[MarketConfig, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from territory_lib import resources

    config, folder = run_folder
    copy = tmp_path / "georgia"
    shutil.copytree(folder, copy)
    workspace = Workspace(copy)
    accounts, reps = workspace.read("accounts"), build_snapshot(config, copy, RUN_DATE, "run")[0].reps
    owners = workspace.read("rep_assignment")
    plan = workspace.read("alignment").set_index("unit_id")["territory_id"]
    placed = accounts.assign(territory_id=accounts["unit_id"].map(plan))
    saved = resources.rep_workload(placed, reps, owners, config.resources)
    workspace.write("rep_workload", saved)
    workspace.write("proposal_workload", saved.assign(annual_drive_km=saved["annual_drive_km"] * 2))
    workspace.write(
        "rep_comparison", resources.workload_before_after(placed, reps, owners, config.resources, saved)
    )

    def no_route_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the overview ran the route model although the steps saved its results")

    monkeypatch.setattr(resources, "rep_workload", no_route_model)
    page = overview.build_overview(config, copy, RUN_DATE).path.read_text(encoding="utf-8")
    assert "Annual driving" in page
