"""Maps draw offline, escape every label, show a legend and keep one feature per unit."""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import nbformat
import numpy as np
import pandas as pd
import pytest
import shapely
from libpysal.examples import get_path

from territory_lib import maps
from territory_lib.errors import ConfigError, DataError
from territory_lib.report import external_resources

HOSTILE = "<script>alert(1)</script>"
HOSTILE_IMG = '<img src=x onerror="alert(2)">'


def grid_units(n_cols: int = 4, n_rows: int = 3) -> gpd.GeoDataFrame:
    """A small grid of square 'counties' near Atlanta, with hostile names and a territory column."""
    cells = [
        shapely.box(-84.5 + 0.2 * c, 33.5 + 0.2 * r, -84.3 + 0.2 * c, 33.7 + 0.2 * r)
        for r in range(n_rows)
        for c in range(n_cols)
    ]
    n = len(cells)
    return gpd.GeoDataFrame(
        {
            "unit_id": [f"U{i:02d}" for i in range(n)],
            "name": [HOSTILE if i == 0 else HOSTILE_IMG if i == 1 else f"County {i}" for i in range(n)],
            "potential": np.arange(n) * 123_456.7,
            "territory_id": [["T1", "T2", "T10", HOSTILE][i % 4] for i in range(n)],
        },
        geometry=cells,
        crs="EPSG:4326",
    )


def rep_points() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"name": [HOSTILE, "Ann"], "territory_id": ["T1", "T2"]},
        geometry=gpd.points_from_xy([-84.4, -84.0], [33.6, 33.8]),
        crs="EPSG:4326",
    )


@pytest.fixture
def choropleth() -> folium.Map:
    return maps.choropleth_map(
        grid_units(),
        "potential",
        tooltip_columns={"name": "County", "potential": "Potential ($)"},
        legend_title=f"Potential {HOSTILE}",
        points=rep_points(),
    )


@pytest.fixture
def territories() -> folium.Map:
    return maps.category_map(
        grid_units(),
        "territory_id",
        tooltip_columns={"name": "County", "territory_id": "Territory"},
        legend_title="Territory",
        points=rep_points(),
        point_category_column="territory_id",
        highlight={"U03", "U05"},
        highlight_label=f"Proposed {HOSTILE_IMG}",
    )


def rendered_documents(m: folium.Map) -> list[str]:
    """The page ``save_map`` writes, the notebook output's iframe document and the report fragment."""
    bundle = m._repr_mimebundle_()
    srcdoc = re.search(r'srcdoc="([^"]*)"', bundle["text/html"])
    assert srcdoc, "the notebook representation has no iframe"
    return [maps.map_page(m), html.unescape(srcdoc.group(1)), maps.leaflet_tags() + bundle[maps.MAP_MIMETYPE]]


def units_layer(m: folium.Map) -> Any:
    (layer,) = [child for child in m._children.values() if type(child).__name__ == "_UnitsLayer"]
    return layer


def decode(text: str, factor: int) -> list[tuple[float, float]]:
    """Google's polyline decoding, written from the algorithm's description: (lat, lon) pairs."""
    values, shift, result = [], 0, 0
    for char in text:
        b = ord(char) - 63
        result |= (b & 0x1F) << shift
        shift += 5
        if b < 0x20:
            values.append(~(result >> 1) if result & 1 else result >> 1)
            shift, result = 0, 0
    lat_lon = np.cumsum(np.array(values).reshape(-1, 2), axis=0) / factor
    return [tuple(pair) for pair in lat_lon]


def unit_shapes(m: folium.Map) -> list[str]:
    layer = units_layer(m)
    return json.loads(m.shapes[layer.payload["shapes"]])


@pytest.mark.parametrize("builder", ["choropleth", "territories"])
def test_map_references_no_other_host(builder: str, request: pytest.FixtureRequest) -> None:
    m = request.getfixturevalue(builder)
    for document in rendered_documents(m):
        assert external_resources(document) == []
        assert not re.search(r"<script[^>]+src=", document)
        assert not re.search(r"<link[^>]+href=", document)
        assert "L.map(" in document and "leaflet" in document.casefold()
        assert document.count('<script data-territory-asset="leaflet">') == 1


def test_folium_class_defaults_are_left_alone(choropleth: folium.Map) -> None:
    assert any("leaflet" in url for _, url in folium.Map.default_js)
    assert choropleth.default_js == [] and choropleth.default_css == []


@pytest.mark.parametrize("builder", ["choropleth", "territories"])
def test_hostile_names_are_escaped(builder: str, request: pytest.FixtureRequest) -> None:
    m = request.getfixturevalue(builder)
    for document in rendered_documents(m):
        # Only Leaflet's own code and the map script may be scripts; names never become markup.
        assert "<script>alert(1)" not in document
        assert "<img src=x" not in document
    layer = units_layer(m)
    tooltips = [layer.tooltip_html(i) for i in range(len(layer.styles))]
    assert any(html.escape(HOSTILE) in tip for tip in tooltips)
    assert all("<script" not in tip and "<img" not in tip for tip in tooltips)


def test_legend_shows_quantile_ranges_with_separators(choropleth: folium.Map) -> None:
    page = maps.map_fragment(choropleth)
    legend = re.search(r'<details class="territory-legend".*?</details>', page, re.S)
    assert legend, "no legend on the map"
    assert html.escape(f"Potential {HOSTILE}") in legend.group(0)
    assert "<span>Points</span>" in legend.group(0)
    ranges = re.findall(r"<span>([\d,]+) – ([\d,]+)</span>", legend.group(0))
    assert len(ranges) == 5
    assert ranges[0][0] == "0" and ranges[-1][1] == f"{11 * 123_456.7:,.0f}"


def test_category_legend_lists_territories_in_natural_order(territories: folium.Map) -> None:
    page = maps.map_fragment(territories)
    labels = re.findall(r'<div class="territory-legend-row">.*?<span>(.*?)</span></div>', page)
    # Natural order: "<" sorts before letters, and T10 comes after T2.
    assert labels[:4] == [html.escape(HOSTILE), "T1", "T2", "T10"]
    assert html.escape(f"Proposed {HOSTILE_IMG}") in labels


def test_one_feature_per_unit_and_highlight() -> None:
    units = grid_units(5, 4)
    m = maps.category_map(
        units, "territory_id", tooltip_columns=["name"], legend_title="T", highlight={"U03"}
    )
    layer = units_layer(m)
    assert len(unit_shapes(m)) == len(units) == len(layer.styles)
    styles = [layer.payload["styles"][i] for i in layer.payload["style"]]
    assert styles == layer.styles
    assert [s.get("dashArray") is not None for s in styles] == [i == 3 for i in range(len(units))]
    colors = maps.category_colors(units["territory_id"])
    assert [s["fillColor"] for s in styles] == [colors[t] for t in units["territory_id"]]


def test_fixed_colours_override_the_palette_for_their_categories() -> None:
    units = grid_units()
    m = maps.category_map(
        units, "territory_id", tooltip_columns=["name"], legend_title="T", colors={"T2": "#123456"}
    )
    fills = [style["fillColor"] for style in units_layer(m).styles]
    palette = maps.category_colors(units["territory_id"])
    assert fills == ["#123456" if t == "T2" else palette[t] for t in units["territory_id"]]
    assert '<span class="territory-legend-swatch" style="background:#123456">' in maps.map_fragment(m)


def test_tooltip_numbers_are_formatted_for_people() -> None:
    units = grid_units()
    m = maps.choropleth_map(
        units, "potential", tooltip_columns={"name": "County", "potential": "Potential"}, legend_title="P"
    )
    assert "<td>1,234,567</td>" in units_layer(m).tooltip_html(10)


def test_real_state_map_stays_small_and_fits_bounds() -> None:
    states = gpd.read_file(get_path("us48.shp")).set_crs("EPSG:4326")
    m = maps.choropleth_map(states, "AREA", tooltip_columns=["STATE_NAME"], legend_title="Area")
    assert len(unit_shapes(m)) == 48
    size = len(maps.map_fragment(m))
    assert size < 60_000, f"48-state map is {size:,} bytes"
    fit = json.loads(re.search(r"territoryFit\(\w+, (\{.*?\})\);", maps.map_fragment(m)).group(1))
    (south, west), (north, east) = fit["bounds"]
    assert fit["topLeft"][0] > 44, "the zoom buttons' corner is not kept free"
    assert west < -124 and east > -67 and south < 25 and north > 49


def test_projected_units_are_reprojected_to_wgs84() -> None:
    units = grid_units().to_crs("EPSG:26917")
    m = maps.category_map(units, "territory_id", tooltip_columns=["name"], legend_title="T")
    factor = units_layer(m).payload["factor"]
    coords = np.array([pt for shape in unit_shapes(m) for pt in decode(shape, factor)])
    lat, lon = coords[:, 0], coords[:, 1]
    assert lon.min() > -84.6 and lon.max() < -83.2 and lat.min() > 33.4 and lat.max() < 34.2


def test_tiles_are_off_unless_asked() -> None:
    bounds = (-85.0, 33.0, -84.0, 34.0)
    assert "tile.openstreetmap" not in maps.map_page(maps.offline_map(bounds))
    assert "tile.openstreetmap" in maps.map_page(maps.offline_map(bounds, tiles="OpenStreetMap"))


def test_clear_errors() -> None:
    units = grid_units()
    with pytest.raises(DataError, match="'nope'"):
        maps.choropleth_map(units, "nope", tooltip_columns=["name"], legend_title="x")
    with pytest.raises(DataError, match="coordinate reference system"):
        maps.category_map(
            units.set_crs(None, allow_override=True),
            "territory_id",
            tooltip_columns=["name"],
            legend_title="x",
        )
    with pytest.raises(ConfigError, match="palette"):
        maps.choropleth_map(units, "potential", tooltip_columns=["name"], legend_title="x", palette="nope")


def test_quantile_classes_handle_ties_and_missing_values() -> None:
    assert maps.quantile_classes([5, 5, 5]).tolist() == [5, 5]
    assert maps.quantile_classes([1, 2]).tolist() == [1, 1.5, 2]
    assert maps.quantile_classes([np.nan]).size == 0
    units = grid_units()
    units.loc[0, "potential"] = np.nan
    page = maps.map_fragment(
        maps.choropleth_map(units, "potential", tooltip_columns=["name"], legend_title="x")
    )
    assert "No data" in page


def test_save_map_writes_a_standalone_page(tmp_path: Path, choropleth: folium.Map) -> None:
    path = maps.save_map(choropleth, tmp_path / "sub" / "map.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in path.parent.iterdir()] == ["map.html"]


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Chromium (apt-get install chromium)")
def test_maps_draw_every_unit_with_no_network(tmp_path: Path) -> None:
    from browser import count_drawn_polygons

    units = grid_units(6, 5)
    m = maps.category_map(units, "territory_id", tooltip_columns=["name"], legend_title="Territory")
    report = tmp_path / "report.html"
    report.write_text(f"<html><body><h1>Report</h1>{m._repr_html_()}</body></html>", encoding="utf-8")
    assert count_drawn_polygons(report) == [len(units)]
    standalone = maps.save_map(
        maps.choropleth_map(
            units, "potential", tooltip_columns=["name"], legend_title="P", points=rep_points()
        ),
        tmp_path / "map.html",
    )
    assert count_drawn_polygons(standalone) == [len(units) + 2]


def georgia_counties() -> gpd.GeoDataFrame:
    """Georgia's 159 real counties in three blocks of territories, west / south-east / north-east."""
    counties = gpd.read_file(get_path("G_utm.shp")).set_crs("EPSG:26916", allow_override=True)
    x, y = counties.geometry.centroid.x, counties.geometry.centroid.y
    counties["territory_id"] = np.where(x < x.median(), "T01", np.where(y < y.median(), "T02", "T03"))
    counties["name"] = counties["AreaKey"].astype(str)
    counties["potential"] = counties["TotPop90"].astype(float)
    return counties


def touching_pairs(units: gpd.GeoDataFrame, column: str) -> set[tuple[str, str]]:
    left, right = shapely.STRtree(units.geometry.values).query(units.geometry.values, predicate="intersects")
    labels = units[column].to_numpy()
    return {(a, b) for a, b in zip(labels[left], labels[right], strict=True) if a != b}


def test_neighbouring_territories_never_share_a_colour() -> None:
    units = georgia_counties()
    # Eight territories from a 4 x 2 grid of centroids: each touches up to five others.
    x, y = units.geometry.centroid.x, units.geometry.centroid.y
    columns, rows = pd.qcut(x, 4, labels=False), pd.qcut(y, 2, labels=False)
    units["plan"] = [f"T{i}{j}" for i, j in zip(columns, rows, strict=True)]
    colors = maps.territory_colors(units, "plan")
    assert set(colors) == set(units["plan"])
    assert set(colors.values()) <= set(maps.TERRITORY_PALETTE[:8])
    pairs = touching_pairs(units, "plan")
    assert pairs and all(colors[a] != colors[b] for a, b in pairs)
    # Fewer colours than territories: colours repeat, only ever between territories apart.
    assert len(set(colors.values())) < len(colors)
    assert maps.territory_colors(units, "plan") == colors


def test_territory_colours_hold_across_plans_shown_side_by_side() -> None:
    units = georgia_counties()
    units["other"] = np.where(units.geometry.centroid.y < units.geometry.centroid.y.median(), "T01", "T03")
    colors = maps.territory_colors(units, ["territory_id", "other"])
    for column in ("territory_id", "other"):
        assert all(colors[a] != colors[b] for a, b in touching_pairs(units, column))


def test_territory_map_outlines_labels_and_moves() -> None:
    units = georgia_counties()
    units["before"] = units["territory_id"]
    moved = [5, 40]
    units.loc[moved, "before"] = "T03"
    units.loc[moved, "territory_id"] = "T01"
    hostile_rep = "{{ 7 * 7 }} <b>Ann</b>"
    m = maps.territory_map(
        units,
        "territory_id",
        tooltip_columns={"name": "County"},
        legend_title="Territory · rep",
        title="The plan",
        rep_names={"T01": hostile_rep},
        previous_column="before",
    )
    page = maps.map_fragment(m)
    # Labels at the territories' centres, escaped and never read as a template.
    labels = re.search(r"territoryLabels\(\w+, (\{.*?\})\);", page).group(1)
    texts = [label[2] for label in json.loads(labels)["labels"]]
    assert sorted(texts) == sorted([html.escape(f"T01 · {hostile_rep}"), "T02", "T03"])
    assert "49" not in texts[0] and "<b>" not in page
    # One bold outline path per territory boundary ring, drawn by the page.
    outlines = json.loads(re.search(r"territoryOutlines\(\w+, (\{.*?\})\);", page).group(1))
    assert len(outlines["lines"]) >= 3 and outlines["style"]["weight"] > 2
    layer = units_layer(m)
    changed = [i for i in range(len(units)) if layer.styles[i].get("dashArray")]
    changed_rows = [
        i for i, (b, t) in enumerate(zip(units["before"], units["territory_id"], strict=True)) if b != t
    ]
    assert changed == changed_rows and len(changed) >= 2
    assert "Moves from T03 to T01" in layer.tooltip_html(changed[0])
    assert "Moves from" not in layer.tooltip_html(next(i for i in range(len(units)) if i not in changed))
    colors = maps.territory_colors(units, ["territory_id", "before"])
    assert layer.hatch[changed[0]] == (colors["T03"], colors["T01"])
    assert 'aria-label="Map: The plan"' in page and '<figcaption class="territory-map-title"' in page


def test_quantile_classes_are_mapclassify_quantiles() -> None:
    import mapclassify

    values = np.random.default_rng(3).lognormal(10, 1, 500)
    edges = maps.quantile_classes(values, 5)
    assert edges.tolist() == [values.min(), *mapclassify.Quantiles(values, k=5).bins]
    # Whole numbers fall on the class limits: each unit is shaded by mapclassify's class.
    units = grid_units(10, 10)
    units["potential"] = np.random.default_rng(4).integers(0, 12, len(units)).astype(float)
    m = maps.choropleth_map(units, "potential", tooltip_columns=["name"], legend_title="P", palette="Blues")
    classes = mapclassify.Quantiles(units["potential"].to_numpy(), k=5)
    palette = maps._sequential_colors("Blues", len(classes.bins))
    assert [style["fillColor"] for style in units_layer(m).styles] == [palette[c] for c in classes.yb]


def test_outlines_are_encoded_to_the_rounded_coordinates() -> None:
    units = georgia_counties()
    m = maps.choropleth_map(units, "potential", tooltip_columns=["name"], legend_title="P")
    factor = units_layer(m).payload["factor"]
    shapes = unit_shapes(m)
    assert len(shapes) == 159
    decoded = [decode(ring, factor) for ring in shapes[0].replace(";", ",").split(",")]
    lat_lon = np.array([pt for ring in decoded for pt in ring])
    wgs84 = units.to_crs(4326).geometry.iloc[0]
    assert shapely.Polygon(lat_lon[:, ::-1]).buffer(0).symmetric_difference(wgs84).area < 0.02 * wgs84.area


def test_report_carries_leaflet_and_shared_outlines_once() -> None:
    from territory_lib.report import InlineMaps

    units = georgia_counties()
    first = maps.choropleth_map(units, "potential", tooltip_columns=["name"], legend_title="P")
    second = maps.territory_map(units, tooltip_columns=["name"], legend_title="T")
    cells = [nbformat.v4.new_code_cell() for _ in range(2)]
    for cell, m in zip(cells, (first, second), strict=True):
        cell.outputs = [nbformat.v4.new_output("display_data", data=m._repr_mimebundle_())]
        assert "<iframe srcdoc=" in cell.outputs[0].data["text/html"]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb, _ = InlineMaps().preprocess(nb, {})
    pages = [cell.outputs[0].data["text/html"] for cell in nb.cells]
    assert all(maps.MAP_MIMETYPE not in cell.outputs[0].data for cell in nb.cells)
    assert "<iframe" not in "".join(pages)
    assert [p.count('<script data-territory-asset="leaflet">') for p in pages] == [1, 0]
    assert [p.count("<script data-territory-shapes=") for p in pages] == [1, 0]
    assert len("".join(pages)) < 400_000


@pytest.mark.skipif(
    importlib.util.find_spec("_plotly_geo") is None, reason="needs plotly-geo (the bench extra)"
)
def test_national_county_maps_stay_within_the_large_report_budget() -> None:
    """Two maps of the 3,108 US counties on one page: at this weight per unit, 30,000 units < 5 MB."""
    import _plotly_geo

    from territory_lib.report import InlineMaps

    counties = gpd.read_file(
        Path(_plotly_geo.__file__).parent / "package_data" / "cb_2016_us_county_500k.shp"
    )
    counties = counties[~counties["STATEFP"].isin(["02", "15", "60", "66", "69", "72", "78"])]
    counties = counties.set_crs("EPSG:4269", allow_override=True).reset_index(drop=True)
    counties["potential"] = np.arange(len(counties)) * 1234.5
    counties["territory_id"] = [f"T{int(s) % 60:02d}" for s in counties["STATEFP"]]
    columns = {"NAME": "County", "potential": "Potential", "territory_id": "Territory"}
    nb = nbformat.v4.new_notebook()
    for m in (
        maps.choropleth_map(counties, "potential", tooltip_columns=columns, legend_title="P"),
        maps.territory_map(counties, tooltip_columns=columns, legend_title="T"),
    ):
        cell = nbformat.v4.new_code_cell()
        cell.outputs = [nbformat.v4.new_output("display_data", data=m._repr_mimebundle_())]
        nb.cells.append(cell)
    nb, _ = InlineMaps().preprocess(nb, {})
    page = "".join(cell.outputs[0].data["text/html"] for cell in nb.cells)
    per_unit = (len(page.encode()) - len(maps.leaflet_tags().encode())) / len(counties)
    assert len(counties) == 3108
    assert per_unit * 30_000 < 4_000_000, f"{per_unit:.0f} bytes per unit"


def test_map_classes_leave_numba_compiling_for_the_rest_of_the_kernel() -> None:
    """mapclassify is imported with numba's compiler off (its kernel costs seconds at import and
    the maps never use it); the compiler must be back on afterwards for the route model."""
    pytest.importorskip("numba")
    code = (
        "from numba.core import config\n"
        "from territory_lib import maps\n"
        "print(list(maps.quantile_classes(range(10), 4)), config.DISABLE_JIT)\n"
        "import mapclassify.classifiers as c\n"
        "print(type(c._fisher_jenks_means).__name__)\n"
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    first, second = out.stdout.splitlines()
    assert first.endswith(" 0") and first.startswith("[np.float64(0.0)")
    assert second == "function"  # not compiled


def _decode_polyline(text: str, factor: int) -> list[tuple[float, float]]:
    """Google's polyline decoding, back to ``(lon, lat)`` points."""
    return [(lon, lat) for lat, lon in decode(text, factor)]


def test_unit_outlines_encode_every_ring_of_every_shape() -> None:
    from shapely.geometry import MultiPolygon, Polygon

    holed = Polygon(
        [(-84.1, 33.2), (-83.9, 33.2), (-83.9, 33.4), (-84.1, 33.4)],
        [[(-84.0, 33.3), (-83.95, 33.3), (-83.95, 33.35)]],
    )
    far = Polygon([(-179.99999, -89.5), (179.99999, -89.5), (0.0, 89.99999)])  # values of 5+ characters
    shapes = gpd.GeoSeries(
        [holed, MultiPolygon([far, holed]), Polygon(), MultiPolygon([Polygon(), holed])], crs=4326
    )
    factor = 10**5
    encoded = maps._encode_shapes(shapes, factor)
    expected = [[[holed]], [[far], [holed]], [], [[holed]]]
    assert len(encoded) == len(expected)
    for text, polygons in zip(encoded, expected, strict=True):
        decoded = [
            [_decode_polyline(ring, factor) for ring in part.split(",")] for part in text.split(";") if text
        ]
        rings = [
            [np.round(np.asarray(r.coords)[:-1], 5).tolist() for r in (p.exterior, *p.interiors)]
            for [p] in polygons
        ]
        assert [[np.round(ring, 5).tolist() for ring in part] for part in decoded] == rings


def test_maps_of_the_same_units_simplify_them_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = maps._simplify_units

    def counting(geometry, crs):
        calls.append(len(geometry))
        return real(geometry, crs)

    monkeypatch.setattr(maps, "_simplify_units", counting)
    monkeypatch.setattr(maps, "_PREPARED_UNITS", {})
    units = grid_units(6, 5)
    first = maps.choropleth_map(units, "potential", tooltip_columns=["name"], legend_title="P")
    again = maps.category_map(units, "territory_id", tooltip_columns=["name"], legend_title="T")
    assert calls == [30]
    assert units_layer(first).payload["shapes"] == units_layer(again).payload["shapes"]
    moved = units.copy()
    moved.geometry = moved.geometry.translate(0.01, 0.0)  # other outlines: simplified anew
    maps.choropleth_map(moved, "potential", tooltip_columns=["name"], legend_title="P")
    assert calls == [30, 30]
