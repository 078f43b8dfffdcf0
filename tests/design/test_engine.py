"""Behaviour of design_territories on real county maps: balance, contiguity, labels, errors."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from territory_lib.design import BalanceTarget, design_territories
from territory_lib.errors import ConfigError, InfeasibleError


@pytest.mark.slow
def test_nc_births_six_territories_within_one_percent(nc_counties: gpd.GeoDataFrame) -> None:
    result = design_territories(nc_counties, 6, {"BIR79": 0.01}, id_column="FIPS")
    assert result.feasible
    assert result.summary["max_dev_BIR79"] <= 0.01
    assert result.territories["contiguous"].all()
    assert sorted(result.assignment.unique()) == ["T01", "T02", "T03", "T04", "T05", "T06"]
    assert result.assignment.index.tolist() == nc_counties["FIPS"].astype(str).tolist()
    assert result.moves.empty


@pytest.mark.slow
def test_georgia_population_eight_territories_within_one_percent(georgia_counties: gpd.GeoDataFrame) -> None:
    result = design_territories(georgia_counties, 8, [BalanceTarget("TotPop90", 0.01)], id_column="AreaKey")
    assert result.feasible
    assert result.summary["max_dev_TotPop90"] <= 0.01
    assert result.summary["all_contiguous"]
    assert result.territories["TotPop90"].sum() == georgia_counties["TotPop90"].sum()


@pytest.mark.slow
def test_same_seed_same_plan(nc_counties: gpd.GeoDataFrame) -> None:
    first = design_territories(nc_counties, 5, {"BIR79": 0.05}, id_column="FIPS", seed=7)
    second = design_territories(nc_counties, 5, {"BIR79": 0.05}, id_column="FIPS", seed=7)
    pd.testing.assert_series_equal(first.assignment, second.assignment)


def test_csv_and_text(nc_counties: gpd.GeoDataFrame, tmp_path) -> None:
    result = design_territories(nc_counties, 4, {"BIR79": 0.05}, id_column="FIPS")
    path = result.to_csv(tmp_path / "plan.csv")
    written = pd.read_csv(path, dtype=str)
    assert list(written.columns) == ["unit_id", "territory_id"]
    assert len(written) == 100
    text = result.metrics_text()
    assert "BIR79_dev" in text and "mean_polsby_popper" in text


def test_k_larger_than_units_is_infeasible(nc_counties: gpd.GeoDataFrame) -> None:
    with pytest.raises(InfeasibleError, match="only 100 units"):
        design_territories(nc_counties, 101, {"BIR79": 0.05}, id_column="FIPS")


def test_missing_balance_column_names_it(nc_counties: gpd.GeoDataFrame) -> None:
    with pytest.raises(ConfigError, match="'sales'"):
        design_territories(nc_counties, 4, {"sales": 0.05}, id_column="FIPS")


def test_missing_crs_is_explained(nc_counties: gpd.GeoDataFrame) -> None:
    bare = nc_counties.copy().set_crs(None, allow_override=True)
    with pytest.raises(ConfigError, match="no CRS"):
        design_territories(bare, 4, {"BIR79": 0.05}, id_column="FIPS")


def test_one_territory_takes_everything(nc_counties: gpd.GeoDataFrame) -> None:
    result = design_territories(nc_counties, 1, {"BIR79": 0.05}, id_column="FIPS")
    assert (result.assignment == "T01").all()
    assert np.isclose(result.summary["max_dev_BIR79"], 0.0)
