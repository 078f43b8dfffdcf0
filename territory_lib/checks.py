"""The checks every step and ``territory check`` run on a market's data: what the steps would crash on
or misreport. Errors stop the run; notes let it go on and go into ``Market.warnings`` (and the reports).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import pandas as pd

from territory_lib.config import MarketConfig, counted
from territory_lib.errors import ConfigError, DataError
from territory_lib.io import Market, _rows

#: Months of sales a trend needs (step 4); with fewer, step 4 shows no trend or forecast.
MIN_TREND_MONTHS = 12
#: Months of sales the trend model needs to separate seasonality (one month-of-year term each).
MIN_SEASONAL_MONTHS = 24
#: Whole months between the latest sale and the run date beyond which "the last 12 months" is stale.
STALE_AFTER_MONTHS = 2
#: More than this share of accounts outside every unit means the coordinates, not the accounts, are wrong.
MAX_OUTSIDE_SHARE = 0.5


def parse_run_date(value: str | dt.date | None, what: str = "run_date parameter") -> dt.date:
    """The run date: ``YYYY-MM-DD`` text or a date; today when empty.

    Raises
    ------
    ConfigError
        Naming ``what`` (the parameter or option) when the text is not a date.
    """
    if value is None or value == "":
        return dt.date.today()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{what} {value!r} is not a date; write it as YYYY-MM-DD.") from None


def check_market(market: Market, run_date: str | dt.date | None = None) -> list[str]:
    """Run the market-wide checks on validated tables; return the notes, raise on errors.

    Parameters
    ----------
    market
        The validated tables (accounts already placed in their units).
    run_date
        The date of the run; sales after it are an error. Empty for today.

    Raises
    ------
    DataError
        Sales dated after the run date (naming the sales file, column 'date' and rows).
    ConfigError
        More territories than units with accounts (naming the params key 'territories').
    """
    date = parse_run_date(run_date)
    check_sales_dates(market, date)
    check_territories(market)
    candidates = (history_note(market), stale_note(market, date), returns_note(market), capacity_note(market))
    return [note for note in candidates if note]


def check_sales_dates(market: Market, run_date: dt.date) -> None:
    """Sales dated after the run date would count as "the last twelve months": an error (as is no sales)."""
    sales = market.sales
    if sales.empty:
        raise DataError(
            f"{market.config.data.sales}: has no sales rows; steps 1 and 4 measure sales, so add the "
            "sales history (date, account_id, amount)."
        )
    late = sales["date"] > pd.Timestamp(run_date)
    if late.any():
        raise DataError(
            f"{market.config.data.sales}: column 'date' has {counted(int(late.sum()), 'sale')} dated after "
            f"the run date {run_date:%Y-%m-%d} in {_rows(late, False)} "
            f"(latest {sales['date'].max():%Y-%m-%d}); "
            "correct those dates, or pass --run-date (the notebooks' run_date parameter) on or after them."
        )


def check_territories(market: Market) -> None:
    """Each territory needs at least one unit holding accounts; more territories cannot be drawn."""
    config = market.config
    units = len(market.units)
    holding = int(market.accounts["unit_id"].nunique())
    maximum = min(units, holding)
    if config.territories > maximum:
        raise ConfigError(
            f"{config.source}: 'territories: {config.territories}' is more than the units can carry: "
            f"{Path(config.data.units).name} has {counted(units, config.unit_label)}, "
            f"{holding:,} of them with accounts, and each territory needs at least one; "
            f"set 'territories' to {maximum} or fewer."
        )


def history_months(sales: pd.DataFrame) -> int:
    """Calendar months from the first month with sales to the last, both included."""
    if sales.empty:
        return 0
    months = sales["date"].dt.to_period("M")
    return (months.max() - months.min()).n + 1


def history_note(market: Market) -> str | None:
    """A note when the sales history is too short for a trend, or for seasonality."""
    months = history_months(market.sales)
    path = market.config.data.sales
    first, last = market.sales["date"].min(), market.sales["date"].max()
    span = f"{counted(months, 'month')} ({first:%B %Y} to {last:%B %Y})"
    if months < MIN_TREND_MONTHS:
        return (
            f"{path}: column 'date' spans only {span}: too little sales history for a trend "
            f"({MIN_TREND_MONTHS} months needed); step 4 shows the monthly figures without a trend or "
            "forecast. Add older sales to the file for a trend."
        )
    if months < MIN_SEASONAL_MONTHS:
        return (
            f"{path}: column 'date' spans {span}: step 4's trends leave out seasonality "
            f"({MIN_SEASONAL_MONTHS} months needed). Add older sales to the file to separate it."
        )
    return None


def stale_note(market: Market, run_date: dt.date) -> str | None:
    """A note when the latest sale is months before the run date: every "last 12 months" is as of then."""
    last = market.sales["date"].max()
    gap = (pd.Period(run_date, "M") - last.to_period("M")).n
    if gap <= STALE_AFTER_MONTHS:
        return None
    return (
        f"{market.config.data.sales}: the latest sale is dated {last:%d %B %Y}, {counted(gap, 'month')} "
        f"before the run date {run_date:%d %B %Y}: every 'last 12 months' figure and the forecasts start "
        f"from {last:%B %Y}, not from today. Add the recent sales to the file if there are any."
    )


def returns_summary(sales: pd.DataFrame) -> tuple[int, float]:
    """How many sales rows are negative (returns, credit notes), and their total."""
    negative = sales["amount"] < 0
    return int(negative.sum()), float(sales.loc[negative, "amount"].sum())


def returns_note(market: Market) -> str | None:
    """Negative amounts are legitimate (returns, credit notes): a note counting them, never an error."""
    count, total = returns_summary(market.sales)
    if not count:
        return None
    negative = market.sales["amount"] < 0
    return (
        f"{market.config.data.sales}: column 'amount' has {count:,} negative amount(s) in "
        f"{_rows(negative, False)}: {count:,} returns/credit notes totalling {total:,.2f} "
        f"{market.config.currency}; accepted, and netted against sales in every step."
    )


def capacity_note(market: Market) -> str | None:
    """Reps with capacity 0 cannot carry a territory: a note naming them (step 3 says "no capacity")."""
    reps = market.reps
    none = reps["capacity"] <= 0
    if not none.any():
        return None
    ids = ", ".join(reps.loc[none, "rep_id"])
    return (
        f"{market.config.data.reps}: column 'capacity' is 0 for rep(s) {ids} ({_rows(none, False)}): step 3 "
        "shows them as 'no capacity', and step 5 sizes territories equally instead of by capacity. "
        "Set the number of accounts each can cover, or remove reps who carry no territory."
    )


def check_units_crs(config: MarketConfig, units: gpd.GeoDataFrame) -> None:
    """Units whose coordinates cannot be degrees (metres) under a geographic CRS: an error.

    Longitudes up to 360 are allowed (some files count 0-360); projected coordinates are far larger.
    """
    if units.crs is None or not units.crs.is_geographic:
        return
    xmin, ymin, xmax, ymax = units.total_bounds
    if max(abs(xmin), abs(xmax)) <= 360 and max(abs(ymin), abs(ymax)) <= 90:
        return
    declared = (
        f"'units_crs: {config.units_crs}' in {config.source}"
        if config.units_crs is not None
        else "the file's own CRS"
    )
    raise DataError(
        f"{config.data.units}: the units' coordinates reach x {xmin:,.0f} to {xmax:,.0f}, "
        f"y {ymin:,.0f} to {ymax:,.0f}, which cannot be degrees, yet their CRS is {units.crs.name} "
        f"({declared}). They look like metres or feet: set 'units_crs' to the file's real projected CRS "
        "(e.g. its UTM zone, EPSG:326NN), or save the file with its CRS."
    )


def outside_units_note(config: MarketConfig, accounts: pd.DataFrame, outside: pd.Series) -> str | None:
    """Accounts outside every unit: an error when most are (the coordinates are wrong), else a note.

    Parameters
    ----------
    accounts
        The accounts, as validated (index = file row order).
    outside
        Per account, whether its lat/lon lie outside every unit.
    """
    count = int(outside.sum())
    if not count:
        return None
    path = config.data.accounts
    if count > MAX_OUTSIDE_SHARE * len(accounts):
        crs = f"'units_crs: {config.units_crs}'" if config.units_crs else "the CRS saved in the units file"
        raise DataError(
            f"{path}: {count:,} of {len(accounts):,} accounts lie outside every unit of "
            f"{Path(config.data.units).name} by their columns 'lat' and 'lon' "
            f"(e.g. {_rows(outside, False)}). "
            "Either the columns 'lat' and 'lon' are swapped (latitude is north-south, -90 to 90), or the "
            f"units' CRS is declared wrongly ({crs}): fix the columns or map them under "
            "'columns: accounts:' in the params, or give the units their real CRS."
        )
    examples = ", ".join(accounts.loc[outside, "account_id"].head(5))
    return (
        f"{path}: {counted(count, 'account')} ({examples}; {_rows(outside, False)}) lie outside every unit "
        "by their columns 'lat' and 'lon': those without a unit_id were given the nearest unit. "
        "Check their coordinates."
    )
