"""Loading market data: canonical tables, and errors that name the file, column and rows."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from territory_lib.config import load_config
from territory_lib.errors import DataError
from territory_lib.io import load_market
from tests.market_files import edit_csv


def test_georgia_loads_into_canonical_tables(georgia) -> None:
    assert len(georgia.units) == 159
    assert georgia.units.crs is not None
    assert georgia.units["unit_id"].is_unique
    assert {"population", "pct_bachelor"} <= set(georgia.unit_attributes)
    assert georgia.accounts["unit_id"].isin(georgia.units["unit_id"]).all()
    assert pd.api.types.is_datetime64_any_dtype(georgia.sales["date"])
    assert georgia.sales["date"].dt.to_period("M").nunique() >= 36
    assert georgia.score_columns and all(c.startswith("score_") for c in georgia.score_columns)
    assert set(georgia.accounts["status"]) <= {"customer", "prospect"}


def test_missing_required_column_names_file_and_column(make_market) -> None:
    def drop_unit_id(folder: Path) -> None:
        units = gpd.read_file(folder / "units.gpkg").rename(columns={"unit_id": "fips"})
        units.to_file(folder / "units.gpkg")

    config = load_config(make_market(drop_unit_id))
    with pytest.raises(DataError) as error:
        load_market(config)
    message = str(error.value)
    assert "units.gpkg" in message and "required column 'unit_id' is missing" in message
    assert "columns: units: unit_id:" in message


def test_column_map_lets_other_headers_through(make_market) -> None:
    rename = edit_csv("sales.csv", lambda f: f.rename(columns={"date": "order_date", "amount": "net"}))
    config = load_config(make_market(rename, columns={"sales": {"date": "order_date", "amount": "net"}}))
    market = load_market(config)
    assert {"date", "account_id", "amount"} <= set(market.sales.columns)


def test_column_map_to_a_missing_column_is_explained(make_market) -> None:
    config = load_config(make_market(columns={"sales": {"date": "when"}}))
    with pytest.raises(DataError, match=r"sales\.csv has no column 'when'; its columns are date, account_id"):
        load_market(config)


def test_non_numeric_value_is_reported_with_its_row(make_market) -> None:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[3, "lat"] = "n/a"
        return frame

    config = load_config(make_market(edit_csv("accounts.csv", corrupt)))
    with pytest.raises(
        DataError,
        match=r"accounts\.csv: column 'lat' has values that are not numbers in row 5 \(e\.g\. 'n/a'\)",
    ):
        load_market(config)


def test_out_of_range_and_bad_choice_are_reported(make_market) -> None:
    def bad_status(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[0, "status"] = "lead"
        return frame

    config = load_config(make_market(edit_csv("accounts.csv", bad_status)))
    with pytest.raises(
        DataError, match=r"column 'status' must be one of customer, prospect; row 2 have 'lead'"
    ):
        load_market(config)


def test_duplicate_ids_are_reported(make_market) -> None:
    def duplicate(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[1, "rep_id"] = frame.loc[0, "rep_id"]
        return frame

    config = load_config(make_market(edit_csv("reps.csv", duplicate)))
    with pytest.raises(DataError, match=r"reps\.csv: column 'rep_id' must be unique; rows 2, 3"):
        load_market(config)


def test_sales_for_unknown_accounts_are_reported(make_market) -> None:
    def orphan(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[0, "account_id"] = "NOPE"
        return frame

    config = load_config(make_market(edit_csv("sales.csv", orphan)))
    with pytest.raises(
        DataError,
        match=r"sales\.csv: column 'account_id' refers to accounts that do not exist in row 2 \('NOPE'\)",
    ):
        load_market(config)


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_units_without_crs_need_units_crs(make_market) -> None:
    def strip_crs(folder: Path) -> None:
        units = gpd.read_file(folder / "units.gpkg")[["unit_id", "name", "population", "geometry"]]
        units.to_crs(4326).set_crs(None, allow_override=True).to_file(folder / "units.shp")

    path = make_market(strip_crs)
    raw = path.read_text().replace("units.gpkg", "units.shp")
    path.write_text(raw)
    config = load_config(path)
    with pytest.raises(DataError, match="no coordinate reference system; add 'units_crs: EPSG:4326'"):
        load_market(config)
    path.write_text(raw + "units_crs: EPSG:4326\n")
    assert load_market(load_config(path)).units.crs.to_epsg() == 4326


def test_accounts_without_unit_are_located_by_coordinates(make_market, georgia) -> None:
    blank = edit_csv("accounts.csv", lambda f: f.assign(unit_id=""))
    market = load_market(load_config(make_market(blank)))
    matches = (
        market.accounts.set_index("account_id")["unit_id"]
        == georgia.accounts.set_index("account_id")["unit_id"]
    )
    assert matches.mean() > 0.99


def test_parquet_and_geojson_files_are_read(make_market, georgia) -> None:
    def convert(folder: Path) -> None:
        pd.read_csv(folder / "accounts.csv", dtype=str).to_parquet(folder / "accounts.parquet")
        gpd.read_file(folder / "units.gpkg").to_file(folder / "units.geojson", driver="GeoJSON")

    path = make_market(convert)
    path.write_text(
        path.read_text().replace("accounts.csv", "accounts.parquet").replace("units.gpkg", "units.geojson")
    )
    market = load_market(load_config(path))
    assert len(market.accounts) == len(georgia.accounts)
    assert len(market.units) == 159


def test_missing_file_is_named(make_market, tmp_path: Path) -> None:
    path = make_market()
    path.write_text(path.read_text().replace("reps.csv", "nobody.csv"))
    with pytest.raises(DataError, match=r"reps file .*nobody\.csv not found"):
        load_market(load_config(path))
