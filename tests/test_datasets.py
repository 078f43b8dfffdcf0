"""Tests of the built-in markets: real units, synthetic tables, links, determinism, atomic writes."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from territory_lib import datasets
from territory_lib.datasets import (
    BUILTIN_MARKETS,
    GENERATED_FILE,
    PROVENANCE_FILE,
    TABLE_FILES,
    prepare_builtin,
)
from territory_lib.errors import ConfigError
from territory_lib.geo import haversine_km

MARKETS = sorted(BUILTIN_MARKETS)
EXPECTED_UNITS = {"georgia": 159, "north_carolina": 100, "us_states": 48}
COLUMNS = {
    "accounts": [
        "account_id", "name", "lat", "lon", "zip_code", "city",
        "segment", "status", "potential", "unit_id", "rep_id",
    ],
    "reps": ["rep_id", "name", "home_lat", "home_lon", "home_city", "capacity", "segments", "territory_id"],
    "sales": ["date", "account_id", "amount"],
    "feedback": [
        "date", "rep_id", "score_workload", "score_travel", "score_market", "score_support", "comment",
    ],
}  # fmt: skip
ID_COLUMNS = {"account_id": str, "unit_id": str, "rep_id": str, "zip_code": str, "territory_id": str}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each built-in market prepared once, with the default seed."""
    root = tmp_path_factory.mktemp("builtin")
    folders = {}
    for name in MARKETS:
        messages: list[str] = []
        paths = prepare_builtin(name, root / name, progress=messages.append)
        assert set(paths) == set(TABLE_FILES)
        assert all(path.parent == root / name for path in paths.values())
        assert len(messages) >= 3 and all(message.startswith(name) for message in messages)
        folders[name] = root / name
    return folders


class Tables:
    """A prepared market's files, read the way a user would."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.units = gpd.read_file(folder / TABLE_FILES["units"])
        for table in COLUMNS:
            setattr(
                self, table, pd.read_csv(folder / TABLE_FILES[table], dtype=ID_COLUMNS, keep_default_na=False)
            )


@pytest.fixture(scope="module", params=MARKETS)
def market(request: pytest.FixtureRequest, prepared: dict[str, Path]) -> tuple[str, Tables]:
    return request.param, Tables(prepared[request.param])


@pytest.mark.slow
def test_every_market_writes_its_files_and_provenance(market: tuple[str, Tables]) -> None:
    name, tables = market
    assert sorted(p.name for p in tables.folder.iterdir()) == sorted(
        [*TABLE_FILES.values(), PROVENANCE_FILE, GENERATED_FILE]
    )
    provenance = (tables.folder / PROVENANCE_FILE).read_text(encoding="utf-8")
    assert BUILTIN_MARKETS[name].real_sources in provenance
    assert BUILTIN_MARKETS[name].synthetic_parts in provenance
    assert "seed 7" in provenance


@pytest.mark.slow
def test_units_are_the_real_polygons_with_ids_names_attributes_and_crs(market: tuple[str, Tables]) -> None:
    name, tables = market
    units = tables.units
    assert len(units) == EXPECTED_UNITS[name]
    assert units.crs is not None
    assert set(units.geom_type) <= {"Polygon", "MultiPolygon"}
    assert units["unit_id"].is_unique and units["name"].is_unique
    # FIPS codes, zero-padded: 5 digits for counties, 2 for states.
    assert units["unit_id"].str.fullmatch(r"\d{2}" if name == "us_states" else r"\d{5}").all()
    assert (units["name"].str.len() > 0).all()
    numeric = [c for c in units.columns if pd.api.types.is_numeric_dtype(units[c])]
    assert "zip_codes" in numeric and len(numeric) >= 4
    assert (units["zip_codes"] >= 1).all()
    reps = tables.reps
    assert set(units["territory_id"]) == set(reps["territory_id"])


def test_georgia_county_names_are_derived_correctly(prepared: dict[str, Path]) -> None:
    units = gpd.read_file(prepared["georgia"] / TABLE_FILES["units"]).sort_values("unit_id")
    by_id = dict(zip(units["unit_id"], units["name"], strict=True))
    assert by_id["13121"] == "Fulton" and by_id["13067"] == "Cobb" and by_id["13051"] == "Chatham"
    # Georgia's county FIPS codes follow the alphabet (Census sorts "Mc" as "Mac").
    keys = [n.lower().replace(" ", "").replace("mc", "mac") for n in units["name"]]
    assert keys == sorted(keys)


def test_county_name_of_a_polygon_without_zip_codes_comes_from_the_nearest_zip() -> None:
    real = datasets._RECIPES["georgia"].loader()
    without_appling = real.zips[real.zips["unit_id"] != "13001"]
    names = datasets._county_names(real.units, without_appling, "GA")
    assert names[int(np.flatnonzero(real.units["unit_id"] == "13001")[0])] == "Appling"


def test_accounts_have_canonical_columns_types_and_values(market: tuple[str, Tables]) -> None:
    name, tables = market
    accounts = tables.accounts
    assert list(accounts.columns) == COLUMNS["accounts"]
    assert accounts["account_id"].is_unique and accounts["account_id"].str.fullmatch(r"A\d{5}").all()
    assert accounts["name"].is_unique
    assert set(accounts["segment"]) == set(datasets.SEGMENTS)
    assert set(accounts["status"]) == {"customer", "prospect"}
    assert (accounts["potential"] > 0).all() and pd.api.types.is_integer_dtype(accounts["potential"])
    assert accounts["zip_code"].str.fullmatch(r"\d{5}").all()
    assert set(accounts["unit_id"]) <= set(tables.units["unit_id"])
    assert set(accounts["rep_id"]) <= set(tables.reps["rep_id"])
    expected = {"georgia": 2400, "north_carolina": 2000, "us_states": 5000}[name]
    assert len(accounts) == expected


def test_accounts_lie_inside_their_units(market: tuple[str, Tables]) -> None:
    _, tables = market
    accounts, units = tables.accounts, tables.units.set_index("unit_id")
    points = gpd.GeoSeries(gpd.points_from_xy(accounts["lon"], accounts["lat"]), crs=4326).to_crs(units.crs)
    polygons = gpd.GeoSeries(units.geometry.loc[accounts["unit_id"]].to_numpy(), crs=units.crs)
    assert points.within(polygons).all()


def test_account_owner_is_the_rep_of_the_units_current_territory(market: tuple[str, Tables]) -> None:
    _, tables = market
    territory_of_unit = tables.units.set_index("unit_id")["territory_id"]
    rep_of_territory = tables.reps.set_index("territory_id")["rep_id"]
    expected = rep_of_territory.loc[territory_of_unit.loc[tables.accounts["unit_id"]]].to_numpy()
    assert (tables.accounts["rep_id"].to_numpy() == expected).all()


def test_account_density_follows_the_units_size(market: tuple[str, Tables]) -> None:
    name, tables = market
    size = {"georgia": "population", "north_carolina": "births_1979", "us_states": "zip_codes"}[name]
    counts = tables.accounts.groupby("unit_id").size().reindex(tables.units["unit_id"], fill_value=0)
    assert np.corrcoef(counts.to_numpy(), tables.units[size].to_numpy())[0, 1] > 0.9


def test_reps_one_per_territory_with_capacity_near_the_account_count(market: tuple[str, Tables]) -> None:
    name, tables = market
    reps = tables.reps
    assert list(reps.columns) == COLUMNS["reps"]
    assert len(reps) == BUILTIN_MARKETS[name].default_territories
    assert reps["rep_id"].is_unique and reps["territory_id"].is_unique and reps["name"].is_unique
    assert pd.api.types.is_integer_dtype(reps["capacity"]) and reps["capacity"].nunique() > 1
    assert 1.0 <= reps["capacity"].sum() / len(tables.accounts) <= 1.11
    for segments in reps["segments"]:
        assert set(segments.split(";")) <= set(datasets.SEGMENTS)
    covered = set(";".join(reps["segments"]).split(";"))
    assert covered == set(datasets.SEGMENTS)
    # Homes are real ZIP centroids inside the market.
    lon_min, lat_min, lon_max, lat_max = tables.units.to_crs(4326).total_bounds
    assert (
        reps["home_lat"].between(lat_min, lat_max).all() and reps["home_lon"].between(lon_min, lon_max).all()
    )


def test_sales_cover_36_months_and_link_to_accounts(market: tuple[str, Tables]) -> None:
    _, tables = market
    sales = tables.sales
    assert list(sales.columns) == COLUMNS["sales"]
    months = sorted(sales["date"].unique())
    assert months == [d.strftime("%Y-%m-%d") for d in pd.date_range("2023-01-01", "2025-12-01", freq="MS")]
    assert set(sales["account_id"]) <= set(tables.accounts["account_id"])
    assert not sales.duplicated(["date", "account_id"]).any()
    assert (sales["amount"] > 0).all()


def test_sales_have_new_customers_churn_and_differing_territories(market: tuple[str, Tables]) -> None:
    _, tables = market
    sales, accounts = tables.sales, tables.accounts
    first = sales.groupby("account_id")["date"].min()
    new_per_month = first[first > "2023-01-01"].value_counts()
    assert len(new_per_month) >= 30 and new_per_month.mean() >= 3
    last = sales.groupby("account_id")["date"].max()
    churned = last[last < "2025-01-01"].index
    assert len(churned) > 0
    assert (accounts.set_index("account_id").loc[churned, "status"] == "prospect").all()
    buyers_in_december = set(sales.loc[sales["date"] == "2025-12-01", "account_id"])
    assert buyers_in_december <= set(accounts.loc[accounts["status"] == "customer", "account_id"])
    joined = sales.merge(accounts[["account_id", "rep_id", "potential"]], on="account_id")
    penetration = joined.groupby("rep_id")["amount"].sum() / accounts.groupby("rep_id")["potential"].sum()
    assert penetration.max() / penetration.min() > 1.2


def test_feedback_is_quarterly_per_rep_with_scores_1_to_5(market: tuple[str, Tables]) -> None:
    _, tables = market
    feedback = tables.feedback
    assert list(feedback.columns) == COLUMNS["feedback"]
    assert set(feedback["rep_id"]) == set(tables.reps["rep_id"])
    assert feedback.groupby("rep_id").size().eq(12).all()
    assert feedback["date"].min() == "2023-03-31" and feedback["date"].max() == "2025-12-31"
    for column in [c for c in feedback.columns if c.startswith("score_")]:
        assert pd.api.types.is_integer_dtype(feedback[column])
        assert feedback[column].between(1, 5).all()
    assert (feedback["comment"].str.len() > 10).all()
    assert feedback["comment"].nunique() > len(tables.reps)


def test_feedback_scores_carry_the_workload_and_travel_signal(market: tuple[str, Tables]) -> None:
    _, tables = market
    accounts, reps = tables.accounts, tables.reps.set_index("rep_id")
    load = accounts.groupby("rep_id").size() / reps["capacity"]
    home = reps.loc[accounts["rep_id"]]
    distance = (
        pd.Series(
            haversine_km(home["home_lat"], home["home_lon"], accounts["lat"], accounts["lon"]),
            index=accounts.index,
        )
        .groupby(accounts["rep_id"])
        .mean()
    )
    scores = tables.feedback.groupby("rep_id")[["score_workload", "score_travel"]].mean()
    assert np.corrcoef(scores["score_workload"], load.loc[scores.index])[0, 1] < -0.5
    assert np.corrcoef(scores["score_travel"], distance.loc[scores.index])[0, 1] < -0.3


def test_same_seed_gives_identical_files_and_another_seed_differs(
    prepared: dict[str, Path], tmp_path: Path
) -> None:
    again = prepare_builtin("north_carolina", tmp_path / "same", seed=7)
    other = prepare_builtin("north_carolina", tmp_path / "other", seed=8)
    for table, path in again.items():
        assert path.read_bytes() == (prepared["north_carolina"] / TABLE_FILES[table]).read_bytes(), table
    assert (tmp_path / "same" / PROVENANCE_FILE).read_bytes() == (
        prepared["north_carolina"] / PROVENANCE_FILE
    ).read_bytes()
    for table in ("accounts", "reps", "sales", "feedback"):
        assert other[table].read_bytes() != again[table].read_bytes(), table


def test_unknown_market_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="georgia, north_carolina, us_states"):
        prepare_builtin("atlantis", tmp_path / "atlantis")
    assert not (tmp_path / "atlantis").exists()


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True])
def test_bad_seed_is_a_config_error(tmp_path: Path, seed: object) -> None:
    with pytest.raises(ConfigError, match="seed"):
        prepare_builtin("north_carolina", tmp_path / "nc", seed=seed)  # type: ignore[arg-type]


def test_out_dir_holding_other_files_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match=r"notes\.txt"):
        prepare_builtin("north_carolina", folder)
    assert (folder / "notes.txt").read_text() == "keep me"
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    with pytest.raises(ConfigError, match="is a file"):
        prepare_builtin("north_carolina", a_file)


def test_rerun_replaces_a_dataset_and_leaves_no_staging_folders(tmp_path: Path) -> None:
    out = tmp_path / "data" / "nc"
    prepare_builtin("north_carolina", out, seed=1)
    prepare_builtin("north_carolina", out, seed=2)
    assert "seed 2" in (out / PROVENANCE_FILE).read_text(encoding="utf-8")
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["nc"]


def test_failure_while_writing_leaves_no_partial_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "nc"
    prepare_builtin("north_carolina", out, seed=1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    # provenance.md is the last file written, after the GeoPackage and every CSV.
    monkeypatch.setattr(Path, "write_text", fail)
    with pytest.raises(OSError, match="disk full"):
        prepare_builtin("north_carolina", out, seed=2)
    with pytest.raises(OSError, match="disk full"):
        prepare_builtin("north_carolina", tmp_path / "fresh", seed=2)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["nc"]


def test_a_unit_without_zip_codes_gets_accounts_at_points_inside_it() -> None:
    real = datasets._RECIPES["north_carolina"].loader()
    unit = int(np.flatnonzero(real.units["unit_id"] == "37183")[0])
    real.zips = real.zips[real.zips["unit_id"] != "37183"]
    places = datasets._sample_places(real, unit, 25, np.random.default_rng(0))
    assert len(places) == 25 and (places["zip_code"] == "").all()
    assert (places["city"] == real.units["name"].iat[unit]).all()
    points = gpd.GeoSeries(gpd.points_from_xy(places["lon"], places["lat"]), crs=4326).to_crs(real.units.crs)
    assert points.within(real.units.geometry.iat[unit]).all()


def test_markets_describe_what_is_real_and_what_is_synthetic() -> None:
    for name, market in BUILTIN_MARKETS.items():
        assert market.name == name
        assert "libpysal" in market.real_sources and "zipcodes" in market.real_sources
        assert "seeded" in market.synthetic_parts
        assert market.default_territories >= 2 and market.unit_label in {"county", "state"}
        assert market.title


@pytest.mark.slow
def test_company_names_never_run_out_and_stay_unique_and_seeded() -> None:
    # One city has 270 names of its own and shares 56,400 built from surnames: 60,000 exceed them.
    cities = np.full(60_000, "Macon")
    names = datasets._company_names(cities, np.random.default_rng(3))
    assert len(names) == len(cities) and len(set(names)) == len(names)
    assert any(name.endswith(" #2") for name in names)
    assert datasets._company_names(cities[:5000], np.random.default_rng(3)) == names[:5000]


@pytest.mark.parametrize("accounts", [0, -5, 1.5, "300", True])
def test_bad_account_count_is_a_config_error(tmp_path: Path, accounts: object) -> None:
    with pytest.raises(ConfigError, match="accounts must be a positive integer"):
        prepare_builtin("north_carolina", tmp_path / "nc", accounts=accounts)  # type: ignore[arg-type]
    assert not (tmp_path / "nc").exists()


@pytest.mark.slow
def test_the_generator_at_300k_accounts_finishes(tmp_path: Path) -> None:
    """National scale on a real map: Georgia, whose few cities exhaust the company name parts."""
    count = 300_000
    paths = prepare_builtin("georgia", tmp_path / "big", accounts=count)
    accounts = pd.read_csv(paths["accounts"], dtype=ID_COLUMNS, keep_default_na=False)
    assert len(accounts) == count and list(accounts.columns) == COLUMNS["accounts"]
    assert accounts["account_id"].is_unique and accounts["account_id"].str.fullmatch(r"A\d{6}").all()
    assert accounts["name"].is_unique and (accounts["name"].str.len() > 0).all()
    assert set(accounts["unit_id"]) <= set(gpd.read_file(paths["units"])["unit_id"])
    reps = pd.read_csv(paths["reps"], dtype=ID_COLUMNS)
    assert len(reps) == BUILTIN_MARKETS["georgia"].default_territories
    assert 1.0 <= reps["capacity"].sum() / count <= 1.11
    sales = pd.read_csv(paths["sales"], dtype={"account_id": "category", "date": "category"})
    assert len(sales) > 3_000_000 and sales["date"].nunique() == datasets.MONTHS
    assert set(sales["account_id"].cat.categories) <= set(accounts["account_id"])
    assert not sales.duplicated(["date", "account_id"]).any()
    assert "300,000 accounts" in (tmp_path / "big" / PROVENANCE_FILE).read_text(encoding="utf-8")
