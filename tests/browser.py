"""Test helper: open folium maps in headless Chromium with networking off and count what they draw."""

from __future__ import annotations

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


def dump_dom(html_text: str, timeout: float = 60.0) -> str:
    """Load ``html_text`` from a file in offline headless Chromium and return the DOM after scripts ran."""
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
    """For each folium map in the HTML file, the number of vector shapes Leaflet drew offline.

    Leaflet's SVG renderer draws every interactive polygon, line or circle marker as a
    ``<path class="leaflet-interactive">``, so a map whose scripts failed to load counts 0.
    """
    documents = map_documents(Path(html_path).read_text(encoding="utf-8"))
    return [len(_DRAWN_PATH.findall(dump_dom(doc))) for doc in documents]
