"""Test helper: open folium maps in headless Chromium with networking off and count what they draw."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Every host name resolves to nothing, and background services stay off, so a page that needs the
# network shows it by drawing nothing rather than by a slow timeout.
_OFFLINE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--virtual-time-budget=5000",
)
_DRAWN_PATH = re.compile(r"<path\b[^>]*\bclass=\"[^\"]*\bleaflet-interactive\b", re.IGNORECASE)


class _SrcdocCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.documents: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "iframe":
            srcdoc = dict(attrs).get("srcdoc")
            if srcdoc:
                self.documents.append(srcdoc)


def map_documents(html_text: str) -> list[str]:
    """The folium map documents in a page: each iframe's ``srcdoc``, or the page itself if it is a map."""
    collector = _SrcdocCollector()
    collector.feed(html_text)
    collector.close()
    if collector.documents:
        return collector.documents
    return [html_text] if "folium-map" in html_text else []


def dump_dom(html_text: str, timeout: float = 60.0, window: tuple[int, int] | None = None) -> str:
    """Load ``html_text`` from a file in offline headless Chromium and return the DOM after scripts ran.

    ``window`` is the window's ``(width, height)`` in CSS pixels (Chromium's default otherwise).
    """
    if CHROMIUM is None:
        raise RuntimeError("Chromium is not installed (apt-get install chromium).")
    with tempfile.TemporaryDirectory(prefix="territory-browser-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(html_text, encoding="utf-8")
        result = subprocess.run(
            [
                CHROMIUM,
                *_OFFLINE_FLAGS,
                f"--user-data-dir={Path(tmp) / 'profile'}",
                *([f"--window-size={window[0]},{window[1]}"] if window else []),
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
    return result.stdout


def count_drawn_polygons(html_path: str | Path) -> list[int]:
    """For each map in the HTML file (inline or in an iframe), the vector shapes Leaflet drew offline.

    Leaflet's SVG renderer draws every interactive polygon, line or circle marker as a
    ``<path class="leaflet-interactive">``, so a map whose scripts failed to load counts 0.
    """
    counts = []
    for document in map_documents(Path(html_path).read_text(encoding="utf-8")):
        # A report page holds its maps inline: what follows each map's container until the next
        # one is that map's drawing.
        chunks = re.split(r'<div[^>]*\bclass="folium-map\b', dump_dom(document))[1:]
        counts.extend(len(_DRAWN_PATH.findall(chunk)) for chunk in chunks)
    return counts


# Runs in the page once it has loaded: where every drawn unit's centre lies against the map frame,
# the legends and Leaflet's controls, and whether the page is wider than the window.
_LAYOUT_PROBE = """
<script>
window.addEventListener("load", function () { setTimeout(function () {
  function inside(x, y, r) { return x >= r.left && x <= r.right && y >= r.top && y <= r.bottom; }
  var blockers = Array.prototype.map.call(
    document.querySelectorAll(".territory-legend, .leaflet-control"),
    function (e) { return e.getBoundingClientRect(); }
  ).filter(function (r) { return r.width > 0 && r.height > 0; });
  var result = {
    width: window.innerWidth,
    scrollWidth: Math.max(document.documentElement.scrollWidth, document.body.scrollWidth),
    leaflet: document.querySelectorAll("script[data-territory-asset=leaflet]").length,
    maps: []
  };
  document.querySelectorAll(".folium-map").forEach(function (canvas) {
    var frame = canvas.getBoundingClientRect();
    var units = canvas.querySelectorAll("path.territory-unit");
    var covered = 0, outside = 0;
    units.forEach(function (path) {
      var r = path.getBoundingClientRect(), x = r.left + r.width / 2, y = r.top + r.height / 2;
      if (!inside(x, y, frame)) { outside += 1; return; }
      if (blockers.some(function (b) { return inside(x, y, b); })) { covered += 1; }
    });
    var shown = Array.prototype.filter.call(canvas.querySelectorAll(".territory-label"),
      function (e) { return getComputedStyle(e).visibility === "visible"; }
    ).map(function (e) { return e.getBoundingClientRect(); });
    var overlaps = 0;
    shown.forEach(function (a, i) { shown.slice(i + 1).forEach(function (b) {
      if (a.left < b.right && a.right > b.left && a.top < b.bottom && a.bottom > b.top) { overlaps += 1; }
    }); });
    result.maps.push({units: units.length, covered: covered, outside: outside, labelOverlaps: overlaps,
                      labels: canvas.querySelectorAll(".territory-label").length,
                      shownLabels: Array.prototype.filter.call(canvas.querySelectorAll(".territory-label"),
                        function (e) { return getComputedStyle(e).visibility === "visible"; }).length});
  });
  if (window.parent !== window) { window.parent.postMessage(JSON.stringify(result), "*"); return; }
  var out = document.createElement("pre");
  out.id = "territory-layout-probe";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
}, 200); });
</script>
"""
# Headless Chromium's window is at least 500 px wide: narrower views are an iframe of that width
# in a host page that writes down what the probe inside reports.
_NARROW_HOST = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="view" style="border:0;width:{width}px;height:{height}px" srcdoc="{srcdoc}"></iframe>
<script>
window.addEventListener("message", function (event) {{
  var out = document.createElement("pre");
  out.id = "territory-layout-probe";
  out.textContent = event.data;
  document.body.appendChild(out);
}});
</script></body></html>"""
_MIN_WINDOW_WIDTH = 500


def layout_probe(html_text: str, width: int, height: int = 1000) -> dict:
    """Open ``html_text`` offline at ``width`` × ``height`` px and measure the maps' layout.

    Returns ``{"width", "scrollWidth", "leaflet", "maps": [{"units", "covered", "outside",
    "labels", "shownLabels", "labelOverlaps"}]}``: per map, how many drawn units there are, how
    many have their centre under a legend or a Leaflet control (``covered``) or outside the map
    frame (``outside``), its territory labels, those visible and how many visible pairs overlap.
    """

    page = html_text.replace("</body>", _LAYOUT_PROBE + "</body>", 1)
    if page == html_text:
        page = html_text + _LAYOUT_PROBE
    if width < _MIN_WINDOW_WIDTH:
        page = _NARROW_HOST.format(width=width, height=height, srcdoc=html.escape(page))
    dom = dump_dom(page, window=(max(width, _MIN_WINDOW_WIDTH), height))
    found = re.search(r'<pre id="territory-layout-probe">(.*?)</pre>', dom, re.S)
    if found is None:
        raise AssertionError("the layout probe did not run (the page's scripts failed)")
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def screenshot(html_path: str | Path, png_path: str | Path, width: int = 1400, height: int = 2000) -> Path:
    """Save a PNG of the page at ``html_path`` as offline headless Chromium draws it."""
    if CHROMIUM is None:
        raise RuntimeError("Chromium is not installed (apt-get install chromium).")
    png_path = Path(png_path).resolve()
    with tempfile.TemporaryDirectory(prefix="territory-browser-") as tmp:
        target = Path(html_path).resolve().as_uri()
        if width < _MIN_WINDOW_WIDTH:
            host = Path(tmp) / "host.html"
            host.write_text(
                f'<body style="margin:0;background:#888"><iframe src="{html.escape(target)}" '
                f'style="border:0;width:{width}px;height:{height}px;background:#fff"></iframe></body>',
                encoding="utf-8",
            )
            target = host.as_uri()
        subprocess.run(
            [
                CHROMIUM,
                *_OFFLINE_FLAGS,
                f"--user-data-dir={Path(tmp) / 'profile'}",
                f"--window-size={max(width, _MIN_WINDOW_WIDTH)},{height}",
                "--hide-scrollbars",
                f"--screenshot={png_path}",
                target,
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
    return png_path
