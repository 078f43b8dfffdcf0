"""Folium maps for the reports that draw with no network: Leaflet is inlined from a Python package,
base tiles are off unless asked for, and every label that reaches HTML is escaped.
"""

from __future__ import annotations

import base64
import colorsys
import functools
import html
import importlib.resources
import math
import numbers
import os
import re
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import Element
from branca.utilities import color_brewer
from shapely.geometry import mapping

from territory_lib.errors import ConfigError, DataError, TerritoryError
from territory_lib.geo import equal_area_crs
from territory_lib.paths import write_text_atomically

__all__ = [
    "CATEGORY_PALETTE",
    "category_colors",
    "category_map",
    "choropleth_map",
    "leaflet_assets",
    "offline_map",
    "quantile_classes",
    "save_map",
]

TooltipColumns = Mapping[str, str] | Sequence[str]

#: Tableau 20, strong shades first: distinct at the fill opacity the maps use.
CATEGORY_PALETTE: tuple[str, ...] = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
    "#a0cbe8", "#ffbe7d", "#ff9d9a", "#86bcb6", "#8cd17d",
    "#f1ce63", "#d4a6c8", "#fabfd2", "#d7b5a6", "#79706e",
)  # fmt: skip
MISSING_COLOR = "#d9d9d9"
BOUNDARY_COLOR = "#4d4d4d"
HIGHLIGHT_COLOR = "#111111"

# Simplification tolerance: 1 km per 1,000 km of map extent, about one screen pixel at the zoom
# that fits the whole market, so the outlines look the same at a fraction of the size.
_SIMPLIFY_METRES_PER_1000_KM = 1000.0
_COORDINATE_DECIMALS = 5  # ~1 m: far finer than the simplification, keeps the GeoJSON short

_LEAFLET_PACKAGE = "js_lib_leaflet"
_MAP_CSS = """
.leaflet-container { background: #ffffff; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
.territory-tooltip table { border-collapse: collapse; }
.territory-tooltip th { text-align: left; font-weight: normal; color: #555; padding: 1px 8px 1px 0; }
.territory-tooltip td { text-align: right; padding: 1px 0; }
.territory-tooltip .territory-tooltip-title { font-weight: 600; margin-bottom: 2px; }
.territory-legend { position: absolute; right: 10px; bottom: 22px; z-index: 1000;
  background: rgba(255,255,255,0.92); border: 1px solid #bbb; border-radius: 4px; padding: 6px 9px;
  max-height: 60%; overflow-y: auto; color: #222;
  font: 12px/1.35 system-ui, -apple-system, "Segoe UI", sans-serif; }
.territory-legend-title { font-weight: 600; margin-bottom: 4px; }
.territory-legend-row { display: flex; align-items: center; gap: 6px; white-space: nowrap; }
.territory-legend-swatch { display: inline-block; width: 14px; height: 12px; border: 1px solid #777;
  flex: none; }
.territory-legend-dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
  border: 1.5px solid #222; flex: none; margin: 0 2px; }
"""


@functools.cache
def leaflet_assets() -> tuple[str, str]:
    """Return Leaflet's script and stylesheet as text, ready to inline into a page.

    The files come from the ``django-js-lib-leaflet`` package (Leaflet 1.9.4). The stylesheet's
    ``url(images/...)`` references become ``data:`` URIs and the script's source-map comment is
    dropped, so the page references no other file.

    Returns
    -------
    tuple of str
        ``(leaflet_js, leaflet_css)``.
    """
    try:
        root = importlib.resources.files(_LEAFLET_PACKAGE).joinpath("static", _LEAFLET_PACKAGE)
        script = root.joinpath("leaflet.js").read_text(encoding="utf-8")
        css = root.joinpath("leaflet.css").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise TerritoryError(
            "Leaflet's files were not found in the Python package 'django-js-lib-leaflet'; "
            "install it with `pip install django-js-lib-leaflet` (it is a dependency of territory-planner)."
        ) from exc

    def inline_image(match: re.Match[str]) -> str:
        data = root.joinpath("images", match.group(2)).read_bytes()
        return f"url(data:image/png;base64,{base64.b64encode(data).decode('ascii')})"

    css = re.sub(r"""url\((['"]?)images/([\w.-]+\.png)\1\)""", inline_image, css)
    script = re.sub(r"//# sourceMappingURL=\S+\s*$", "", script)
    # A literal "</script" inside an inline script would end the element early.
    script = script.replace("</script", "<\\/script")
    return script, css


def offline_map(bounds: Sequence[float], *, tiles: str | None = None, height: int = 520) -> folium.Map:
    """Create an empty map that draws with no network, fitted to ``bounds``.

    Leaflet's script and stylesheet are inlined into the page; folium's CDN links (Leaflet, jQuery,
    Bootstrap, font-awesome) are dropped for this map only, so map elements that need those libraries
    (icon markers, popups, colour-bar legends) must not be added.

    Parameters
    ----------
    bounds
        ``(west, south, east, north)`` in degrees (WGS84), the order of
        ``GeoDataFrame.to_crs(4326).total_bounds``.
    tiles
        ``None`` (default) for no base map, which works offline; or a tile provider name folium
        knows, such as ``"OpenStreetMap"`` or ``"CartoDB positron"``, for readers who are online.
    height
        Height of the map in a notebook or report, in pixels.

    Returns
    -------
    folium.Map
    """
    west, south, east, north = (float(v) for v in bounds)
    if not all(map(math.isfinite, (west, south, east, north))) or west > east or south > north:
        raise DataError(
            f"Map bounds {tuple(bounds)!r} are not (west, south, east, north) in degrees; "
            "pass GeoDataFrame.to_crs(4326).total_bounds of non-empty geometries."
        )
    m = folium.Map(
        location=[(south + north) / 2, (west + east) / 2],
        tiles=None,
        zoom_start=6,
        control_scale=True,
        # A map inside a long report must not capture the page's scrolling.
        scroll_wheel_zoom=False,
        # Fractional zoom lets fit_bounds fill the frame instead of jumping a whole level out.
        zoom_snap=0.25,
        zoom_delta=0.5,
    )
    # Instance attributes shadow folium's class-level CDN lists without changing other maps.
    m.default_js = []
    m.default_css = []
    script, css = leaflet_assets()
    figure = m.get_root()
    figure.height = f"{int(height)}px"
    figure.header.add_child(Element(f"<style>{css}</style>"), name="leaflet_css_inline")
    figure.header.add_child(Element(f"<script>{script}</script>"), name="leaflet_js_inline")
    figure.header.add_child(Element(f"<style>{_MAP_CSS}</style>"), name="territory_map_css")
    if tiles:
        try:
            folium.TileLayer(tiles).add_to(m)
        except (ValueError, KeyError) as exc:
            raise ConfigError(
                f"tiles {tiles!r} is not a tile provider folium knows (e.g. 'OpenStreetMap', "
                "'CartoDB positron'); leave it empty for maps that work offline."
            ) from exc
    m.fit_bounds([[south, west], [north, east]], max_zoom=12)
    return m


def save_map(m: folium.Map, path: str | os.PathLike[str]) -> Path:
    """Write ``m`` as a standalone HTML page, atomically, and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, m.get_root().render())
    return path


def quantile_classes(values: Iterable[float], k: int = 5) -> np.ndarray:
    """Return the class edges of ``k`` quantile classes of ``values`` (NaNs ignored).

    Edges repeat when many values tie, so fewer than ``k`` classes come back for such data.
    The result has ``n_classes + 1`` increasing edges; an empty input gives an empty array.
    """
    if k < 1:
        raise ConfigError(f"The number of map classes must be at least 1, got {k}.")
    array = np.asarray(list(values), dtype=float)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return np.array([], dtype=float)
    # More classes than distinct values would invent class limits no unit has.
    k = min(k, np.unique(array).size)
    edges = np.unique(np.quantile(array, np.linspace(0.0, 1.0, k + 1)))
    if edges.size == 1:
        edges = np.array([edges[0], edges[0]])
    return edges


def category_colors(categories: Iterable[Hashable]) -> dict[Hashable, str]:
    """Map each distinct category to a colour, the same way every time.

    Categories are put in natural order (``T2`` before ``T10``, numbers by value) and take the
    colours of :data:`CATEGORY_PALETTE` in turn; beyond its 20 colours, further hues are spread by
    the golden angle. Missing values are left out.
    """
    distinct = sorted({c for c in categories if not _is_missing(c)}, key=_natural_key)
    return {c: _palette_color(i) for i, c in enumerate(distinct)}


def choropleth_map(
    gdf: gpd.GeoDataFrame,
    value_column: str,
    *,
    tooltip_columns: TooltipColumns,
    legend_title: str,
    value_format: str = "{:,.0f}",
    tiles: str | None = None,
    points: gpd.GeoDataFrame | None = None,
    point_tooltip_columns: TooltipColumns = ("name",),
    height: int = 520,
    classes: int = 5,
    palette: str = "YlGnBu",
    formats: Mapping[str, str] | None = None,
    point_color: str = "#d62728",
    points_label: str = "Points",
) -> folium.Map:
    """Map units shaded by ``value_column`` in quantile classes, with a legend of the class ranges.

    Parameters
    ----------
    gdf
        Units (polygons) with a CRS.
    value_column
        Numeric column to shade by; missing values are grey ("No data").
    tooltip_columns
        Columns shown when hovering a unit: a mapping ``{column: label}`` or a list of columns
        (then labelled by their names). The first column is shown as the tooltip's heading.
    legend_title
        Title of the legend (plain text; escaped).
    value_format
        ``str.format`` pattern for ``value_column`` in the legend and tooltips.
    tiles
        See :func:`offline_map`.
    points
        Optional points (e.g. accounts, rep homes) drawn as small circles on top.
    point_tooltip_columns
        Tooltip columns of the points (as ``tooltip_columns``).
    height
        Map height in pixels.
    classes
        Number of quantile classes (fewer when values tie).
    palette
        A ColorBrewer sequential scheme name (``branca.utilities.color_brewer``).
    formats
        Optional ``{column: format pattern}`` for other tooltip columns.
    point_color
        Fill colour of the points.
    points_label
        Legend entry for the points.

    Returns
    -------
    folium.Map
    """
    _require_columns(gdf, [value_column], "the units to map")
    values = pd.to_numeric(gdf[value_column], errors="coerce").to_numpy(dtype=float)
    edges = quantile_classes(values, classes)
    n_classes = max(edges.size - 1, 0)
    colors = _sequential_colors(palette, n_classes)
    class_index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, max(n_classes - 1, 0))
    fills = [
        colors[i] if math.isfinite(v) else MISSING_COLOR for i, v in zip(class_index, values, strict=True)
    ]
    column_formats = {value_column: value_format, **(formats or {})}

    units = _prepare_units(gdf)
    m = offline_map(units.total_bounds, tiles=tiles, height=height)
    styles = [_unit_style(fill) for fill in fills]
    _add_units_layer(m, units, styles, _tooltips(gdf, tooltip_columns, column_formats), legend_title)

    legend_rows = [
        (_swatch(color), f"{value_format.format(lo)} – {value_format.format(hi)}")
        for color, lo, hi in zip(colors, edges[:-1], edges[1:], strict=True)
    ]
    if not np.isfinite(values).all():
        legend_rows.append((_swatch(MISSING_COLOR), "No data"))
    if points is not None:
        _add_points_layer(m, points, [point_color] * len(points), point_tooltip_columns, formats)
        legend_rows.append((_dot(point_color), points_label))
    _add_legend(m, legend_title, legend_rows)
    return m


def category_map(
    gdf: gpd.GeoDataFrame,
    category_column: str,
    *,
    tooltip_columns: TooltipColumns,
    legend_title: str,
    tiles: str | None = None,
    points: gpd.GeoDataFrame | None = None,
    point_category_column: str | None = None,
    point_tooltip_columns: TooltipColumns = ("name",),
    highlight: Collection[Hashable] | None = None,
    height: int = 520,
    id_column: str = "unit_id",
    highlight_label: str = "Highlighted units",
    points_label: str = "Points",
    category_labels: Mapping[Hashable, str] | None = None,
    formats: Mapping[str, str] | None = None,
    colors: Mapping[Hashable, str] | None = None,
) -> folium.Map:
    """Map units coloured by a category, such as their territory.

    Parameters
    ----------
    gdf
        Units (polygons) with a CRS.
    category_column
        Column whose values get one colour each (:func:`category_colors`); missing values are
        grey ("Unassigned").
    tooltip_columns
        Columns shown when hovering a unit (see :func:`choropleth_map`).
    legend_title
        Title of the legend (plain text; escaped).
    tiles
        See :func:`offline_map`.
    points
        Optional points (e.g. rep homes) drawn as circles with a dark outline.
    point_category_column
        Column of ``points`` holding the category whose colour fills each point; without it the
        points are dark grey.
    point_tooltip_columns
        Tooltip columns of the points.
    highlight
        Values of ``id_column`` whose units get a thick dashed outline (e.g. units proposed to move).
    height
        Map height in pixels.
    id_column
        Column of ``gdf`` that ``highlight`` refers to.
    highlight_label, points_label
        Legend entries for the highlighted units and the points.
    category_labels
        Optional display names of categories in the legend (default: the category itself).
    formats
        Optional ``{column: format pattern}`` for tooltip columns.
    colors
        Optional fixed colours of some categories (CSS colours); the others take the palette's.

    Returns
    -------
    folium.Map
    """
    _require_columns(gdf, [category_column], "the units to map")
    fixed = dict(colors or {})
    colors = category_colors(gdf[category_column])
    if points is not None and point_category_column is not None:
        _require_columns(points, [point_category_column], "the points to map")
        colors = category_colors([*colors, *points[point_category_column]])
    colors = {c: fixed.get(c, color) for c, color in colors.items()}
    highlighted = np.zeros(len(gdf), dtype=bool)
    if highlight:
        _require_columns(gdf, [id_column], "the units to map (needed for highlight)")
        highlighted = gdf[id_column].isin(list(highlight)).to_numpy()

    styles = [
        _unit_style(MISSING_COLOR if _is_missing(c) else colors[c], highlighted=bool(h))
        for c, h in zip(gdf[category_column], highlighted, strict=True)
    ]
    units = _prepare_units(gdf)
    m = offline_map(units.total_bounds, tiles=tiles, height=height)
    _add_units_layer(m, units, styles, _tooltips(gdf, tooltip_columns, formats or {}), legend_title)

    labels = category_labels or {}
    legend_rows = [(_swatch(color), str(labels.get(c, c))) for c, color in colors.items()]
    if gdf[category_column].map(_is_missing).any():
        legend_rows.append((_swatch(MISSING_COLOR), "Unassigned"))
    if highlighted.any():
        legend_rows.append(
            (
                f'<span class="territory-legend-swatch" style="border:2px dashed {HIGHLIGHT_COLOR}"></span>',
                highlight_label,
            )
        )
    if points is not None:
        if point_category_column is None:
            point_fills = ["#555555"] * len(points)
        else:
            point_fills = [
                MISSING_COLOR if _is_missing(c) else colors[c] for c in points[point_category_column]
            ]
        _add_points_layer(m, points, point_fills, point_tooltip_columns, formats)
        legend_rows.append((_dot("#555555" if point_category_column is None else "#ffffff"), points_label))
    _add_legend(m, legend_title, legend_rows)
    return m


def _prepare_units(gdf: gpd.GeoDataFrame) -> gpd.GeoSeries:
    """Return the unit outlines in WGS84, simplified for display and rounded to ~1 m."""
    if gdf.crs is None:
        raise DataError(
            "The units to map have no coordinate reference system; set it on the GeoDataFrame "
            "(e.g. gdf.set_crs('EPSG:4326')) or in the units data file."
        )
    if len(gdf) == 0:
        raise DataError("The units to map are empty: there is nothing to draw.")
    geometry = gdf.geometry.reset_index(drop=True)
    if geometry.is_empty.any() or geometry.isna().any():
        bad = gdf.index[(gdf.geometry.is_empty | gdf.geometry.isna()).to_numpy()][:5].tolist()
        raise DataError(f"Units at rows {bad} have no geometry; every unit needs a polygon to be mapped.")
    projected = geometry.to_crs(equal_area_crs(gdf))
    minx, miny, maxx, maxy = projected.total_bounds
    tolerance = max(maxx - minx, maxy - miny) / 1_000_000 * _SIMPLIFY_METRES_PER_1000_KM
    if (projected.geom_type.isin(["Polygon", "MultiPolygon"])).all() and tolerance > 0:
        # Coverage simplification moves shared borders once, so neighbours stay gap-free.
        simplified = projected.simplify_coverage(tolerance)
    else:
        simplified = projected.simplify(tolerance, preserve_topology=True)
    return gpd.GeoSeries(_round_coordinates(simplified.to_crs(4326)), crs=4326)


def _round_coordinates(series: gpd.GeoSeries) -> np.ndarray:
    return shapely.transform(np.asarray(series.values), lambda xy: np.round(xy, _COORDINATE_DECIMALS))


def _add_units_layer(
    m: folium.Map,
    units: gpd.GeoSeries,
    styles: Sequence[dict[str, Any]],
    tooltips: Sequence[str],
    name: str,
) -> None:
    collection = _feature_collection(units, tooltips)
    folium.GeoJson(
        collection,
        name=html.escape(name),
        style_function=_style_lookup(styles),
        highlight_function=lambda feature: {"weight": 3, "color": "#000000", "fillOpacity": 0.85},
        tooltip=folium.GeoJsonTooltip(fields=["tooltip"], labels=False, class_name="territory-tooltip"),
    ).add_to(m)


def _add_points_layer(
    m: folium.Map,
    points: gpd.GeoDataFrame,
    fills: Sequence[str],
    tooltip_columns: TooltipColumns,
    formats: Mapping[str, str] | None,
) -> None:
    if points.crs is None:
        raise DataError(
            "The points to map have no coordinate reference system; build them with "
            "gpd.points_from_xy(lon, lat, crs='EPSG:4326')."
        )
    if len(points) == 0:
        return
    if not points.geom_type.eq("Point").all():
        raise DataError("The points to map must all be Point geometries (one location per row).")
    geometry = points.geometry.reset_index(drop=True).to_crs(4326)
    geometry = gpd.GeoSeries(_round_coordinates(geometry), crs=4326)
    styles = [
        {"fillColor": fill, "color": "#222222", "weight": 1.5, "fillOpacity": 0.95, "radius": 6}
        for fill in fills
    ]
    folium.GeoJson(
        _feature_collection(geometry, _tooltips(points, tooltip_columns, formats or {})),
        name="points",
        marker=folium.CircleMarker(radius=6),
        style_function=_style_lookup(styles),
        tooltip=folium.GeoJsonTooltip(fields=["tooltip"], labels=False, class_name="territory-tooltip"),
    ).add_to(m)


def _feature_collection(geometry: gpd.GeoSeries, tooltips: Sequence[str]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection whose features carry only an id and a ready-made tooltip."""
    features = [
        {"type": "Feature", "id": str(i), "properties": {"tooltip": tip}, "geometry": mapping(geom)}
        for i, (tip, geom) in enumerate(zip(tooltips, geometry, strict=True))
    ]
    return {"type": "FeatureCollection", "features": features}


def _style_lookup(styles: Sequence[dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    # folium evaluates the style function per feature in Python and stores each distinct style once.
    return lambda feature: styles[int(feature["id"])]


def _unit_style(fill: str, *, highlighted: bool = False) -> dict[str, Any]:
    if highlighted:
        return {
            "fillColor": fill,
            "color": HIGHLIGHT_COLOR,
            "weight": 3,
            "dashArray": "6 4",
            "fillOpacity": 0.75,
        }
    return {"fillColor": fill, "color": BOUNDARY_COLOR, "weight": 0.6, "fillOpacity": 0.75}


def _tooltips(frame: pd.DataFrame, columns: TooltipColumns, formats: Mapping[str, str]) -> list[str]:
    """One escaped HTML snippet per row: the first column as heading, the others as a table."""
    pairs = list(columns.items()) if isinstance(columns, Mapping) else [(c, c) for c in columns]
    if isinstance(columns, str):
        pairs = [(columns, columns)]
    _require_columns(frame, [c for c, _ in pairs], "the tooltip columns")
    if not pairs:
        return [""] * len(frame)
    rendered = {c: [_format_value(v, formats.get(c)) for v in frame[c]] for c, _ in pairs}
    (head_column, _), rest = pairs[0], pairs[1:]
    tips = []
    for i in range(len(frame)):
        rows = "".join(
            f"<tr><th>{html.escape(str(label))}</th><td>{rendered[c][i]}</td></tr>" for c, label in rest
        )
        table = f"<table>{rows}</table>" if rows else ""
        tips.append(f'<div class="territory-tooltip-title">{rendered[head_column][i]}</div>{table}')
    return tips


def _format_value(value: Any, pattern: str | None = None) -> str:
    """Format one value for people (thousands separators, few decimals) and escape it for HTML."""
    if _is_missing(value):
        return "–"
    if pattern is not None and isinstance(value, numbers.Number):
        text = pattern.format(value)
    elif isinstance(value, bool | np.bool_):
        text = "Yes" if value else "No"
    elif isinstance(value, numbers.Integral):
        text = f"{int(value):,}"
    elif isinstance(value, numbers.Real):
        number = float(value)
        if number.is_integer() or abs(number) >= 100:
            text = f"{number:,.0f}"
        elif abs(number) >= 1:
            text = f"{number:,.2f}"
        else:
            text = f"{number:.3g}"
    elif isinstance(value, pd.Timestamp):
        text = value.date().isoformat() if value == value.normalize() else value.isoformat(sep=" ")
    else:
        text = str(value)
    return html.escape(text)


def _add_legend(m: folium.Map, title: str, rows: Sequence[tuple[str, str]]) -> None:
    """A plain HTML legend (branca's colormap legend would pull d3 from a CDN)."""
    body = "".join(
        f'<div class="territory-legend-row">{swatch}<span>{html.escape(label)}</span></div>'
        for swatch, label in rows
    )
    legend = (
        f'<div class="territory-legend" role="group" aria-label="Legend">'
        f'<div class="territory-legend-title">{html.escape(title)}</div>{body}</div>'
    )
    m.get_root().html.add_child(Element(legend), name="territory_legend")


def _swatch(color: str) -> str:
    return f'<span class="territory-legend-swatch" style="background:{color}"></span>'


def _dot(color: str) -> str:
    return f'<span class="territory-legend-dot" style="background:{color}"></span>'


def _sequential_colors(palette: str, n: int) -> list[str]:
    if n == 0:
        return []
    try:
        # ColorBrewer schemes start at 3 colours; fewer classes take the ends (or the middle).
        colors = color_brewer(palette, max(n, 3))
    except ValueError as exc:
        raise ConfigError(
            f"palette {palette!r} is not a ColorBrewer scheme (e.g. 'YlGnBu', 'Blues')."
        ) from exc
    if n == 1:
        return [colors[1]]
    if n == 2:
        return [colors[0], colors[-1]]
    return list(colors[:n])


def _palette_color(i: int) -> str:
    if i < len(CATEGORY_PALETTE):
        return CATEGORY_PALETTE[i]
    hue = (i - len(CATEGORY_PALETTE)) * 0.6180339887 % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.55, 0.85)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def _natural_key(value: Hashable) -> tuple[Any, ...]:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return (0, float(value), ())
    parts = re.split(r"(\d+)", str(value))
    return (1, 0.0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p.casefold()) for p in parts))


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(isinstance(value, float | np.floating) and math.isnan(value))
    except TypeError:
        return False


def _require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"Column(s) {missing} not found in {what}; available columns: {list(frame.columns)}.")
