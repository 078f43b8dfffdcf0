"""End to end: `territory run` turns a market into five stakeholder reports, CRM files and an index.

Runs the whole pipeline for the built-in Georgia market and for a market prepared by hand (other
file formats and column names, no feedback file), then breaks the hand-made market to show that a
failed run keeps the published reports.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import yaml

from territory_lib.cli import main
from territory_lib.config import load_config
from territory_lib.io import prepare_builtin_data
from territory_lib.paths import REPORTS_ENV_VAR
from territory_lib.report import external_resources
from territory_lib.steps import STEPS
from tests.browser import CHROMIUM, count_drawn_polygons
from tests.processes import adopt_orphans, running_kernels

pytestmark = pytest.mark.slow
RUN_DATE = "2026-11-27"


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("reports")
    patch = pytest.MonkeyPatch()
    patch.setenv(REPORTS_ENV_VAR, str(root))
    # Another market's published reports, which running Georgia must leave alone.
    other = root / "north_carolina"
    other.mkdir()
    (other / "01_analyze_market.html").write_text("<html><title>untouched</title></html>")
    manifest = {"market": "north_carolina", "title": "North Carolina, USA", "status": "ok", "steps": []}
    (other / "manifest.json").write_text(json.dumps(manifest))
    yield root
    patch.undo()


@pytest.fixture(scope="module")
def georgia_run(reports: Path) -> Path:
    assert main(["run", "georgia", "--run-date", RUN_DATE]) == 0
    return reports / "georgia"


def test_every_step_report_and_crm_file_is_written(georgia_run: Path) -> None:
    for step in STEPS:
        assert (georgia_run / f"{step.notebook}.html").is_file()
        assert (georgia_run / f"{step.notebook}.ipynb").is_file()
    alignment = pd.read_csv(georgia_run / "alignment.csv", dtype=str)
    assert list(alignment.columns) == ["unit_id", "territory_id"]
    assert len(alignment) == 159 and alignment["unit_id"].is_unique
    assert alignment["territory_id"].nunique() == 8
    accounts = pd.read_csv(georgia_run / "account_assignment.csv", dtype=str, keep_default_na=False)
    assert list(accounts.columns) == ["account_id", "territory_id", "rep_id"]
    config = load_config("georgia")
    assert len(accounts) == len(pd.read_csv(config.data.accounts))
    assert (accounts["rep_id"] != "").all() and accounts["territory_id"].isin(alignment["territory_id"]).all()


def test_index_links_every_report_and_keeps_other_markets(reports: Path, georgia_run: Path) -> None:
    index = (reports / "index.html").read_text()
    for step in STEPS:
        assert f'href="georgia/{step.notebook}.html"' in index
    assert "georgia/alignment.csv" in index
    # The runner builds the overview before publishing and the card links it.
    assert 'href="georgia/overview.html"' in index and (reports / "georgia" / "overview.html").is_file()
    assert "<dt>Territories</dt><dd>8</dd>" in index and "<dt>Accounts</dt><dd>2,400</dd>" in index
    assert "Largest potential deviation" in index and "Sales trend" in index
    assert "North Carolina, USA" in index
    assert (reports / "north_carolina" / "01_analyze_market.html").read_text() == (
        "<html><title>untouched</title></html>"
    )


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.notebook)
def test_report_shows_no_code_and_starts_with_title_market_and_date(georgia_run: Path, step) -> None:
    page = (georgia_run / f"{step.notebook}.html").read_text()
    code = r'class="[^"]*\b(jp-CodeMirrorEditor|jp-InputPrompt|jp-OutputPrompt|hl-ipython3)\b'
    assert not re.search(code, page)
    assert "Traceback" not in page and "papermill-error" not in page
    assert "start_step(" not in page and "from territory_lib" not in page
    assert external_resources(page) == []
    body = page[page.index("<body") :]
    title = body.index(f"Step {step.number} ")
    assert title < body.index("Georgia, USA") < body.index("27 November 2026")
    # Every chart says what it shows, for readers who cannot see it; no exporter placeholder.
    images = re.findall(r"<img\b[^>]*>", body)
    alts = [re.search(r'\balt="([^"]*)"', image) for image in images]
    assert all(alt is not None and len(alt.group(1)) > 20 for alt in alts), images
    assert "No description has been provided" not in page


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium: apt-get install chromium")
def test_maps_draw_every_unit_with_no_network(georgia_run: Path) -> None:
    market_map, hot_spot_map = count_drawn_polygons(georgia_run / "01_analyze_market.html")
    assert market_map == 159 and hot_spot_map == 159
    territory_map = count_drawn_polygons(georgia_run / "02_define_territories.html")[0]
    reps = len(pd.read_csv(load_config("georgia").data.reps))
    assert territory_map == 159 + reps


def hand_made_market(folder: Path) -> Path:
    """North Carolina's data rewritten as a user would bring it: other formats, other headers."""
    config = load_config("north_carolina")
    prepare_builtin_data(config)
    source = Path(config.data.units).parent
    data = folder / "crm_export"
    data.mkdir(parents=True)
    units = gpd.read_file(source / "units.gpkg").rename(columns={"unit_id": "FIPS", "name": "County"})
    units.drop(columns=["territory_id"]).to_crs(4326).to_file(data / "counties.geojson", driver="GeoJSON")
    accounts = pd.read_csv(source / "accounts.csv", dtype=str, keep_default_na=False)
    accounts.drop(columns=["unit_id"]).rename(columns={"lat": "latitude", "lon": "longitude"}).to_parquet(
        data / "accounts.parquet"
    )
    shutil.copy(source / "reps.csv", data / "reps.csv")
    sales = pd.read_csv(source / "sales.csv", dtype=str)
    sales.rename(columns={"date": "order_date", "amount": "net_value"}).to_csv(
        data / "orders.csv", index=False
    )
    params = {
        "market": "carolina-crm",
        "title": "Carolina <CRM> extract",
        "data": {
            "units": "crm_export/counties.geojson",
            "accounts": "crm_export/accounts.parquet",
            "reps": "crm_export/reps.csv",
            "sales": "crm_export/orders.csv",
        },
        "territories": 6,
        "columns": {
            "units": {"unit_id": "FIPS", "name": "County"},
            "accounts": {"lat": "latitude", "lon": "longitude"},
            "sales": {"date": "order_date", "amount": "net_value"},
        },
        "design": {"balance": [{"measure": "potential", "tolerance": 0.08}]},
    }
    path = folder / "carolina.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_a_hand_made_market_runs_and_a_failed_rerun_keeps_its_reports(
    reports: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    adopt_orphans()  # a kernel whose fork server exited first is still seen below
    params = hand_made_market(tmp_path)
    assert main(["run", str(params), "--run-date", RUN_DATE]) == 0
    published = reports / "carolina-crm"
    pages = {step.notebook: (published / f"{step.notebook}.html").read_text() for step in STEPS}
    assert all("Carolina &lt;CRM&gt; extract" in page for page in pages.values())
    assert "<CRM>" not in "".join(pages.values())
    assert "no feedback file" in pages["05_feedback_optimize"]
    assert pd.read_csv(published / "alignment.csv")["territory_id"].nunique() == 6

    accounts = pd.read_parquet(params.parent / "crm_export" / "accounts.parquet")
    accounts.loc[7, "latitude"] = "north"
    accounts.to_parquet(params.parent / "crm_export" / "accounts.parquet")
    capsys.readouterr()
    assert main(["run", str(params), "--run-date", "2026-12-01"]) == 1
    printed = capsys.readouterr().out
    # The kernel started ahead for step 1 (while the inputs were read) is not left running.
    assert not running_kernels()
    assert "column 'lat' has values that are not numbers in row 9" in printed
    for step in STEPS:
        assert (published / f"{step.notebook}.html").read_text() == pages[step.notebook]
    assert (reports / "_failed" / "carolina-crm" / "01_analyze_market.ipynb").is_file()
    index = (reports / "index.html").read_text()
    assert "Carolina &lt;CRM&gt; extract" in index and "not numbers" in index
    assert "Traceback" not in index
