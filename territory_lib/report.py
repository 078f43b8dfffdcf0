"""Stakeholder HTML: the run header each report opens with, the notebook → HTML export
(no code, no tracebacks, nothing loaded from another host) and the reports' index page.
"""

from __future__ import annotations

import functools
import html
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import Preprocessor
from traitlets.config import Config

from territory_lib.errors import TerritoryError
from territory_lib.maps import MAP_MIMETYPE, leaflet_tags, without_repeated_outlines
from territory_lib.paths import write_text_atomically
from territory_lib.presentation import human_time

__all__ = [
    "METHOD_TAG",
    "REMOVE_CELL_TAGS",
    "REMOVE_INPUT_TAGS",
    "REMOVE_OUTPUT_TAGS",
    "InlineMaps",
    "MethodFold",
    "StakeholderOutputs",
    "export_html",
    "external_resources",
    "write_index",
]

TEMPLATES_DIR = Path(__file__).parent / "templates"
NBCONVERT_TEMPLATE = "territory"

#: Cells a stakeholder never sees: hidden by the author, parameters, and papermill's error banners.
REMOVE_CELL_TAGS = frozenset({"remove-cell", "parameters", "injected-parameters", "papermill-error-cell-tag"})
#: Cells whose outputs are hidden (their input is hidden anyway).
REMOVE_OUTPUT_TAGS = frozenset({"remove-output"})
#: Accepted for Jupyter Book compatibility; reports never show inputs.
REMOVE_INPUT_TAGS = frozenset({"remove-input"})

INDEX_TITLE = "Territory reports"
#: The alerts a market's card on the index page shows at most (the overview lists them all).
MAX_CARD_ALERTS = 4


class StakeholderOutputs(Preprocessor):
    """Drop what a stakeholder must not see: stderr, error outputs and the cells left empty.

    Warnings and logs go to stderr and tracebacks are ``error`` outputs; both are for analysts,
    who have the executed notebook beside the report. A code cell with no output left would only
    add an empty block once inputs are hidden.
    """

    def preprocess(
        self, nb: nbformat.NotebookNode, resources: dict[str, Any]
    ) -> tuple[nbformat.NotebookNode, dict[str, Any]]:
        """Filter the outputs of every code cell and drop the code cells left without output."""
        kept = []
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = [
                    out
                    for out in cell.outputs
                    if out.output_type != "error"
                    and not (out.output_type == "stream" and out.get("name") == "stderr")
                ]
                if not cell.outputs:
                    continue
            kept.append(cell)
        nb.cells = kept
        return nb, resources


#: Cells for analysts (formulas, fit statistics, timings): folded into "Method and data" at the end.
METHOD_TAG = "method"
METHOD_SUMMARY = "Method and data"
#: How long the data note at the top of a report may be; the full provenance is in the fold.
DATA_NOTE_LENGTH = 160
_HEADER_DATA_ROW = re.compile(r"(<span[^>]*>Data</span>)(.*?)(</div>)", re.DOTALL)


class MethodFold(Preprocessor):
    """Fold the cells tagged ``method`` into one collapsed "Method and data" section at the end.

    Findings come first for the stakeholder; regression tables, formulas, compactness measures and
    timings stay one click away. The run header's full data provenance moves into the same
    section, leaving a one-line data note at the top.
    """

    def preprocess(
        self, nb: nbformat.NotebookNode, resources: dict[str, Any]
    ) -> tuple[nbformat.NotebookNode, dict[str, Any]]:
        """Move tagged cells (and the header's provenance) into a ``<details>`` after the findings."""
        for cell in nb.cells:  # only this preprocessor's cells may bypass the raw-cell cleaning
            cell.get("metadata", {}).pop("territory_fold", None)
        method = [cell for cell in nb.cells if METHOD_TAG in cell.get("metadata", {}).get("tags", [])]
        cells = [cell for cell in nb.cells if METHOD_TAG not in cell.get("metadata", {}).get("tags", [])]
        sources = [source for cell in cells for source in _shorten_provenance(cell)]
        if sources:
            method.append(
                _raw_html(
                    "<h3>Data sources</h3>"
                    + "".join(f"<p class='territory-provenance'>{text}</p>" for text in sources)
                )
            )
        if method:
            opening = (
                f'<details class="territory-method"><summary><strong>{METHOD_SUMMARY}</strong>: how the '
                "figures were computed, model fits, timings and where the data come from</summary>"
            )
            cells = [*cells, _raw_html(opening), *method, _raw_html("</details>")]
        nb.cells = cells
        return nb, resources


def _raw_html(source: str) -> nbformat.NotebookNode:
    """A raw cell the HTML export writes as it is (no wrapper), so tags may open and close across cells."""
    return nbformat.v4.new_raw_cell(source, metadata={"raw_mimetype": "text/html", "territory_fold": True})


def _shorten_provenance(cell: nbformat.NotebookNode) -> list[str]:
    """Cut the run header's data provenance to a one-line note; return the full texts taken out.

    The header (:func:`territory_lib.presentation.notebook_header`) holds escaped text, so the note
    is cut on the unescaped text and escaped again.
    """
    taken: list[str] = []
    for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
        page = output.get("data", {}).get("text/html")
        if not page:
            continue
        text = "".join(page) if isinstance(page, list) else page
        if "territory-run-header" not in text:
            continue

        def shorten(match: re.Match[str]) -> str:
            full = html.unescape(match.group(2)).strip()
            taken.append(html.escape(full))
            first = re.match(r"(.+?[.!?])(\s|$)", full)
            note = first.group(1) if first else full
            if len(note) > DATA_NOTE_LENGTH:
                note = note[: DATA_NOTE_LENGTH - 1].rstrip() + "…"
            if note != full:
                note += f" Full sources: “{METHOD_SUMMARY}”, at the end."
            return f"{match.group(1)}{html.escape(note)}{match.group(3)}"

        output["data"]["text/html"] = _HEADER_DATA_ROW.sub(shorten, text, count=1)
    return taken


class InlineMaps(Preprocessor):
    """Put each map into the page itself, with Leaflet inlined once before the first map.

    In the notebook a map (:class:`territory_lib.maps.TerritoryMap`) is an iframe holding a
    whole page with its own copy of Leaflet (~150 KB, more once escaped); it also carries itself as
    a page fragment without Leaflet (:data:`territory_lib.maps.MAP_MIMETYPE`). The report shows the
    fragments, so a page with many maps carries Leaflet once, and the outlines of units that several
    maps draw once.
    """

    def preprocess(
        self, nb: nbformat.NotebookNode, resources: dict[str, Any]
    ) -> tuple[nbformat.NotebookNode, dict[str, Any]]:
        """Replace the iframe of every map output by the fragment; Leaflet goes before the first."""
        outputs = [
            output
            for cell in nb.cells
            for output in cell.get("outputs", [])
            if MAP_MIMETYPE in (output.get("data") or {})
        ]
        fragments = [output["data"].pop(MAP_MIMETYPE) for output in outputs]
        fragments = ["".join(f) if isinstance(f, list) else str(f) for f in fragments]
        for i, (output, fragment) in enumerate(
            zip(outputs, without_repeated_outlines(fragments), strict=True)
        ):
            output["data"]["text/html"] = (leaflet_tags() if i == 0 else "") + fragment
        return nb, resources


def export_html(
    notebook_path: str | os.PathLike[str],
    html_path: str | os.PathLike[str],
    *,
    title: str,
    nav: Sequence[tuple[str, str]] = (),
    home_href: str | None = None,
) -> Path:
    """Export an executed notebook to a self-contained stakeholder HTML report.

    No code inputs or prompts are shown. Cells tagged ``remove-cell``, ``parameters``,
    ``injected-parameters`` or papermill's ``papermill-error-cell-tag`` are removed;
    ``remove-output`` hides a cell's outputs; stderr streams and error outputs (tracebacks) are
    dropped. The page loads no script or stylesheet from another host (the lab template's
    require.js, MathJax and Mermaid loaders are left out), and the export fails if a notebook
    output would make it do so.

    Parameters
    ----------
    notebook_path
        The executed notebook (``.ipynb``).
    html_path
        Where to write the report; written atomically (a temporary file, then a rename).
    title
        The page title (``<title>``).
    nav
        ``(label, href)`` links for the navigation bar, e.g. to the other steps of the same market;
        the link whose href is the report's own file name is marked as the current page.
    home_href
        Link to the index of all markets, shown first in the navigation bar.

    Returns
    -------
    Path
        ``html_path``.
    """
    notebook_path, html_path = Path(notebook_path), Path(html_path)
    try:
        nb = nbformat.read(notebook_path, as_version=4)
    except FileNotFoundError as exc:
        raise TerritoryError(
            f"Notebook {notebook_path} does not exist; run the step before exporting it."
        ) from exc
    except (json.JSONDecodeError, nbformat.reader.NotJSONError) as exc:
        raise TerritoryError(
            f"Notebook {notebook_path} is not valid notebook JSON ({exc}); re-run the step."
        ) from exc
    nb.metadata["title"] = title

    resources = {
        "metadata": {"name": notebook_path.stem, "path": str(notebook_path.parent)},
        "territory": {
            "nav": [(str(label), str(href)) for label, href in nav],
            "home_href": home_href,
            "current": html_path.name,
        },
    }
    with _EXPORTER_LOCK:
        body, _ = _exporter().from_notebook_node(nb, resources=resources)
    external = external_resources(body)
    if external:
        raise TerritoryError(
            f"The report of {notebook_path.name} would load {len(external)} script(s)/stylesheet(s) from "
            f"other hosts ({', '.join(external[:3])}), so it would not work offline. Display maps made "
            "with territory_lib.maps and avoid outputs that pull libraries from a CDN."
        )
    html_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(html_path, body)
    return html_path


def external_resources(page: str) -> list[str]:
    """Return the URLs of scripts and stylesheets that ``page`` loads from another host.

    Looks at ``<script src>``, ``<link href>`` and CSS ``@import``/``url()`` with an absolute URL
    (``http:``, ``https:`` or ``//``), including inside iframes' ``srcdoc`` documents such as
    folium maps. Ordinary ``<a href>`` links are not resources and are ignored.
    """
    finder = _ResourceFinder()
    finder.feed(page)
    finder.close()
    return finder.found


def write_index(reports_root: str | os.PathLike[str]) -> Path:
    """Write ``reports_root/index.html``, the stakeholders' entry page to every market's reports.

    Reads every ``reports_root/<market>/manifest.json`` (written by the runner; folders whose
    names start with ``_`` or ``.`` are skipped as working copies) and shows, per
    market and sorted by title: the run time and status, links to the step reports and downloads
    that exist, and, if the last run failed, which step failed and that the reports shown are
    from the previous successful run. A manifest that cannot be read is reported on the page
    rather than stopping it. The page is self-contained (inline CSS only) and written atomically.

    Parameters
    ----------
    reports_root
        The reports folder (see :func:`territory_lib.paths.reports_dir`).

    Returns
    -------
    Path
        The index file.
    """
    root = Path(reports_root)
    root.mkdir(parents=True, exist_ok=True)
    markets = [_market_entry(root, folder) for folder in sorted(root.iterdir()) if _has_manifest(folder)]
    markets.sort(key=lambda m: (m["title"].casefold(), m["folder"]))
    template = _jinja().get_template("index.html.j2")
    page = template.render(page_title=INDEX_TITLE, markets=markets)
    index = root / "index.html"
    write_text_atomically(index, page)
    return index


def warm_exporter() -> None:
    """Make the exporter and compile what its first export would (templates, the HTML parser's
    entity table, regular expressions: 0.4 s) by rendering a small notebook.

    The runner does this in the background while the first step runs, so the first report is
    rendered as fast as the others.
    """
    notebook = nbformat.v4.new_notebook()
    html_output = nbformat.v4.new_output("display_data", data={"text/html": "<p>A &amp; B</p>"})
    notebook.cells = [
        nbformat.v4.new_markdown_cell("A &amp; *B*"),
        nbformat.v4.new_code_cell("", outputs=[html_output]),
    ]
    resources: dict[str, Any] = {"territory": {"nav": [], "home_href": None, "current": ""}}
    with _EXPORTER_LOCK:
        _exporter().from_notebook_node(notebook, resources=resources)


#: One exporter per process, its templates compiled once; an export renders under this lock.
_EXPORTER_LOCK = threading.Lock()


@functools.cache
def _exporter() -> HTMLExporter:
    """The stakeholder HTML exporter; its preprocessors keep no state from one notebook to the next."""
    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_cell_tags = set(REMOVE_CELL_TAGS)
    config.TagRemovePreprocessor.remove_all_outputs_tags = set(REMOVE_OUTPUT_TAGS)
    config.TagRemovePreprocessor.remove_single_output_tags = set(REMOVE_OUTPUT_TAGS)
    config.TagRemovePreprocessor.remove_input_tags = set(REMOVE_INPUT_TAGS)
    exporter = HTMLExporter(
        config=config,
        template_name=NBCONVERT_TEMPLATE,
        extra_template_basedirs=[str(TEMPLATES_DIR / "nbconvert")],
        theme="light",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        # sanitize_html would strip the folium iframes; the notebooks are our own.
        sanitize_html=False,
    )
    exporter.register_preprocessor(StakeholderOutputs(), enabled=True)
    # The fold first: it reorders cells, and Leaflet must come before the first map of the final page.
    exporter.register_preprocessor(MethodFold(), enabled=True)
    exporter.register_preprocessor(InlineMaps(), enabled=True)
    return exporter


def _has_manifest(folder: Path) -> bool:
    # Folders starting with "_" or "." hold the runner's working copies, not published markets.
    return not folder.name.startswith(("_", ".")) and (folder / "manifest.json").is_file()


def _market_entry(root: Path, folder: Path) -> dict[str, Any]:
    """Everything the index template shows for one market, already checked against the disk."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if not isinstance(manifest, Mapping):
            raise ValueError("the file does not hold a JSON object")
    except (OSError, ValueError) as exc:
        return {
            "folder": folder.name,
            "title": folder.name,
            "status_label": "Unknown",
            "status_class": "other",
            "unreadable": (
                f"The run record of this market ({folder.name}/manifest.json) could not be read "
                f"({type(exc).__name__}). Run `territory run {folder.name}` again to rebuild it."
            ),
        }

    def href(relative: Any) -> str | None:
        if not isinstance(relative, str) or not relative or not (folder / relative).is_file():
            return None
        return quote(f"{folder.name}/{relative}")

    steps = []
    for step in manifest.get("steps") or []:
        number, title = step.get("step"), step.get("title") or step.get("notebook") or "Step"
        steps.append(
            {
                "title": f"{title}" if number is None else f"{number}. {title}",
                "html_href": href(step.get("html")),
                "ipynb_href": href(step.get("ipynb")),
            }
        )
    status = str(manifest.get("status") or "unknown")
    failure = manifest.get("last_failure")
    return {
        "folder": folder.name,
        "title": str(manifest.get("title") or manifest.get("market") or folder.name),
        "status_label": {"ok": "Up to date", "failed": "Last run failed"}.get(status, status.capitalize()),
        "status_class": status if status in {"ok", "failed"} else "other",
        "run_time": human_time(manifest.get("run_finished") or manifest.get("run_started")),
        "failure": (
            _failure_message(failure, manifest.get("steps") or [], steps)
            if isinstance(failure, Mapping)
            else None
        ),
        "steps": steps,
        "overview_href": href(manifest.get("overview")),
        "alerts": [str(alert) for alert in manifest.get("alerts") or [] if isinstance(alert, str)][
            :MAX_CARD_ALERTS
        ],
        "highlights": [
            {"label": str(item.get("label", "")), "value": str(item.get("value", ""))}
            for item in manifest.get("highlights") or []
            if isinstance(item, Mapping)
        ],
        "downloads": [
            {"label": str(item.get("label") or item.get("href")), "href": href(item.get("href"))}
            for item in manifest.get("downloads") or []
            if isinstance(item, Mapping)
        ],
        "unreadable": None,
    }


def _failure_message(
    failure: Mapping[str, Any], manifest_steps: Sequence[Any], steps: Sequence[Mapping[str, Any]]
) -> str:
    step = failure.get("step")
    where = f"step {step}" if step is not None else "a step"
    titles = {s.get("step"): s.get("title") for s in manifest_steps if isinstance(s, Mapping)}
    if titles.get(step) or failure.get("notebook"):
        where += f", {titles.get(step) or failure['notebook']}"
    when = human_time(failure.get("time"))
    # A message is one line by contract; keep only its first line in case a traceback slipped in.
    reason = str(failure.get("message") or "").strip().splitlines()[:1]
    text = f"The last run{f' on {when}' if when else ''} stopped at {where}"
    text += f": {reason[0]}" if reason else "."
    if not text.endswith("."):
        text += "."
    if any(s["html_href"] for s in steps):
        text += " The reports below are from the previous successful run."
    else:
        text += " No reports are available yet."
    return text


def _jinja() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
    )


_ABSOLUTE_URL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"""@import\s+(?:url\()?\s*['"]?([^'")\s;]+)|url\(\s*['"]?([^'")\s]+)""", re.IGNORECASE)


class _ResourceFinder(HTMLParser):
    """Collect absolute URLs of scripts, stylesheets and CSS imports, recursing into ``srcdoc``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "script" and _ABSOLUTE_URL.match(attributes.get("src", "")):
            self.found.append(attributes["src"])
        elif tag == "link" and _ABSOLUTE_URL.match(attributes.get("href", "")):
            self.found.append(attributes["href"])
        elif tag == "iframe" and attributes.get("srcdoc"):
            # The parser already unescaped the attribute: it is the embedded document itself.
            self.found.extend(external_resources(attributes["srcdoc"]))
        elif tag == "style":
            self._in_style = True
        if attributes.get("style"):
            self.found.extend(self._css_urls(attributes["style"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.found.extend(self._css_urls(data))

    @staticmethod
    def _css_urls(css: str) -> Iterator[str]:
        for match in _CSS_URL.finditer(css):
            url = match.group(1) or match.group(2)
            if _ABSOLUTE_URL.match(url):
                yield url
