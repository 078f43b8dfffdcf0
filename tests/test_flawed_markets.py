"""End to end on flawed maps: each flaw of the corpus runs all five steps and plans as the clean map does.

North Carolina's built-in market is copied eight times: once as shipped, and once per flaw of
``tests/flawed_maps.py`` (units shrunk or grown by 5 m, a bow-tie, a spike, a repeated row, a unit
drawn on top of another, an island). A ninth market is the real Tokyo metropolitan map as libpysal
ships it (262 municipalities, 10 invalid rings, about 200 overlaps between neighbours), with
seeded accounts, reps, sales and feedback in the documented columns. All nine run in one
``territory run``; step 2's plan on each flawed map must hold the params' bands and keep its
compactness within 20 % of the clean map's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import yaml
from libpysal import examples

from territory_lib.cli import main
from territory_lib.config import load_config
from territory_lib.io import prepare_builtin_data
from territory_lib.paths import REPORTS_ENV_VAR, builtin_dir
from territory_lib.steps import STEPS
from tests.flawed_maps import FLAWS, flawed_map

pytestmark = pytest.mark.slow
MARKETS = ("clean", *FLAWS)


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = load_config("north_carolina")
    prepare_builtin_data(base)
    source = Path(base.data.units).parent
    root = tmp_path_factory.mktemp("flawed")
    reports = root / "reports"
    template = yaml.safe_load((builtin_dir("params") / "north_carolina.yaml").read_text(encoding="utf-8"))
    template.pop("builtin")
    params = []
    for name in MARKETS:
        folder = root / name
        folder.mkdir()
        for table in ("accounts.csv", "reps.csv", "sales.csv", "feedback.csv"):
            shutil.copy(source / table, folder / table)
        units = gpd.read_file(source / "units.gpkg")
        (units if name == "clean" else flawed_map(units, name)).to_file(folder / "units.gpkg")
        document = template | {
            "market": f"nc_{name}",
            "title": f"North Carolina, {name} map",
            "data": {
                table: f"{name}/{table}.{'gpkg' if table == 'units' else 'csv'}"
                for table in type(base.data).model_fields
            },
        }
        path = root / f"nc_{name}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        params.append(str(path))
    params.append(str(_tokyo_market(root)))
    patch = pytest.MonkeyPatch()
    patch.setenv(REPORTS_ENV_VAR, str(reports))
    try:
        assert main(["run", *params, "--jobs", "2", "--run-date", "2026-11-27"]) == 0
    finally:
        patch.undo()
    return reports


def _tokyo_market(root: Path, seed: int = 5) -> Path:
    """The Tokyo map as published, with seeded accounts, reps, sales and feedback in documented columns."""
    rng = np.random.default_rng(seed)
    folder = root / "tokyo"
    folder.mkdir()
    source = Path(examples.get_path("tokyomet262.shp"))
    for suffix in (".shp", ".shx", ".dbf", ".prj"):
        shutil.copy(source.with_suffix(suffix), folder / f"municipalities{suffix}")
    units = gpd.read_file(source)
    chosen = rng.choice(len(units), size=900)
    points = units.geometry.iloc[np.unique(chosen)].sample_points(
        pd.Series(chosen).value_counts().sort_index().to_numpy(), rng=seed
    )
    points = points.explode(index_parts=False).to_crs(4326)
    count = len(points)
    accounts = pd.DataFrame(
        {
            "account_id": [f"J{i:04d}" for i in range(count)],
            "name": [f"Shop {i}" for i in range(count)],
            "lat": points.y.round(6).to_numpy(),
            "lon": points.x.round(6).to_numpy(),
            "segment": rng.choice(["Enterprise", "Mid-Market", "SMB"], count, p=[0.1, 0.3, 0.6]),
            "status": rng.choice(["customer", "prospect"], count, p=[0.6, 0.4]),
            "potential": rng.lognormal(9.5, 0.6, count).round(0),
        }
    )
    accounts.to_csv(folder / "accounts.csv", index=False)
    homes = accounts.sample(8, random_state=seed)
    reps = pd.DataFrame(
        {
            "rep_id": [f"R{i + 1}" for i in range(8)],
            "name": [f"Rep {i + 1}" for i in range(8)],
            "home_lat": homes["lat"].to_numpy(),
            "home_lon": homes["lon"].to_numpy(),
            "capacity": 150,
        }
    )
    reps.to_csv(folder / "reps.csv", index=False)
    customers = accounts[accounts["status"] == "customer"]
    months = pd.date_range("2024-01-01", "2025-12-01", freq="MS")
    sales = pd.DataFrame(
        [
            (month.date().isoformat(), account, round(potential / 12 * rng.uniform(0.2, 0.8), 2))
            for month in months
            for account, potential in zip(customers["account_id"], customers["potential"], strict=True)
            if rng.random() < 0.5
        ],
        columns=["date", "account_id", "amount"],
    )
    sales.to_csv(folder / "sales.csv", index=False)
    quarters = pd.date_range("2024-03-31", "2025-12-31", freq="QE")
    feedback = pd.DataFrame(
        [
            (day.date().isoformat(), rep, *rng.integers(1, 6, 2), "Too many prospects wait for a visit.")
            for day in quarters
            for rep in reps["rep_id"]
        ],
        columns=["date", "rep_id", "score_workload", "score_support", "comment"],
    )
    feedback.to_csv(folder / "feedback.csv", index=False)
    document = {
        "market": "tokyo",
        "title": "Tokyo metropolitan area (map as published)",
        "unit_label": "municipality",
        "currency": "JPY",
        "data": {
            "units": "tokyo/municipalities.shp",
            "accounts": "tokyo/accounts.csv",
            "reps": "tokyo/reps.csv",
            "sales": "tokyo/sales.csv",
            "feedback": "tokyo/feedback.csv",
        },
        "columns": {"units": {"unit_id": "GEOCODE", "name": "AREANAME"}},
        "territories": 8,
        "design": {"balance": [{"measure": "potential", "tolerance": 0.05}]},
    }
    path = root / "tokyo.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def test_the_published_tokyo_map_runs_all_five_steps(corpus_run: Path) -> None:
    folder = corpus_run / "tokyo"
    for step in STEPS:
        assert (folder / f"{step.notebook}.html").is_file(), step.notebook
    territories = pd.read_parquet(folder / "artifacts" / "territories.parquet")
    assert territories["potential_dev"].abs().max() <= 0.05 + 1e-9
    assert territories["contiguous"].all()
    page = (folder / "01_analyze_market.html").read_text(encoding="utf-8")
    assert "invalid shape repaired" in page and "overlap removed" in page


@pytest.mark.parametrize("name", MARKETS)
def test_every_flawed_map_runs_all_five_steps(corpus_run: Path, name: str) -> None:
    folder = corpus_run / f"nc_{name}"
    for step in STEPS:
        assert (folder / f"{step.notebook}.html").is_file(), step.notebook
    alignment = pd.read_csv(folder / "alignment.csv", dtype=str)
    assert alignment["territory_id"].notna().all()


@pytest.mark.parametrize("name", FLAWS)
def test_a_flawed_map_plans_as_well_as_the_clean_map(corpus_run: Path, name: str) -> None:
    bands = {spec.measure: spec.tolerance for spec in load_config("north_carolina").design.balance}
    clean = pd.read_parquet(corpus_run / "nc_clean" / "artifacts" / "territories.parquet")
    flawed = pd.read_parquet(corpus_run / f"nc_{name}" / "artifacts" / "territories.parquet")
    for measure, tolerance in bands.items():
        assert flawed[f"{measure}_dev"].abs().max() <= tolerance + 1e-9, measure
    ratio = flawed["polsby_popper"].mean() / clean["polsby_popper"].mean()
    assert 0.8 <= ratio <= 1.2


def test_step_1_lists_the_repairs_with_their_units(corpus_run: Path) -> None:
    page = (corpus_run / "nc_bowtie" / "01_analyze_market.html").read_text(encoding="utf-8")
    assert "Data notes" in page and "invalid shape repaired" in page
    shrunk = (corpus_run / "nc_shrunk" / "01_analyze_market.html").read_text(encoding="utf-8")
    assert "gap closed" in shrunk
    clean = (corpus_run / "nc_clean" / "01_analyze_market.html").read_text(encoding="utf-8")
    assert "map needed no repair" in clean and "needed no repair" not in shrunk
