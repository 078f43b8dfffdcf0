"""`territory check` and every step catch what the steps would crash on or misreport.

One test per rule; each asserts that the message names the file and the column or unit, and, for
notes (the run goes on), that `territory check` prints it.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import matplotlib
import pandas as pd
import pytest
from matplotlib.text import Text

from territory_lib import performance
from territory_lib.cli import main
from territory_lib.config import ResourceSettings, load_config
from territory_lib.errors import ConfigError, DataError
from territory_lib.io import load_market
from territory_lib.resources import rep_workload, resource_recommendations, utilisation_chart
from tests.market_files import edit_csv

RUN_DATE = "2026-11-27"
#: A run date just after the test market's last sale (December 2025), so no stale-sales note joins in.
FRESH_RUN_DATE = "2026-01-15"


def checked(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """What `territory check` prints for the market at ``path`` (it must pass)."""
    assert main(["check", str(path), "--run-date", RUN_DATE]) == 0
    return capsys.readouterr().out


def check_error(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The error `territory check` prints for the market at ``path`` (it must fail with status 2)."""
    assert main(["check", str(path), "--run-date", RUN_DATE]) == 2
    return capsys.readouterr().err


def test_sales_after_the_run_date_are_an_error(make_market, capsys) -> None:
    def future(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[[3, 10], "date"] = "2027-02-01"
        return frame

    path = make_market(edit_csv("sales.csv", future))
    with pytest.raises(DataError) as caught:
        load_market(load_config(path), run_date=RUN_DATE)
    message = str(caught.value)
    assert "sales.csv" in message and "column 'date'" in message
    assert "rows 5, 12" in message and "2027-02-01" in message and "--run-date" in message
    assert "column 'date'" in check_error(path, capsys)
    # With a run date after those sales, the same files pass.
    assert main(["check", str(path), "--run-date", "2027-03-01"]) == 0


def test_check_refuses_a_run_date_that_is_not_a_date(make_market, capsys) -> None:
    assert main(["check", str(make_market()), "--run-date", "next week"]) == 2
    assert "--run-date 'next week' is not a date" in capsys.readouterr().err


def test_more_territories_than_the_units_can_carry(make_market, capsys) -> None:
    path = make_market(territories=200)
    with pytest.raises(ConfigError) as caught:
        load_market(load_config(path))
    message = str(caught.value)
    assert "handmade.yaml" in message and "'territories: 200'" in message
    assert "units.gpkg has 159 units" in message and "set 'territories' to 155 or fewer" in message
    assert "'territories: 200'" in check_error(path, capsys)


def test_territories_need_units_with_accounts(make_market) -> None:
    # Georgia's accounts sit in 155 of its 159 counties: 156 territories would leave one empty.
    with pytest.raises(ConfigError, match=r"'territories: 156'.*155 of them with accounts.*155 or fewer"):
        load_market(load_config(make_market(territories=156)))
    assert load_market(load_config(make_market(territories=155)))


def keep_last_months(months: int):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        dates = pd.to_datetime(frame["date"])
        start = dates.max().to_period("M").to_timestamp() - pd.DateOffset(months=months - 1)
        return frame[dates >= start]

    return edit_csv("sales.csv", change)


def test_too_little_history_for_a_trend_is_a_note_and_step_4_says_so(make_market, capsys) -> None:
    path = make_market(keep_last_months(3))
    market = load_market(load_config(path), run_date=RUN_DATE)
    [note] = [note for note in market.warnings if "trend" in note]
    assert "sales.csv" in note and "column 'date'" in note and "only 3 months" in note
    assert "too little sales history for a trend" in note
    assert note in checked(path, capsys)
    # Step 4 fits no trend (it once published "+175.6 % a year" from three months) and says why.
    assignment = market.accounts[["account_id"]].assign(territory_id="T01")
    kpis = performance.monthly_kpis(market.sales, assignment, market.accounts)
    assert performance.fit_trends(kpis, horizon=6) == []
    assert performance.anomalies([]).empty
    assert any("not enough history for a trend" in line for line in performance.data_notes(market.sales))


def test_history_too_short_for_seasonality_is_a_note(make_market, capsys) -> None:
    path = make_market(keep_last_months(15))
    market = load_market(load_config(path), run_date=RUN_DATE)
    [note] = [note for note in market.warnings if "seasonality" in note]
    assert "sales.csv" in note and "column 'date'" in note and "15 months" in note
    assert note in checked(path, capsys)
    assert any("leave out seasonality" in line for line in performance.data_notes(market.sales))


def test_swapped_lat_lon_put_most_accounts_outside_every_unit(make_market, capsys) -> None:
    path = make_market(edit_csv("accounts.csv", lambda f: f.rename(columns={"lat": "lon", "lon": "lat"})))
    with pytest.raises(DataError) as caught:
        load_market(load_config(path))
    message = str(caught.value)
    assert "accounts.csv" in message and "2,400 of 2,400 accounts lie outside every unit" in message
    assert "'lat' and 'lon' are swapped" in message
    assert "outside every unit" in check_error(path, capsys)


def units_without_crs(folder: Path) -> None:
    """Save Georgia's counties (UTM metres, EPSG:26716) as a shapefile that names no CRS."""
    units = gpd.read_file(folder / "units.gpkg")[["unit_id", "name", "population", "geometry"]]
    units.set_crs(None, allow_override=True).to_file(folder / "units.shp")


def without_crs_market(make_market, units_crs: str) -> Path:
    path = make_market(units_without_crs)
    path.write_text(path.read_text().replace("units.gpkg", "units.shp") + f"units_crs: {units_crs}\n")
    return path


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_units_crs_declared_wrongly_puts_most_accounts_outside(make_market, capsys) -> None:
    # Georgia's counties are in UTM zone 16 (NAD27); declared as zone 17 they sit ~600 km east.
    path = without_crs_market(make_market, "EPSG:32617")
    with pytest.raises(DataError) as caught:
        load_market(load_config(path))
    message = str(caught.value)
    assert "accounts.csv" in message and "outside every unit of units.shp" in message
    assert "columns 'lat' and 'lon'" in message and "'units_crs: EPSG:32617'" in message
    assert "'units_crs: EPSG:32617'" in check_error(path, capsys)
    path.write_text(path.read_text().replace("EPSG:32617", "EPSG:26716"))
    assert load_market(load_config(path), run_date=FRESH_RUN_DATE).warnings == []


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_units_in_metres_declared_as_degrees_are_an_error(make_market, capsys) -> None:
    path = without_crs_market(make_market, "EPSG:4326")
    with pytest.raises(DataError) as caught:
        load_market(load_config(path))
    message = str(caught.value)
    assert "units.shp" in message and "'units_crs: EPSG:4326'" in message
    assert "cannot be degrees" in message and "metres" in message
    assert "cannot be degrees" in check_error(path, capsys)


def test_a_few_accounts_outside_every_unit_get_the_nearest_and_are_named(make_market, capsys) -> None:
    def to_sea(frame: pd.DataFrame) -> pd.DataFrame:
        # Off the Georgia coast, in the Atlantic; without a unit_id they are located by lat/lon.
        frame.loc[[4, 7], ["lat", "lon", "unit_id"]] = ["31.0", "-80.5", ""]
        return frame

    path = make_market(edit_csv("accounts.csv", to_sea))
    market = load_market(load_config(path), run_date=FRESH_RUN_DATE)
    [note] = market.warnings
    assert "accounts.csv" in note and "2 accounts (A00005, A00008; rows 6, 9)" in note
    assert "columns 'lat' and 'lon'" in note and "nearest unit" in note
    assert market.accounts.loc[[4, 7], "unit_id"].ne("").all()
    assert note in checked(path, capsys)


def test_reps_with_capacity_0_are_named_and_shown_as_no_capacity(make_market, capsys) -> None:
    def no_capacity(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[frame["rep_id"] == "R03", "capacity"] = "0"
        return frame

    path = make_market(edit_csv("reps.csv", no_capacity))
    market = load_market(load_config(path), run_date=FRESH_RUN_DATE)
    [note] = market.warnings
    assert "reps.csv" in note and "column 'capacity'" in note and "R03" in note and "row 4" in note
    assert note in checked(path, capsys)
    # Step 3: the rep's territory is "no capacity", never "balanced", and the advice says what to do.
    accounts = market.accounts.assign(territory_id=market.accounts["rep_id"])
    rep_assignment = market.reps.assign(territory_id=market.reps["rep_id"], rep_name=market.reps["name"])
    workload = rep_workload(accounts, market.reps, rep_assignment, ResourceSettings())
    row = workload.set_index("rep_id").loc["R03"]
    assert row["status"] == "no capacity" and pd.isna(row["utilisation"])
    advice = resource_recommendations(workload, market.reps.iloc[0:0])
    assert any("R03" in line and "has no capacity" in line for line in advice)
    chart = utilisation_chart(workload, ResourceSettings())
    assert "no capacity" in [text.get_text() for text in chart.axes[0].texts]


def test_negative_amounts_are_accepted_counted_and_said(make_market, capsys) -> None:
    def returns(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[[0, 1, 2], "amount"] = ["-100", "-50.5", "-49.5"]
        return frame

    path = make_market(edit_csv("sales.csv", returns))
    market = load_market(load_config(path), run_date=FRESH_RUN_DATE)
    [note] = market.warnings
    assert "sales.csv" in note and "column 'amount'" in note and "rows 2, 3, 4" in note
    assert "3 returns/credit notes totalling -200.00 USD" in note
    assert note in checked(path, capsys)
    assert "Sales are net of 3 returns/credit notes (negative amounts) totalling -200 EUR." in (
        performance.data_notes(market.sales, "EUR")
    )


def test_a_returns_only_month_does_not_break_the_trend() -> None:
    months = pd.date_range("2024-01-01", periods=14, freq="MS")
    sales = pd.Series([1000.0] * 13 + [-300.0], index=months)
    fit = performance.fit_trend("T1", sales, horizon=2)
    # 14 months: a trend is judged (growth over the last 12 months against the 12 before needs 24).
    assert pd.notna(fit.trend.p_value) and fit.forecast["forecast"].notna().all()


def test_a_market_slug_with_a_trailing_newline_is_refused(make_market) -> None:
    path = make_market(market="acme\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "handmade.yaml" in message and "'market'" in message and "slug" in message


def literal(text: Text) -> str:
    """What matplotlib prints for ``text``: its string after mathtext and escapes are resolved."""
    shown, is_math = text._preprocess_math(text.get_text())
    assert not is_math, f"{text.get_text()!r} would be typeset as mathtext"
    return shown


def test_labels_and_currency_with_dollars_print_literally_in_charts() -> None:
    months = pd.date_range("2024-01-01", periods=15, freq="MS")
    fits = [performance.fit_trend("$a$b", pd.Series(range(100, 115), index=months, dtype=float), 2)]
    figure = performance.forecast_chart(fits, currency="US$ and $x$")
    figure.canvas.draw()
    assert literal(figure.axes[0].title).startswith("$a$b: ")
    assert literal(figure._suptitle) == "Monthly sales (US$ and $x$) and median forecast"

    workload = pd.DataFrame(
        {"territory_id": ["$a$b", "T2"], "utilisation": [0.9, 1.5], "status": ["balanced", "over capacity"]}
    )
    chart = utilisation_chart(workload, ResourceSettings())
    chart.canvas.draw()
    assert matplotlib.rcParams["text.parse_math"]  # the default: escaping is what keeps it literal
    assert [literal(label) for label in chart.axes[0].get_xticklabels()] == ["$a$b", "T2"]


def test_a_sales_file_without_rows_is_an_error(make_market, capsys) -> None:
    path = make_market(edit_csv("sales.csv", lambda frame: frame.iloc[0:0]))
    assert "sales.csv: has no sales rows" in check_error(path, capsys)


def test_sales_ending_months_before_the_run_date_are_a_note(make_market, capsys) -> None:
    path = make_market()
    market = load_market(load_config(path), run_date=RUN_DATE)  # sales end December 2025
    [note] = [note for note in market.warnings if "latest sale" in note]
    assert "sales.csv" in note and "11 months before the run date 27 November 2026" in note
    assert note in checked(path, capsys)
    fresh = load_market(load_config(path), run_date="2026-01-15")
    assert not [note for note in fresh.warnings if "latest sale" in note]
