"""How results appear in a report: escaped tables, figures as images, plain lists of findings."""

from __future__ import annotations

import base64
import functools
import html
import io
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from IPython.display import HTML
from matplotlib.figure import Figure

Formatter = str | Callable[[object], str]

MONEY = "{:,.0f}"
COUNT = "{:,.0f}"
PERCENT = "{:.1%}"
SIGNED_PERCENT = "{:+.1%}"
DECIMAL = "{:,.2f}"


#: Currency codes shown as a sign; others are written after the amount (``2.1B CHF``).
CURRENCY_SIGNS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CNY": "¥", "INR": "₹", "KRW": "₩"}
#: Kilometres in a mile, and the names of the distance units params may choose.
KM_PER_MILE = 1.609344
DISTANCE_NAMES = {"km": "km", "mi": "miles"}


def money(value: object, currency: str = "USD") -> str:
    """An amount in short scale with the currency sign: ``$143.8M``, ``¥2.1B``, ``-$950``, ``4.2K CHF``.

    Missing values show as "–". Three significant figures at most above a thousand, so a table of
    amounts reads at a glance; exact figures belong in the CSV downloads.
    """
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    amount = float(value)  # type: ignore[arg-type]
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if amount >= scale * (1 - 5e-5):  # 999,960 shows as 1M, not 1000.0K
            text = f"{amount / scale:.1f}".removesuffix(".0") + suffix
            break
    else:
        text = f"{amount:,.0f}"
    symbol = CURRENCY_SIGNS.get(currency.upper())
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}"


def percent(value: object, *, signed: bool = False) -> str:
    """The one percent style of the reports: ``12.3%`` (``+12.3%`` when ``signed``); missing: "–"."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    return f"{float(value):+.1%}" if signed else f"{float(value):.1%}"  # type: ignore[arg-type]


def long_date(value: object) -> str:
    """The one date style of the reports: ``27 November 2026``; a month alone: ``November 2026``."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    moment = pd.Timestamp(value)
    return f"{moment.day} {moment:%B %Y}"


def month(value: object) -> str:
    """A month in the reports' style: ``November 2026``."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    return f"{pd.Timestamp(value):%B %Y}"


def distance(km: object, unit: str = "km") -> str:
    """A distance given in kilometres, shown in ``unit`` (``"km"`` or ``"mi"``): ``12,400 miles``."""
    if km is None or (isinstance(km, float) and pd.isna(km)):
        return "–"
    value = float(km) / (KM_PER_MILE if unit == "mi" else 1.0)  # type: ignore[arg-type]
    return f"{value:,.0f} {DISTANCE_NAMES[unit]}"


#: Measure columns holding money (the rest of a plan's measures are counts, e.g. accounts).
MONEY_MEASURES = ("potential", "sales", "revenue", "amount")


def measure_formats(columns: Iterable[str], currency: str = "USD") -> dict[str, Callable[[object], str]]:
    """Formats for balance-measure columns: money in short scale for money measures, counts otherwise.

    A column ``<measure>_dev`` (a deviation from target) is a signed percent.
    """
    formats: dict[str, Callable[[object], str]] = {}
    for column in columns:
        if column.endswith("_dev"):
            formats[column] = _signed_percent
        elif column.startswith(MONEY_MEASURES):
            formats[column] = functools.partial(money, currency=currency)
        else:
            formats[column] = _formatter(COUNT)
    return formats


def _signed_percent(value: object) -> str:
    return percent(value, signed=True)


def show_table(
    frame: pd.DataFrame,
    formats: Mapping[str, Formatter] | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    caption: str | None = None,
    index: bool = False,
    max_rows: int = 60,
) -> HTML:
    """Render ``frame`` as an HTML table for stakeholders: values escaped, numbers formatted.

    Parameters
    ----------
    frame
        The table; cells that are not formatted are shown as text, HTML-escaped.
    formats
        Per column, a format string (``"{:,.0f}"``) or a function; missing values show as "–".
    labels
        Headings by column name; other columns are headed by :func:`humanize`.
    caption
        A line shown above the table.
    index
        Show the index too (a named index as the first column).
    max_rows
        Longer tables show their first rows and say so.
    """
    if index and frame.index.name is not None:
        # A named index becomes the first column, so its name heads it on the same header row.
        frame, index = frame.reset_index(), False
    labels = {column: humanize(column) for column in frame.columns} | dict(labels or {})
    shown = frame.head(max_rows).rename(columns=labels)
    for column, spec in (formats or {}).items():
        if column in frame.columns:
            shown[labels[column]] = shown[labels[column]].map(_formatter(spec))
    body = shown.to_html(
        index=index,
        escape=True,
        na_rep="–",
        border=0,
        classes="territory-table",
        justify="left",
    )
    parts = []
    if caption:
        parts.append(f"<p class='territory-caption'><strong>{html.escape(caption)}</strong></p>")
    parts.append(body)
    if len(frame) > max_rows:
        parts.append(f"<p><em>First {max_rows} of {len(frame):,} rows.</em></p>")
    return HTML("\n".join(parts))


def humanize(column: object) -> str:
    """A heading from a column name: ``sales_12m`` -> ``Sales 12m``, ``rep_id`` -> ``Rep id``."""
    text = str(column).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _formatter(spec: Formatter) -> Callable[[object], str]:
    def apply(value: object) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return "–"
        return spec(value) if callable(spec) else spec.format(value)

    return apply


def chart_text(value: object) -> str:
    """A label for a matplotlib chart that prints literally: ``$`` would otherwise start mathtext.

    Territory ids, rep names, segments or a currency such as ``US$`` come from the user's files;
    an escaped ``\\$`` prints as ``$`` (matplotlib's ``text.parse_math`` rule).
    """
    return str(value).replace("$", r"\$")


def show_figure(figure: Figure, *, alt: str, dpi: int = 110) -> HTML:
    """A matplotlib figure as an embedded PNG (no file, no network) with its alt text.

    ``alt`` says in words what the chart shows, for readers who cannot see it (screen readers,
    images blocked): the figure is an ``<img>`` carrying that text, escaped. It is required, so no
    chart reaches a report with the exporter's placeholder ("No description has been provided").
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return HTML(
        f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(alt, quote=True)}" '
        'style="max-width:100%;height:auto">'
    )


def show_list(items: Iterable[str], title: str | None = None) -> HTML:
    """A bulleted list of plain-text findings, escaped."""
    lines = "".join(f"<li>{html.escape(item)}</li>" for item in items)
    heading = f"<p><strong>{html.escape(title)}</strong></p>" if title else ""
    return HTML(f"{heading}<ul>{lines}</ul>")


def notebook_header(step_title: str, market_title: str, run_date: str, provenance: str | None = None) -> HTML:
    """Return the box that opens every report: step, market, run date and where the data come from.

    Parameters
    ----------
    step_title
        The management step, e.g. ``"Analyze the market"``.
    market_title
        The market's display name, e.g. ``"Georgia, USA"``.
    run_date
        When the run happened; an ISO 8601 date or timestamp is shown in words
        (``"27 November 2026, 08:00 UTC"``), anything else as given.
    provenance
        A plain sentence or two on which data are real and which are synthetic; omitted if ``None``.

    Returns
    -------
    IPython.display.HTML
        Display it as the first output of the notebook. All text is escaped.
    """
    rows = [
        ("Market", market_title),
        ("Run", human_time(run_date)),
    ]
    if provenance:
        rows.append(("Data", provenance))
    body = "".join(
        f'<div style="margin:2px 0"><span style="display:inline-block;min-width:4.5em;color:#57606a">'
        f"{html.escape(label)}</span>{html.escape(str(value))}</div>"
        for label, value in rows
    )
    box = (
        '<div class="territory-run-header" style="border:1px solid #d0d7de;border-left:4px solid #1f3a5f;'
        "border-radius:4px;background:#f6f8fa;padding:10px 14px;margin:4px 0 8px;"
        "font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2328\">"
        f'<div style="font-weight:600;font-size:15px;margin-bottom:4px">{html.escape(step_title)}</div>'
        f"{body}</div>"
    )
    return HTML(box)


def human_time(value: Any) -> str:
    """ISO 8601 → '27 November 2026, 08:00 UTC'; other text unchanged; None → ''."""
    if value is None:
        return ""
    text = str(value)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return f"{moment.day} {moment:%B %Y}"
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
        return f"{moment.day} {moment:%B %Y, %H:%M} UTC"
    return f"{moment.day} {moment:%B %Y, %H:%M}"
