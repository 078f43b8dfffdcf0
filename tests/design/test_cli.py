"""The ``territory design`` subcommand end to end (through the console script's entry point)."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest

from territory_lib.cli import main
from territory_lib.design.cli import parse_balance
from territory_lib.errors import ConfigError


def test_design_command_writes_plan(nc_counties: gpd.GeoDataFrame, tmp_path, capsys) -> None:
    units = tmp_path / "nc.geojson"
    nc_counties.to_file(units)
    out = tmp_path / "plan.csv"
    argv = ["design", "--units", str(units), "--id", "FIPS", "--k", "4", "--balance", "BIR79:0.05"]
    assert main([*argv, "--out", str(out)]) == 0
    plan = pd.read_csv(out, dtype=str)
    assert list(plan.columns) == ["unit_id", "territory_id"]
    assert plan["territory_id"].nunique() == 4
    printed = capsys.readouterr().out
    assert "BIR79_dev" in printed and "wrote" in printed


def test_realignment_flags(nc_counties: gpd.GeoDataFrame, tmp_path, capsys) -> None:
    units = nc_counties.copy()
    units["rep"] = ["A" if x < -80 else "B" for x in units.geometry.representative_point().x]
    path = tmp_path / "nc.gpkg"
    units.to_file(path)
    locked = tmp_path / "locked.csv"
    pd.DataFrame({"unit_id": [str(units.FIPS.iloc[0])], "territory_id": ["A"]}).to_csv(locked, index=False)
    out = tmp_path / "plan.csv"
    argv = ["design", "--units", str(path), "--id", "FIPS", "--k", "2", "--balance", "BIR79:0.05"]
    argv += ["--current", "rep", "--max-disruption", "0.3", "--locked", str(locked), "--out", str(out)]
    code = main(argv)
    plan = pd.read_csv(out, dtype=str).set_index("unit_id")["territory_id"]
    assert set(plan) == {"A", "B"}
    assert plan[str(units.FIPS.iloc[0])] == "A"
    assert code == 0


def test_parse_balance_accepts_percent_and_default() -> None:
    parsed = parse_balance(["sales:5%", "calls"])
    assert parsed[0].tolerance == pytest.approx(0.05)
    assert parsed[1].tolerance == 0.05


def test_bad_tolerance_is_named() -> None:
    with pytest.raises(ConfigError, match="sales:abc"):
        parse_balance(["sales:abc"])


def test_work_budget_flag_bounds_the_search(nc_counties: gpd.GeoDataFrame, tmp_path, capsys) -> None:
    units = tmp_path / "nc.geojson"
    nc_counties.to_file(units)
    argv = ["design", "--units", str(units), "--id", "FIPS", "--k", "4", "--balance", "BIR79:0.05"]
    plans = []
    for run in range(2):
        out = tmp_path / f"plan{run}.csv"
        main([*argv, "--work-budget", "5000", "--time-limit", "3600", "--out", str(out)])
        plans.append(pd.read_csv(out, dtype=str))
        printed = capsys.readouterr().out
        assert "of 5,000 work units" in printed and "whole work budget (5,000 work units)" in printed
    pd.testing.assert_frame_equal(plans[0], plans[1])


def test_work_budget_flag_must_be_positive(tmp_path, capsys) -> None:
    argv = ["design", "--units", str(tmp_path / "x.gpkg"), "--id", "FIPS", "--k", "4", "--balance", "BIR79"]
    assert main([*argv, "--work-budget", "0", "--out", str(tmp_path / "plan.csv")]) != 0
    assert "--work-budget 0: give a positive number of work units" in capsys.readouterr().err
