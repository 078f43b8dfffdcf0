"""Reports with maps as readers see them, in offline headless Chromium at 1400 and 400 px wide:
no legend or control over a drawn unit's centre, every unit inside its frame, no sideways scroll,
Leaflet once per page, and the weight limits of a market of up to 200 units."""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import nbformat
import numpy as np
import pandas as pd
import pytest
from libpysal.examples import get_path

from territory_lib import maps, report

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Chromium (apt-get install chromium)"),
]

WIDTHS = (1400, 400)
SMALL_MARKET_LIMIT = 1_200_000  # bytes: a report of a market with up to 200 units


def georgia_counties() -> gpd.GeoDataFrame:
    counties = gpd.read_file(get_path("G_utm.shp")).set_crs("EPSG:26916", allow_override=True)
    x, y = counties.geometry.centroid.x, counties.geometry.centroid.y
    columns, rows = pd.qcut(x, 4, labels=False), pd.qcut(y, 2, labels=False)
    counties["territory_id"] = [f"T{i * 2 + j + 1:02d}" for i, j in zip(columns, rows, strict=True)]
    counties["before"] = counties["territory_id"]
    counties.loc[[3, 57, 120], "before"] = "T01"
    counties["name"] = "County " + counties["AreaKey"].astype(str)
    counties["potential"] = counties["TotPop90"].astype(float) * 1000
    counties["cluster"] = np.where(counties["PctRural"] > 60, "hot spot", "not significant")
    return counties


@pytest.fixture(scope="module")
def georgia_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Georgia step report as the exporter writes it: three maps and a table wider than a phone."""
    units = georgia_counties()
    homes = gpd.GeoDataFrame(
        {"name": [f"Rep {i}" for i in range(8)], "territory_id": [f"T{i + 1:02d}" for i in range(8)]},
        geometry=units.dissolve("territory_id").representative_point().to_crs(4326).values,
        crs=4326,
    )
    columns = {"name": "County", "potential": "Potential", "territory_id": "Territory"}
    built = [
        maps.choropleth_map(units, "potential", tooltip_columns=columns, legend_title="Potential ($)"),
        maps.category_map(units, "cluster", tooltip_columns=columns, legend_title="Clusters"),
        maps.territory_map(
            units,
            tooltip_columns=columns,
            legend_title="Territory · rep",
            rep_names=dict(zip(homes["territory_id"], homes["name"], strict=True)),
            previous_column="before",
            points=homes,
        ),
    ]
    wide = pd.DataFrame({f"A rather long column name {i}": [123_456_789.0] * 3 for i in range(14)})
    cells = [nbformat.v4.new_markdown_cell("# Step 2 · Define territories")]
    for m in built:
        cell = nbformat.v4.new_code_cell()
        cell.outputs = [nbformat.v4.new_output("display_data", data=m._repr_mimebundle_())]
        cells.append(cell)
    table = nbformat.v4.new_code_cell()
    table.outputs = [nbformat.v4.new_output("display_data", data={"text/html": wide.to_html()})]
    cells.append(table)
    folder = tmp_path_factory.mktemp("georgia")
    notebook = folder / "02_define_territories.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), notebook)
    return report.export_html(notebook, folder / "02_define_territories.html", title="Step 2")


@pytest.mark.parametrize("width", WIDTHS)
def test_no_legend_or_control_covers_a_unit_and_no_sideways_scroll(georgia_report: Path, width: int) -> None:
    from browser import layout_probe

    probe = layout_probe(georgia_report.read_text(encoding="utf-8"), width)
    assert probe["width"] == width
    assert probe["leaflet"] == 1
    assert [m["units"] for m in probe["maps"]] == [159, 159, 159]
    assert [m["covered"] for m in probe["maps"]] == [0, 0, 0], "a legend or control hides units"
    assert [m["outside"] for m in probe["maps"]] == [0, 0, 0], "units outside the map's frame"
    assert probe["scrollWidth"] <= width, "the page scrolls sideways"
    territory = probe["maps"][2]
    assert territory["labels"] == 8 and territory["shownLabels"] >= 4 and territory["labelOverlaps"] == 0


def test_small_market_report_is_light_and_draws_offline(georgia_report: Path) -> None:
    from browser import count_drawn_polygons

    page = georgia_report.read_text(encoding="utf-8")
    assert len(page.encode()) <= SMALL_MARKET_LIMIT
    assert page.count('<script data-territory-asset="leaflet">') == 1
    assert page.count("<script data-territory-shapes=") == 1
    assert report.external_resources(page) == []
    assert count_drawn_polygons(georgia_report) == [159, 159, 159 + 8]


def test_map_in_a_notebook_output_draws_offline(tmp_path: Path) -> None:
    """JupyterLab shows a map's ``text/html``: a self-contained iframe, drawn with no network."""
    from browser import count_drawn_polygons

    units = georgia_counties()
    m = maps.territory_map(units, tooltip_columns=["name"], legend_title="Territory")
    output = tmp_path / "output.html"
    shown = m._repr_mimebundle_()["text/html"]
    output.write_text(f'<html><body><div class="jp-OutputArea-output">{shown}</div></body></html>')
    assert count_drawn_polygons(output) == [159]


@pytest.mark.slow
def test_georgia_market_reports(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The built-in Georgia market, run end to end: every step report within the limits."""
    from browser import layout_probe

    from territory_lib.cli import main
    from territory_lib.paths import REPORTS_ENV_VAR

    root = tmp_path_factory.mktemp("reports")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(REPORTS_ENV_VAR, str(root))
        assert main(["run", "georgia", "--run-date", "2026-11-27"]) == 0
    pages = sorted((root / "georgia").glob("0*.html"))
    assert len(pages) == 5
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert len(text.encode()) <= SMALL_MARKET_LIMIT, page.name
        assert text.count('<script data-territory-asset="leaflet">') <= 1, page.name
        for width in WIDTHS:
            probe = layout_probe(text, width)
            assert probe["scrollWidth"] <= width, (page.name, width)
            assert all(m["covered"] == 0 and m["outside"] == 0 for m in probe["maps"]), (page.name, width)
            assert all(m["units"] == 159 for m in probe["maps"]), (page.name, width)
