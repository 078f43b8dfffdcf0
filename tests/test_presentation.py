"""Report tables and lists: values escaped, numbers formatted, headings readable."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from territory_lib.presentation import humanize, show_figure, show_list, show_table


def test_table_escapes_values_formats_numbers_and_humanizes_headings() -> None:
    frame = pd.DataFrame(
        {"rep_name": ["<script>alert(1)</script>"], "sales_12m": [1234567.891], "share": [None]}
    )
    page = show_table(frame, {"sales_12m": "{:,.0f}", "share": "{:.0%}"}, caption="A & B").data
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "1,234,568" in page and "–" in page
    assert "<th>Rep name</th>" in page and "<th>Sales 12m</th>" in page
    assert "A &amp; B" in page


def test_long_tables_say_what_was_left_out() -> None:
    page = show_table(pd.DataFrame({"x": range(70)}), max_rows=60).data
    assert page.count("<tr>") == 60 and "First 60 of 70 rows" in page


def test_labels_override_headings() -> None:
    page = show_table(pd.DataFrame({"territory_id": ["T1"]}), labels={"territory_id": "Territory"}).data
    assert "<th>Territory</th>" in page


def test_named_index_heads_its_column_on_the_header_row() -> None:
    frame = pd.DataFrame({"accounts": [3]}, index=pd.Index(["SMB"], name="segment"))
    page = show_table(frame, index=True).data
    assert page.count("<tr") == 2  # one header row, one body row
    assert "<th>Segment</th>" in page and "<td>SMB</td>" in page


def test_lists_and_figures() -> None:
    assert show_list(["a < b"], "Title & more").data == (
        "<p><strong>Title &amp; more</strong></p><ul><li>a &lt; b</li></ul>"
    )
    figure = Figure()
    figure.subplots().plot([1, 2], [3, 4])
    import base64
    import re

    shown = show_figure(figure, alt="A line <rising> from 3 to 4").data
    alt = re.search(r'alt="([^"]*)"', shown).group(1)
    assert alt == "A line &lt;rising&gt; from 3 to 4"
    payload = re.search(r'src="data:image/png;base64,([^"]+)"', shown).group(1)
    assert base64.b64decode(payload).startswith(b"\x89PNG")
    assert humanize("mean_distance_km") == "Mean distance km"


def test_money_reads_in_short_scale_with_the_currency_sign() -> None:
    from territory_lib.presentation import money

    assert money(143_812_345) == "$143.8M"
    assert money(2.1e9, "JPY") == "¥2.1B"
    assert money(950) == "$950"
    assert money(999_960) == "$1M"  # not "1000.0K"
    assert money(-4_200, "EUR") == "-€4.2K"
    assert money(12_345, "CHF") == "12.3K CHF"
    assert money(float("nan")) == "–"


def test_one_percent_date_and_distance_style() -> None:
    from territory_lib.presentation import distance, long_date, month, percent

    assert percent(0.1234) == "12.3%"
    assert percent(-0.02, signed=True) == "-2.0%"
    assert long_date("2026-11-07") == "7 November 2026"
    assert month("2026-11-01") == "November 2026"
    assert distance(1_609.344, "mi") == "1,000 miles"
    assert distance(1_234.4) == "1,234 km"
