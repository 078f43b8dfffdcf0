"""The synthetic generator on a map of one's own (``prepare_market``): files ``territory check`` accepts."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import yaml

from territory_lib.cli import main
from territory_lib.datasets import TABLE_FILES, prepare_market, zip_code_counts
from territory_lib.errors import ConfigError

ID_COLUMNS = {"account_id": str, "unit_id": str, "rep_id": str, "zip_code": str, "territory_id": str}


def voronoi_cells(count: int = 30, seed: int = 1) -> gpd.GeoDataFrame:
    """``count`` Voronoi cells of seeded points over Atlanta and its rural south-west (lon/lat)."""
    box = shapely.box(-85.2, 33.3, -84.2, 34.0)
    points = np.random.default_rng(seed).uniform([-85.2, 33.3], [-84.2, 34.0], size=(count, 2))
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(points), extend_to=box, ordered=True)
    )
    return gpd.GeoDataFrame(
        {"unit_id": [f"C{i:02d}" for i in range(count)], "households": np.arange(count) % 7 + 1.0},
        geometry=shapely.intersection(cells, box),
        crs=4326,
    )


@pytest.mark.slow
def test_a_custom_map_gets_accounts_at_its_real_zip_codes_and_passes_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    units = voronoi_cells()
    paths = prepare_market(
        units,
        tmp_path / "data",
        name="cells",
        title="Voronoi cells",
        territories=4,
        accounts=600,
        size="zip_codes",
        affluence=np.linspace(0.8, 1.2, len(units)),
        unit_label="cell",
    )
    written = gpd.read_file(paths["units"])
    counts = zip_code_counts(units)
    assert sorted(written["unit_id"]) == sorted(units["unit_id"])
    assert written.set_index("unit_id")["zip_codes"].to_dict() == dict(
        zip(units["unit_id"], counts, strict=True)
    )
    assert written["territory_id"].nunique() == 4
    accounts = pd.read_csv(paths["accounts"], dtype=ID_COLUMNS, keep_default_na=False)
    assert len(accounts) == 600
    # Density follows the ZIP count: a cell without ZIP codes gets no account, the densest the most.
    per_unit = accounts["unit_id"].value_counts().reindex(units["unit_id"], fill_value=0).to_numpy()
    assert (per_unit[counts == 0] == 0).all() and per_unit.argmax() == counts.argmax()
    assert (accounts["zip_code"] != "").all()
    points = gpd.GeoSeries(gpd.points_from_xy(accounts["lon"], accounts["lat"]), crs=4326)
    inside = points.within(
        units.set_index("unit_id").geometry.loc[accounts["unit_id"]].reset_index(drop=True)
    )
    assert inside.all()
    assert "prepare_market" in (tmp_path / "data" / "provenance.md").read_text(encoding="utf-8")

    params = tmp_path / "cells.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "market": "cells",
                "title": "Voronoi cells",
                "data": {table: f"data/{file}" for table, file in TABLE_FILES.items()},
                "territories": 4,
            }
        ),
        encoding="utf-8",
    )
    assert main(["check", str(params), "--run-date", "2026-01-15"]) == 0
    assert "cells: OK: 30 units, 600 accounts, 4 reps" in capsys.readouterr().out


def test_same_inputs_give_identical_files(tmp_path: Path) -> None:
    units = voronoi_cells(12, seed=4)
    for folder in ("a", "b"):
        prepare_market(
            units, tmp_path / folder, name="cells", title="t", territories=3, accounts=200, size="households"
        )
    for file in TABLE_FILES.values():
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"size": [1.0, 2.0]}, "size has 2 values for 12 units"),
        ({"size": "missing"}, "size='missing' names no numeric column"),
        ({"affluence": np.zeros(12)}, "affluence must be positive"),
        ({"territories": 13}, "territories must be between 1 and the 12 units"),
    ],
)
def test_bad_arguments_are_config_errors(tmp_path: Path, change: dict, message: str) -> None:
    arguments = {"name": "cells", "title": "t", "territories": 3, "accounts": 50, "size": "households"}
    with pytest.raises(ConfigError, match=message):
        prepare_market(voronoi_cells(12, seed=4), tmp_path / "out", **(arguments | change))
    assert not (tmp_path / "out").exists()


def test_units_without_a_crs_or_unique_ids_are_refused(tmp_path: Path) -> None:
    units = voronoi_cells(12, seed=4)
    arguments = {"name": "cells", "title": "t", "territories": 3, "accounts": 50, "size": "households"}
    with pytest.raises(ConfigError, match="with a CRS"):
        prepare_market(units.set_crs(None, allow_override=True), tmp_path / "out", **arguments)
    units.loc[3, "unit_id"] = "C00"
    with pytest.raises(ConfigError, match="row 3 \\('C00'\\) repeats an id"):
        prepare_market(units, tmp_path / "out", **arguments)
