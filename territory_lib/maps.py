"""Folium maps for the reports that draw with no network: a titled frame with the legend beside the
map, Leaflet inlined once per page (not once per map), base tiles off unless asked for, territories
outlined, labelled and coloured so neighbours differ, and every label that reaches HTML escaped.
"""

from __future__ import annotations

import base64
import colorsys
import functools
import hashlib
import html
import importlib.resources
import json
import math
import numbers
import os
import re
import warnings
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import Element, MacroElement
from branca.utilities import color_brewer
from shapely.geometry import mapping
from shapely.ops import polylabel

from territory_lib.errors import ConfigError, DataError, TerritoryError
from territory_lib.geo import equal_area_crs
from territory_lib.paths import write_text_atomically

__all__ = [
    "CATEGORY_PALETTE",
    "MAP_MIMETYPE",
    "TERRITORY_PALETTE",
    "TerritoryMap",
    "category_colors",
    "category_map",
    "choropleth_map",
    "display_outlines",
    "leaflet_assets",
    "leaflet_tags",
    "map_fragment",
    "map_page",
    "offline_map",
    "quantile_classes",
    "save_map",
    "territory_colors",
    "territory_map",
]

TooltipColumns = Mapping[str, str] | Sequence[str]

#: Tableau 20, strong shades first: distinct at the fill opacity the maps use.
CATEGORY_PALETTE: tuple[str, ...] = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
    "#a0cbe8", "#ffbe7d", "#ff9d9a", "#86bcb6", "#8cd17d",
    "#f1ce63", "#d4a6c8", "#fabfd2", "#d7b5a6", "#79706e",
)  # fmt: skip
#: Paul Tol's "light" scheme (made for areas with dark labels on top, distinct for colour-blind
#: readers), then his "muted" scheme for the rare map whose territories need more than eight colours.
TERRITORY_PALETTE: tuple[str, ...] = (
    "#77AADD", "#EE8866", "#EEDD88", "#FFAABB", "#99DDFF", "#44BB99", "#BBCC33", "#AAAA00",
    "#CC6677", "#88CCEE", "#DDCC77", "#117733", "#332288", "#AA4499", "#44AA99", "#999933",
)  # fmt: skip
MISSING_COLOR = "#d9d9d9"
BOUNDARY_COLOR = "#4d4d4d"
HIGHLIGHT_COLOR = "#111111"
OUTLINE_COLOR = "#1a1a1a"

#: Notebook output type carrying the map as a page fragment (no Leaflet); the report exporter
#: puts it in the page and inlines Leaflet once. Notebook front ends show the ``text/html`` iframe.
MAP_MIMETYPE = "application/vnd.territory.map+html"

# Simplification tolerance: 1 km per 1,000 km of map extent, about one screen pixel at the zoom
# that fits the whole market, so the outlines look the same at a fraction of the size.
_SIMPLIFY_METRES_PER_1000_KM = 1000.0
_METRES_PER_DEGREE = 111_320.0
_MANY_UNITS = 2_000
# Space kept free of units when the map is fitted: Leaflet's zoom buttons sit in the top-left
# corner (10 px margin, 34 px wide, 64 px tall) and the attribution (if tiles) in the bottom-right.
_PADDING_TOP_LEFT = (52, 12)
_PADDING_BOTTOM_RIGHT = (12, 22)

_LEAFLET_PACKAGE = "js_lib_leaflet"
_MAP_CSS = """
.territory-map { margin: 0.5em 0 1.2em; max-width: 100%; font: 13px/1.4 system-ui, -apple-system,
  "Segoe UI", sans-serif; color: #222; }
.territory-map-title { font-weight: 600; font-size: 15px; margin: 0 0 6px; }
.territory-map-body { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: flex-start; }
.territory-map-canvas { flex: 1 1 420px; min-width: 0; max-height: 115vw; position: relative;
  border: 1px solid #d0d7de; }
.territory-map .leaflet-container { background: #ffffff; font: 13px/1.4 system-ui, -apple-system,
  "Segoe UI", sans-serif; }
.territory-tooltip table { border-collapse: collapse; }
.territory-tooltip th { text-align: left; font-weight: normal; color: #555; padding: 1px 8px 1px 0; }
.territory-tooltip td { text-align: right; padding: 1px 0; }
.territory-tooltip .territory-tooltip-title { font-weight: 600; margin-bottom: 2px; }
.territory-tooltip .territory-tooltip-move { font-weight: 600; margin-bottom: 2px; }
.territory-legend { flex: 0 1 230px; min-width: 0; max-height: 520px; overflow-y: auto;
  background: #fafbfc; border: 1px solid #d0d7de; border-radius: 4px; padding: 6px 9px;
  font-size: 12px; line-height: 1.35; }
.territory-legend > summary { font-weight: 600; cursor: pointer; margin-bottom: 4px; }
.territory-legend-row { display: flex; align-items: center; gap: 6px; }
.territory-legend-swatch { display: inline-block; width: 14px; height: 12px; border: 1px solid #777;
  flex: none; }
.territory-legend-dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
  border: 1.5px solid #222; flex: none; margin: 0 2px; }
.territory-label { position: absolute; transform: translate(-50%, -50%); white-space: nowrap;
  font-weight: 600; font-size: 11px; color: #111; background: rgba(255,255,255,0.8);
  border: 1px solid #555; border-radius: 3px; padding: 0 3px; pointer-events: none; }
"""


# Draws the units of a map from compact data: outlines as Google-polyline strings (shared by the
# maps of a page that show the same units), one style index and one row of tooltip values per unit.
_MAP_JS = """
window.territoryShapes = window.territoryShapes || {};
window.territoryDecode = function (text, factor) {
  var points = [], i = 0, lat = 0, lng = 0;
  while (i < text.length) {
    for (var k = 0; k < 2; k++) {
      var b, shift = 0, result = 0;
      do { b = text.charCodeAt(i++) - 63; result |= (b & 31) << shift; shift += 5; } while (b >= 32);
      var delta = (result & 1) ? ~(result >> 1) : (result >> 1);
      if (k === 0) { lat += delta; } else { lng += delta; }
    }
    points.push([lat / factor, lng / factor]);
  }
  return points;
};
window.territoryLatLngs = function (shape, factor) {
  return shape.split(";").map(function (polygon) {
    return polygon.split(",").map(function (ring) { return territoryDecode(ring, factor); });
  });
};
window.territoryUnits = function (map, data) {
  var shapes = territoryShapes[data.shapes], group = L.featureGroup();
  function tooltip(i) {
    var rows = "";
    for (var c = 1; c < data.labels.length; c++) {
      rows += "<tr><th>" + data.labels[c] + "</th><td>" + data.values[c][i] + "</td></tr>";
    }
    return (data.notes[i] || "") + '<div class="territory-tooltip-title">' + data.values[0][i] +
      "</div>" + (rows ? "<table>" + rows + "</table>" : "");
  }
  var moved = [];
  shapes.forEach(function (shape, i) {
    var style = Object.assign({}, data.styles[data.style[i]]);
    var layer = L.polygon(territoryLatLngs(shape, data.factor), style);
    layer.bindTooltip(function () { return tooltip(i); }, {sticky: true, className: "territory-tooltip"});
    layer.on("mouseover", function () { layer.setStyle({weight: 3, color: "#000000", fillOpacity: 0.85}); });
    layer.on("mouseout", function () { layer.setStyle(style); });
    group.addLayer(layer);
    if (data.hatch[i]) { moved.push([layer, style, data.hatch[i]]); }
  });
  group.addTo(map);
  // A moving unit is hatched: stripes of its new territory's colour over its old one's.
  moved.forEach(function (item, n) {
    var layer = item[0], style = item[1], svg = layer._path.ownerSVGElement, ns = "http://www.w3.org/2000/svg";
    var defs = svg.querySelector("defs");
    if (!defs) { defs = svg.insertBefore(document.createElementNS(ns, "defs"), svg.firstChild); }
    var id = map._container.id + "-hatch-" + n, pattern = document.createElementNS(ns, "pattern");
    pattern.setAttribute("id", id);
    pattern.setAttribute("patternUnits", "userSpaceOnUse");
    pattern.setAttribute("width", "8");
    pattern.setAttribute("height", "8");
    pattern.setAttribute("patternTransform", "rotate(45)");
    [[8, item[2][0]], [4, item[2][1]]].forEach(function (stripe) {
      var rect = document.createElementNS(ns, "rect");
      rect.setAttribute("width", String(stripe[0]));
      rect.setAttribute("height", "8");
      rect.setAttribute("fill", stripe[1]);
      pattern.appendChild(rect);
    });
    defs.appendChild(pattern);
    style.fillColor = "url(#" + id + ")";
    layer.setStyle(style);
  });
  map._territoryMoved = moved.map(function (item) { return item[0]; });
};
window.territoryFit = function (map, data) {
  // Without animation, so the view is final before labels are placed and decluttered.
  map.fitBounds(data.bounds, {paddingTopLeft: data.topLeft, paddingBottomRight: data.bottomRight,
                              maxZoom: data.maxZoom, animate: false});
};
window.territoryLabels = function (map, data) {
  var markers = data.labels.map(function (label) {
    var icon = L.divIcon({className: "territory-label-anchor", iconSize: [0, 0],
                          html: '<span class="territory-label">' + label[2] + "</span>"});
    return L.marker([label[0], label[1]], {icon: icon, interactive: false, keyboard: false}).addTo(map);
  });
  // A label overlapping one already shown is hidden at this zoom; the legend still names it.
  function declutter() {
    var shown = [];
    markers.forEach(function (marker) {
      var span = marker.getElement().firstChild;
      span.style.visibility = "visible";
      var r = span.getBoundingClientRect();
      var clash = shown.some(function (s) {
        return r.left < s.right && r.right > s.left && r.top < s.bottom && r.bottom > s.top;
      });
      if (clash) { span.style.visibility = "hidden"; } else { shown.push(r); }
    });
  }
  map.on("zoomend", declutter);
  declutter();
};
window.territoryOutlines = function (map, data) {
  data.lines.forEach(function (line) {
    L.polyline(territoryDecode(line, data.factor), data.style).addTo(map);
  });
  // Moving units' dashed outlines stay visible above the territories' outlines.
  (map._territoryMoved || []).forEach(function (layer) { layer.bringToFront(); });
};
"""


class TerritoryMap(folium.Map):
    """A folium map with a title and a legend, shown beside (or below) the map rather than on it.

    In a notebook it displays as a self-contained iframe and also carries :data:`MAP_MIMETYPE`,
    the map as a page fragment without Leaflet, which the report exporter inlines (see
    :func:`territory_lib.report.export_html`). Build it with :func:`offline_map`.
    """

    map_title: str = "Map"
    frame_height: int = 520
    #: ``{key: JSON array of encoded unit outlines}``, written once per page (see ``_UnitsLayer``).
    shapes: dict[str, str]
    legend: tuple[str, list[tuple[str, str]]] | None = None

    def _repr_html_(self, **kwargs: Any) -> str:
        # Leaflet cannot be shared with an iframe (it binds to its own document), so the
        # notebook view is a whole page; the report replaces it by the fragment.
        return (
            f'<iframe srcdoc="{html.escape(map_page(self))}" title="{html.escape(self.map_title)}" '
            f'style="width:100%;height:{self.frame_height + 70}px;border:none"></iframe>'
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/html": self._repr_html_(), MAP_MIMETYPE: map_fragment(self)}


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


def leaflet_tags() -> str:
    """Leaflet, the maps' stylesheet and their small drawing script as inline tags: once per page."""
    script, css = leaflet_assets()
    return (
        f'<style data-territory-asset="leaflet">{css}</style>'
        f'<style data-territory-asset="maps">{_MAP_CSS}</style>'
        f'<script data-territory-asset="leaflet">{script}</script>'
        f'<script data-territory-asset="maps">{_MAP_JS}</script>'
    )


def offline_map(
    bounds: Sequence[float], *, tiles: str | None = None, height: int = 520, title: str = "Map"
) -> TerritoryMap:
    """Create an empty map that draws with no network, fitted to ``bounds`` with padding.

    folium's CDN links (Leaflet, jQuery, Bootstrap, font-awesome) are dropped for this map only;
    Leaflet comes inline with the page (:func:`map_page`, :func:`leaflet_tags`), so map elements
    that need the other libraries (icon markers, popups, colour-bar legends) must not be added.
    The fit leaves the zoom buttons' corner free, so no unit starts under a control.

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
    title
        The map's title, shown above it and given to screen readers (plain text; escaped).

    Returns
    -------
    TerritoryMap
    """
    west, south, east, north = (float(v) for v in bounds)
    if not all(map(math.isfinite, (west, south, east, north))) or west > east or south > north:
        raise DataError(
            f"Map bounds {tuple(bounds)!r} are not (west, south, east, north) in degrees; "
            "pass GeoDataFrame.to_crs(4326).total_bounds of non-empty geometries."
        )
    m = TerritoryMap(
        location=[(south + north) / 2, (west + east) / 2],
        tiles=None,
        zoom_start=6,
        prefer_canvas=False,
        control_scale=False,
        scroll_wheel_zoom=False,
        # Leaflet's own credit line would sit over the map; tile providers' credits stay (below).
        attribution_control=bool(tiles),
        # Fractional zoom lets fit_bounds fill the frame instead of jumping a whole level out.
        zoom_snap=0.25,
        zoom_delta=0.5,
    )
    # Instance attributes shadow folium's class-level CDN lists without changing other maps.
    m.default_js = []
    m.default_css = []
    m.map_title = str(title)
    m.frame_height = int(height)
    m.shapes = {}
    if tiles:
        try:
            folium.TileLayer(tiles).add_to(m)
        except (ValueError, KeyError) as exc:
            raise ConfigError(
                f"tiles {tiles!r} is not a tile provider folium knows (e.g. 'OpenStreetMap', "
                "'CartoDB positron'); leave it empty for maps that work offline."
            ) from exc
    _FitBounds([[south, west], [north, east]]).add_to(m)
    return m


def map_fragment(m: TerritoryMap) -> str:
    """The map as a piece of a page: a titled frame, the map, its legend and its script.

    Leaflet itself is not included: put :func:`leaflet_tags` once in the page before the first map.
    """
    figure = m.get_root()
    figure.render()
    name = m.get_name()
    # The figure's header holds folium's page-wide rules (html/body size, the map's absolute
    # position) meant for a page of its own; keep only what the map's layers added.
    head = "".join(
        child.render() for key, child in figure.header._children.items() if key not in {"meta_http", name}
    )
    body = "".join(child.render() for key, child in figure.html._children.items() if key != name)
    script = figure.script.render()
    shapes = "".join(
        f'<script data-territory-shapes="{key}">territoryShapes["{key}"]={value};</script>'
        for key, value in m.shapes.items()
    )
    title_id = f"{name}_title"
    title = html.escape(m.map_title)
    return (
        f'<figure class="territory-map" aria-labelledby="{title_id}">{head}'
        f'<figcaption class="territory-map-title" id="{title_id}">{title}</figcaption>'
        f'<div class="territory-map-body">'
        f'<div class="folium-map territory-map-canvas" id="{name}" role="region" '
        f'aria-label="Map: {title}" style="height:{m.frame_height}px"></div>'
        f"{_legend_html(m.legend, m.frame_height)}{body}</div>"
        f"{shapes}<script>{script}</script></figure>"
    )


#: The unit outlines a map fragment carries (encoded outlines contain no "<").
_MAP_SHAPES = re.compile(r'<script data-territory-shapes="(\w+)">[^<]*</script>')


def without_repeated_outlines(fragments: Iterable[str]) -> list[str]:
    """Map fragments for one page, each set of unit outlines kept in the first fragment carrying it.

    Maps of the same units (today, plan and proposal side by side) then carry their outlines once.
    """
    seen: set[str] = set()

    def first_only(match: re.Match[str]) -> str:
        if match.group(1) in seen:
            return ""
        seen.add(match.group(1))
        return match.group(0)

    return [_MAP_SHAPES.sub(first_only, fragment) for fragment in fragments]


def map_page(m: TerritoryMap) -> str:
    """The map as a standalone HTML page (Leaflet inlined), as :func:`save_map` writes it."""
    title = html.escape(m.map_title)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title>{leaflet_tags()}"
        "<style>body { margin: 0; padding: 4px 8px; background: #fff; }</style>"
        f"</head><body>{map_fragment(m)}</body></html>"
    )


def save_map(m: TerritoryMap, path: str | os.PathLike[str]) -> Path:
    """Write ``m`` as a standalone HTML page, atomically, and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, map_page(m))
    return path


def quantile_classes(values: Iterable[float], k: int = 5) -> np.ndarray:
    """Return the class edges of ``k`` quantile classes of ``values`` (NaNs ignored).

    The classes are mapclassify's :class:`~mapclassify.Quantiles`. Edges repeat when many values
    tie, so fewer than ``k`` classes come back for such data. The result has ``n_classes + 1``
    increasing edges; an empty input gives an empty array.
    """
    if k < 1:
        raise ConfigError(f"The number of map classes must be at least 1, got {k}.")
    array = np.asarray(list(values), dtype=float)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return np.array([], dtype=float)
    # More classes than distinct values would invent class limits no unit has.
    k = min(k, np.unique(array).size)
    with warnings.catch_warnings():
        # mapclassify warns when ties merge classes; fewer classes is the documented result.
        warnings.simplefilter("ignore", UserWarning)
        bins = _mapclassify().Quantiles(array, k=k).bins
    edges = np.unique(np.concatenate([[array.min()], bins]))
    if edges.size == 1:
        edges = np.array([edges[0], edges[0]])
    return edges


@functools.cache
def _mapclassify() -> Any:
    """mapclassify, imported without compiling its numba kernel.

    When numba is installed, importing mapclassify compiles its Fisher-Jenks kernel at once (1-3 s
    in every notebook kernel); the maps only use its quantiles, so the kernel stays plain Python.
    """
    try:
        from numba.core import config as numba_config
    except ImportError:
        import mapclassify

        return mapclassify
    previous, numba_config.DISABLE_JIT = numba_config.DISABLE_JIT, True
    try:
        import mapclassify
    finally:
        numba_config.DISABLE_JIT = previous
    return mapclassify


def category_colors(categories: Iterable[Hashable]) -> dict[Hashable, str]:
    """Map each distinct category to a colour, the same way every time.

    Categories are put in natural order (``T2`` before ``T10``, numbers by value) and take the
    colours of :data:`CATEGORY_PALETTE` in turn; beyond its 20 colours, further hues are spread by
    the golden angle. Missing values are left out.
    """
    distinct = sorted({c for c in categories if not _is_missing(c)}, key=_natural_key)
    return {c: _palette_color(i) for i, c in enumerate(distinct)}


def territory_colors(gdf: gpd.GeoDataFrame, territory_columns: str | Sequence[str]) -> dict[Hashable, str]:
    """Colour territories so that no two neighbours share a colour, in every plan given.

    Territories are neighbours when their units touch (within the display simplification's
    tolerance, so hairline gaps of real maps do not hide a border) in any of ``territory_columns``,
    e.g. today's alignment, the plan and the proposal, so side-by-side maps keep one colour per
    territory. Colours come from :data:`TERRITORY_PALETTE` by greedy graph colouring
    (``networkx.greedy_color``, largest territories-by-neighbours first, ties in natural order),
    which gives the same colours every run.

    Parameters
    ----------
    gdf
        Units (polygons) with a CRS.
    territory_columns
        One column or several columns of territory ids (missing values are left uncoloured).

    Returns
    -------
    dict
        ``{territory: colour}`` for every territory in any of the columns.
    """
    columns = [territory_columns] if isinstance(territory_columns, str) else list(territory_columns)
    _require_columns(gdf, columns, "the units to colour")
    _, projected, tolerance, _ = _prepare_units(gdf)
    return _color_territories([gdf[c].to_numpy() for c in columns], projected, tolerance)


def _color_territories(
    plans: Sequence[np.ndarray], projected: gpd.GeoSeries, tolerance: float
) -> dict[Hashable, str]:
    import networkx as nx  # here: step 1 draws no territories (networkx takes 0.1 s to import)

    graph = nx.Graph()
    graph.add_nodes_from(sorted({t for p in plans for t in p if not _is_missing(t)}, key=_natural_key))
    tree = shapely.STRtree(projected.values)
    left, right = tree.query(projected.values, predicate="dwithin", distance=max(tolerance, 1.0))
    for labels in plans:
        for a, b in zip(labels[left], labels[right], strict=True):
            if not _is_missing(a) and not _is_missing(b) and a != b:
                graph.add_edge(a, b)
    coloring = nx.greedy_color(graph, strategy="largest_first")
    return {t: _territory_palette_color(coloring[t]) for t in graph.nodes}


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
    title: str | None = None,
) -> TerritoryMap:
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
    title
        Title above the map (default: ``legend_title``).

    Returns
    -------
    TerritoryMap
    """
    _require_columns(gdf, [value_column], "the units to map")
    values = pd.to_numeric(gdf[value_column], errors="coerce").to_numpy(dtype=float)
    edges = quantile_classes(values, classes)
    n_classes = max(edges.size - 1, 0)
    colors = _sequential_colors(palette, n_classes)
    finite = np.isfinite(values)
    class_index = np.zeros(len(values), dtype=int)
    if n_classes:
        # mapclassify's rule: a value belongs to the first class whose upper edge it does not exceed.
        class_index[finite] = np.clip(
            np.searchsorted(edges[1:], values[finite], side="left"), 0, n_classes - 1
        )
    fills = [colors[i] if ok else MISSING_COLOR for i, ok in zip(class_index, finite, strict=True)]
    column_formats = {value_column: value_format, **(formats or {})}

    units, _, _, decimals = _prepare_units(gdf)
    m = offline_map(units.total_bounds, tiles=tiles, height=height, title=title or legend_title)
    styles = [_unit_style(fill) for fill in fills]
    _add_units_layer(m, units, styles, _tooltip_columns(gdf, tooltip_columns, column_formats), decimals)

    legend_rows = [
        (_swatch(color), f"{value_format.format(lo)} – {value_format.format(hi)}")
        for color, lo, hi in zip(colors, edges[:-1], edges[1:], strict=True)
    ]
    if not finite.all():
        legend_rows.append((_swatch(MISSING_COLOR), "No data"))
    if points is not None:
        _add_points_layer(m, points, [point_color] * len(points), point_tooltip_columns, formats)
        legend_rows.append((_dot(point_color), points_label))
    m.legend = (legend_title, legend_rows)
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
    title: str | None = None,
) -> TerritoryMap:
    """Map units coloured by a category, such as a hot-spot class (territories: :func:`territory_map`).

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
    title
        Title above the map (default: ``legend_title``).

    Returns
    -------
    TerritoryMap
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
    units, _, _, decimals = _prepare_units(gdf)
    m = offline_map(units.total_bounds, tiles=tiles, height=height, title=title or legend_title)
    _add_units_layer(m, units, styles, _tooltip_columns(gdf, tooltip_columns, formats or {}), decimals)

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
    m.legend = (legend_title, legend_rows)
    return m


def territory_map(
    gdf: gpd.GeoDataFrame,
    territory_column: str = "territory_id",
    *,
    tooltip_columns: TooltipColumns,
    legend_title: str,
    title: str | None = None,
    rep_names: Mapping[Hashable, str] | None = None,
    previous_column: str | None = None,
    colors: Mapping[Hashable, str] | None = None,
    points: gpd.GeoDataFrame | None = None,
    point_tooltip_columns: TooltipColumns = ("name",),
    points_label: str = "Rep home (filled with its territory's colour)",
    moved_label: str = "Moves (dashed outline; stripes: new territory's colour over the old one's)",
    formats: Mapping[str, str] | None = None,
    tiles: str | None = None,
    height: int = 520,
) -> TerritoryMap:
    """Map territories: units filled so neighbouring territories differ, bold outlines, labels.

    Each territory's units are filled with its colour (:func:`territory_colors`: neighbours never
    share one), the territory is outlined in bold and labelled ``T04 · rep name`` at its centre
    (the pole of inaccessibility of its largest part, so the label sits inside it). With
    ``previous_column``, units whose territory changes are hatched (stripes of the new territory's
    colour over the old one's), get a thick dashed outline and say "Moves from T03 to T05" in their
    tooltip, so a move never depends on telling colours apart.

    Parameters
    ----------
    gdf
        Units (polygons) with a CRS.
    territory_column
        Column of territory ids (the new territory when ``previous_column`` is given).
    tooltip_columns
        Columns shown when hovering a unit (see :func:`choropleth_map`).
    legend_title
        Title of the legend (plain text; escaped).
    title
        Title above the map (default: ``legend_title``).
    rep_names
        Optional ``{territory: rep name}``; the label then reads ``T04 · name``.
    previous_column
        Optional column of each unit's territory before the change.
    colors
        Optional ``{territory: colour}``, e.g. :func:`territory_colors` over several plans so maps
        side by side colour a territory the same; by default computed for this map.
    points
        Optional points (e.g. rep homes), filled with their territory's colour when they have a
        ``territory_column`` column.
    point_tooltip_columns, points_label
        Tooltip columns of the points and their legend entry.
    moved_label
        Legend entry of the units that move.
    formats
        Optional ``{column: format pattern}`` for tooltip columns.
    tiles, height
        See :func:`offline_map`.

    Returns
    -------
    TerritoryMap
    """
    _require_columns(gdf, [territory_column], "the units to map")
    if previous_column is not None:
        _require_columns(gdf, [previous_column], "the units to map (their previous territory)")
    units, projected, tolerance, decimals = _prepare_units(gdf)
    territory = gdf[territory_column].to_numpy()
    if colors is None:
        plans = [territory] if previous_column is None else [territory, gdf[previous_column].to_numpy()]
        colors = _color_territories(plans, projected, tolerance)
    missing_colors = sorted({t for t in territory if not _is_missing(t)} - set(colors), key=_natural_key)
    if missing_colors:
        raise DataError(
            f"No colour was given for territories {missing_colors[:5]}; pass territory_colors(...)."
        )
    moved = np.zeros(len(gdf), dtype=bool)
    notes, hatch = {}, {}
    if previous_column is not None:
        before = gdf[previous_column].to_numpy()
        moved = np.array([not _is_missing(b) and b != t for b, t in zip(before, territory, strict=True)])
        for i in np.flatnonzero(moved):
            text = html.escape(f"Moves from {before[i]} to {territory[i]}")
            notes[int(i)] = f'<div class="territory-tooltip-move">{text}</div>'
            if not _is_missing(territory[i]):
                hatch[int(i)] = (colors.get(before[i], MISSING_COLOR), colors[territory[i]])
    styles = [
        _unit_style(MISSING_COLOR if _is_missing(t) else colors[t], highlighted=bool(h))
        for t, h in zip(territory, moved, strict=True)
    ]
    m = offline_map(units.total_bounds, tiles=tiles, height=height, title=title or legend_title)
    tooltips = _tooltip_columns(gdf, tooltip_columns, formats or {})
    _add_units_layer(m, units, styles, tooltips, decimals, notes, hatch)

    names = rep_names or {}
    shown = sorted({t for t in territory if not _is_missing(t)}, key=_natural_key)
    label_text = {t: f"{t} · {names[t]}" if not _is_missing(names.get(t)) else str(t) for t in shown}
    outlines = _territory_outlines(projected, territory, shown)
    _add_outlines_and_labels(m, outlines, label_text, decimals)

    legend_rows = [(_swatch(colors[t]), label_text[t]) for t in shown]
    if any(_is_missing(t) for t in territory):
        legend_rows.append((_swatch(MISSING_COLOR), "Unassigned"))
    if moved.any():
        hatched = "repeating-linear-gradient(45deg,#999 0 3px,#fff 3px 6px)"
        legend_rows.append(
            (
                f'<span class="territory-legend-swatch" '
                f'style="border:2px dashed {HIGHLIGHT_COLOR};background:{hatched}"></span>',
                moved_label,
            )
        )
    if points is not None:
        if territory_column in points.columns:
            fills = [
                MISSING_COLOR if _is_missing(t) else colors.get(t, MISSING_COLOR)
                for t in points[territory_column]
            ]
        else:
            fills = ["#555555"] * len(points)
        _add_points_layer(m, points, fills, point_tooltip_columns, formats)
        legend_rows.append((_dot("#ffffff"), points_label))
    m.legend = (legend_title, legend_rows)
    return m


def display_outlines(gdf: gpd.GeoDataFrame) -> gpd.GeoSeries:
    """The units' outlines as the maps draw them (coverage-simplified, in an equal-area CRS, not
    yet rounded, so shared borders still match), indexed like ``gdf``.

    Dissolving these instead of the full outlines gives territory shapes that need almost no
    further simplification: the units are simplified once for every map of the report.
    """
    _, simplified, _, _ = _prepare_units(gdf)
    return gpd.GeoSeries(simplified.values, index=gdf.index, crs=simplified.crs)


def _prepare_units(gdf: gpd.GeoDataFrame) -> tuple[gpd.GeoSeries, gpd.GeoSeries, float, int]:
    """Simplify the unit outlines for display, keeping shared borders shared.

    Returns the outlines in WGS84 with coordinates rounded to a tenth of the tolerance, the same
    simplified outlines in an equal-area CRS (metres), the tolerance in metres and the number of
    decimals kept.
    """
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
    # The maps of one report draw the same units: simplify them once.
    key = (hashlib.sha1(b"".join(shapely.to_wkb(geometry.values))).hexdigest(), gdf.crs.to_wkt())
    if key not in _PREPARED_UNITS:
        _PREPARED_UNITS[key] = _simplify_units(geometry, equal_area_crs(gdf))
        while len(_PREPARED_UNITS) > 2:
            del _PREPARED_UNITS[next(iter(_PREPARED_UNITS))]
    wgs84, simplified, tolerance, decimals = _PREPARED_UNITS[key]
    return wgs84.copy(), simplified.copy(), tolerance, decimals


#: The last units :func:`_prepare_units` simplified, by their outlines (WKB digest) and CRS.
_PREPARED_UNITS: dict[tuple[str, str], tuple[gpd.GeoSeries, gpd.GeoSeries, float, int]] = {}


def _simplify_units(geometry: gpd.GeoSeries, crs: Any) -> tuple[gpd.GeoSeries, gpd.GeoSeries, float, int]:
    """:func:`_prepare_units`' work on validated outlines."""
    projected = geometry.to_crs(crs)
    minx, miny, maxx, maxy = projected.total_bounds
    tolerance = max(maxx - minx, maxy - miny) / 1_000_000 * _SIMPLIFY_METRES_PER_1000_KM
    if (projected.geom_type.isin(["Polygon", "MultiPolygon"])).all() and tolerance > 0:
        # Coverage simplification moves shared borders once, so neighbours stay gap-free.
        simplified = projected.simplify_coverage(tolerance)
    else:
        simplified = projected.simplify(tolerance, preserve_topology=True)
    # Rounding to a tenth of the tolerance cannot be seen, and short numbers keep big maps light.
    decimals = int(np.clip(math.ceil(-math.log10(max(tolerance, 1e-9) / 10 / _METRES_PER_DEGREE)), 3, 6))
    wgs84 = gpd.GeoSeries(_round_coordinates(simplified.to_crs(4326), decimals), crs=4326)
    return wgs84, simplified, float(tolerance), decimals


def _round_coordinates(series: gpd.GeoSeries, decimals: int = 5) -> np.ndarray:
    return shapely.transform(np.asarray(series.values), lambda xy: np.round(xy, decimals))


def _territory_outlines(
    projected: gpd.GeoSeries, territory: np.ndarray, shown: Sequence[Hashable]
) -> gpd.GeoSeries:
    """One (multi)polygon per territory, dissolved from the simplified units, in the same CRS."""
    frame = gpd.GeoDataFrame({"territory": territory}, geometry=projected.values, crs=projected.crs)
    frame = frame[frame["territory"].isin(list(shown))]
    dissolved = frame.dissolve(by="territory").geometry
    return dissolved.reindex(list(shown))


def _add_outlines_and_labels(
    m: TerritoryMap, outlines: gpd.GeoSeries, label_text: Mapping[Hashable, str], decimals: int
) -> None:
    factor = 10**decimals
    lines = [
        _encode_line(np.asarray(line.coords), factor)
        for boundary in outlines.to_crs(4326).boundary
        if boundary is not None and not boundary.is_empty
        for line in getattr(boundary, "geoms", [boundary])
    ]
    style = {"color": OUTLINE_COLOR, "weight": 2.4, "opacity": 0.9, "interactive": False}
    _OutlinesLayer(lines, factor, style).add_to(m)
    labels = []
    for territory, geom in outlines.items():
        if geom is None or geom.is_empty:
            continue
        parts = list(getattr(geom, "geoms", [geom]))
        largest = max(parts, key=lambda part: part.area)
        # The pole of inaccessibility lies well inside the territory, even a crescent-shaped one.
        centre = polylabel(largest, tolerance=max(math.sqrt(largest.area) / 50, 1.0))
        lon, lat = gpd.GeoSeries([centre], crs=outlines.crs).to_crs(4326).iloc[0].coords[0]
        labels.append((largest.area, round(lat, 5), round(lon, 5), html.escape(label_text[territory])))
    # Largest territories first: where labels would overlap, the page shows the first one only.
    labels.sort(key=lambda label: -label[0])
    _LabelsLayer([label[1:] for label in labels]).add_to(m)


class _ScriptCall(MacroElement):
    """A call ``function(map, payload)`` in the map's script, the payload written as JSON.

    The text is added as is: branca would read a macro's output as a Jinja template, and encoded
    outlines or names may contain ``{{``.
    """

    function = ""
    payload: dict[str, Any]

    def render(self, **kwargs: Any) -> str:
        data = json.dumps(self.payload, separators=(",", ":")).replace("</", "<\\/")
        assert self._parent is not None, "a map layer renders only once added to its map"
        call = _Text(f"{self.function}({self._parent.get_name()}, {data});")
        self.get_root().script.add_child(call, name=self.get_name())
        return ""


class _Text(Element):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def render(self, **kwargs: Any) -> str:
        return self.text


class _UnitsLayer(_ScriptCall):
    """The units of a map as compact data drawn by ``territoryUnits`` (see ``_MAP_JS``).

    Python keeps ``styles`` (one dict per unit) and ``tooltip_html(i)`` for inspection.
    """

    function = "territoryUnits"

    def __init__(
        self,
        shapes_key: str,
        factor: int,
        styles: Sequence[dict[str, Any]],
        labels: Sequence[str],
        values: Sequence[Sequence[str]],
        notes: Mapping[int, str],
        hatch: Mapping[int, tuple[str, str]],
    ) -> None:
        super().__init__()
        self._name = "TerritoryUnits"
        self.hatch = dict(hatch)
        self.styles = list(styles)
        distinct: dict[str, int] = {}
        index = [
            distinct.setdefault(json.dumps(style, sort_keys=True), len(distinct)) for style in self.styles
        ]
        self.labels, self.values, self.notes = list(labels), [list(v) for v in values], dict(notes)
        self.payload = {
            "shapes": shapes_key,
            "factor": factor,
            "styles": [json.loads(style) for style in distinct],
            "style": index,
            "labels": self.labels,
            "values": self.values,
            "notes": {str(i): note for i, note in self.notes.items()},
            "hatch": {str(i): list(colors) for i, colors in self.hatch.items()},
        }

    def tooltip_html(self, i: int) -> str:
        """The tooltip of unit ``i`` as the page builds it."""
        rows = "".join(
            f"<tr><th>{label}</th><td>{column[i]}</td></tr>"
            for label, column in zip(self.labels[1:], self.values[1:], strict=True)
        )
        table = f"<table>{rows}</table>" if rows else ""
        return f'{self.notes.get(i, "")}<div class="territory-tooltip-title">{self.values[0][i]}</div>{table}'


def _add_units_layer(
    m: TerritoryMap,
    units: gpd.GeoSeries,
    styles: Sequence[dict[str, Any]],
    tooltips: tuple[list[str], list[list[str]]],
    decimals: int,
    notes: Mapping[int, str] | None = None,
    hatch: Mapping[int, tuple[str, str]] | None = None,
) -> _UnitsLayer:
    factor = 10**decimals
    if len(units) > _MANY_UNITS:
        # Thousands of borders at full weight would grey the map out; territories stay bold.
        styles = [style if "dashArray" in style else {**style, "weight": 0.25} for style in styles]
    encoded = json.dumps(_encode_shapes(units, factor), separators=(",", ":"))
    # Maps of one page that draw the same units share one copy of their outlines.
    key = "u" + hashlib.sha1(encoded.encode("utf-8")).hexdigest()[:16]
    m.shapes[key] = encoded
    labels, values = tooltips
    layer = _UnitsLayer(key, factor, styles, labels, values, notes or {}, hatch or {})
    layer.add_to(m)
    return layer


class _FitBounds(_ScriptCall):
    function = "territoryFit"

    def __init__(self, bounds: list[list[float]]) -> None:
        super().__init__()
        self._name = "TerritoryFit"
        self.payload = {
            "bounds": bounds,
            "topLeft": list(_PADDING_TOP_LEFT),
            "bottomRight": list(_PADDING_BOTTOM_RIGHT),
            "maxZoom": 12,
        }


class _LabelsLayer(_ScriptCall):
    function = "territoryLabels"

    def __init__(self, labels: Sequence[tuple[float, float, str]]) -> None:
        super().__init__()
        self._name = "TerritoryLabels"
        self.payload = {"labels": [list(label) for label in labels]}


class _OutlinesLayer(_ScriptCall):
    function = "territoryOutlines"

    def __init__(self, lines: Sequence[str], factor: int, style: Mapping[str, Any]) -> None:
        super().__init__()
        self._name = "TerritoryOutlines"
        self.payload = {"lines": list(lines), "factor": factor, "style": dict(style)}


def _encode_shapes(geoms: gpd.GeoSeries, factor: int) -> list[str]:
    """Each (multi)polygon as polyline-encoded rings: rings joined by ``,``, polygons by ``;``.

    The rings of all shapes are encoded at once (:func:`_encode_line`'s code, vectorised): a map
    of 30,000 units would otherwise spend seconds in a Python loop per coordinate.
    """
    shapes = np.asarray(geoms.values, dtype=object)
    polygons, shape_of_polygon = shapely.get_parts(shapes, return_index=True)
    kept = ~shapely.is_empty(polygons)
    polygons, shape_of_polygon = polygons[kept], shape_of_polygon[kept]
    rings, polygon_of_ring = shapely.get_rings(polygons, return_index=True)
    coords, ring_of_point = shapely.get_coordinates(rings, return_index=True)
    # A ring repeats its first point last; the encoding leaves it out.
    last = np.r_[ring_of_point[1:] != ring_of_point[:-1], True] if len(coords) else np.zeros(0, bool)
    coords, ring_of_point = coords[~last], ring_of_point[~last]
    ints = np.round(coords[:, 1::-1] * factor).astype(np.int64)
    first = np.r_[True, ring_of_point[1:] != ring_of_point[:-1]] if len(coords) else np.zeros(0, bool)
    deltas = ints - np.where(first[:, None], 0, np.roll(ints, 1, axis=0))
    text = _polyline_chars(deltas.ravel())
    # Where each ring's characters end in the joined text.
    chars_per_point = text[1].reshape(-1, 2).sum(axis=1)
    ends = np.zeros(len(rings) + 1, dtype=np.int64)
    np.add.at(ends, ring_of_point + 1, chars_per_point)
    ends = np.cumsum(ends)
    ring_text = [text[0][ends[i] : ends[i + 1]] for i in range(len(rings))]
    per_polygon: list[list[str]] = [[] for _ in range(len(polygons))]
    for ring, polygon in zip(ring_text, polygon_of_ring.tolist(), strict=True):
        per_polygon[polygon].append(ring)
    per_shape: list[list[str]] = [[] for _ in range(len(shapes))]
    for polygon_rings, shape in zip(per_polygon, shape_of_polygon.tolist(), strict=True):
        per_shape[shape].append(",".join(polygon_rings))
    return [";".join(parts) for parts in per_shape]


def _polyline_chars(values: np.ndarray) -> tuple[str, np.ndarray]:
    """Google's polyline characters of signed integers, joined, and how many each value took."""
    zigzag = np.where(values < 0, ~(values << 1), values << 1)
    count = np.ones(len(zigzag), dtype=np.int64)
    while (zigzag >= 1 << (5 * count.max(initial=1))).any():  # 5 bits a character
        count += zigzag >= 1 << (5 * count.max())
    position = np.arange(count.max(initial=1))
    chunks = (zigzag[:, None] >> (5 * position)) & 0x1F
    chunks |= np.where(position < count[:, None] - 1, 0x20, 0)
    chars = (chunks + 63)[position < count[:, None]]
    return chars.astype(np.uint8).tobytes().decode("ascii"), count


def _encode_line(coords: np.ndarray, factor: int) -> str:
    """Google's polyline encoding of ``(lon, lat)`` points (latitude first), at ``1 / factor`` degrees."""
    if len(coords) == 0:
        return ""
    ints = np.round(coords[:, 1::-1] * factor).astype(np.int64)
    deltas = np.diff(ints, axis=0, prepend=np.zeros((1, 2), dtype=np.int64)).ravel()
    zigzag = np.where(deltas < 0, ~(deltas << 1), deltas << 1)
    chars = []
    for value in zigzag.tolist():
        while value >= 0x20:
            chars.append(chr((0x20 | (value & 0x1F)) + 63))
            value >>= 5
        chars.append(chr(value + 63))
    return "".join(chars)


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
        {
            "fillColor": fill,
            "color": "#222222",
            "weight": 1.5,
            "fillOpacity": 0.95,
            "radius": 6,
            "className": "territory-point",
        }
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
            "className": "territory-unit",
        }
    return {
        "fillColor": fill,
        "color": BOUNDARY_COLOR,
        "weight": 0.6,
        "fillOpacity": 0.75,
        "className": "territory-unit",
    }


def _tooltip_columns(
    frame: pd.DataFrame, columns: TooltipColumns, formats: Mapping[str, str]
) -> tuple[list[str], list[list[str]]]:
    """Escaped tooltip labels and, per label, the escaped value of every row (first: the heading)."""
    pairs = list(columns.items()) if isinstance(columns, Mapping) else [(c, c) for c in columns]
    if isinstance(columns, str):
        pairs = [(columns, columns)]
    _require_columns(frame, [c for c, _ in pairs], "the tooltip columns")
    if not pairs:
        return [""], [[""] * len(frame)]
    labels = [html.escape(str(label)) for _, label in pairs]
    values = [[_format_value(v, formats.get(c)) for v in frame[c]] for c, _ in pairs]
    return labels, values


def _tooltips(frame: pd.DataFrame, columns: TooltipColumns, formats: Mapping[str, str]) -> list[str]:
    """One escaped HTML snippet per row: the first column as heading, the others as a table."""
    labels, values = _tooltip_columns(frame, columns, formats)
    tips = []
    for i in range(len(frame)):
        rows = "".join(
            f"<tr><th>{label}</th><td>{column[i]}</td></tr>"
            for label, column in zip(labels[1:], values[1:], strict=True)
        )
        table = f"<table>{rows}</table>" if rows else ""
        tips.append(f'<div class="territory-tooltip-title">{values[0][i]}</div>{table}')
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


def _legend_html(legend: tuple[str, Sequence[tuple[str, str]]] | None, height: int) -> str:
    """A plain HTML legend beside the map, folded open (branca's would pull d3 from a CDN)."""
    if legend is None:
        return ""
    title, rows = legend
    body = "".join(
        f'<div class="territory-legend-row">{swatch}<span>{html.escape(label)}</span></div>'
        for swatch, label in rows
    )
    return (
        f'<details class="territory-legend" open style="max-height:{int(height)}px">'
        f'<summary class="territory-legend-title">{html.escape(title)}</summary>{body}</details>'
    )


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


def _territory_palette_color(i: int) -> str:
    if i < len(TERRITORY_PALETTE):
        return TERRITORY_PALETTE[i]
    return _palette_color(i)


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
