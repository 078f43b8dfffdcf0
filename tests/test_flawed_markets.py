"""End to end on flawed maps: each flaw of the corpus runs all five steps and plans as the clean map does.

North Carolina's built-in market is copied eight times: once as shipped, and once per flaw of
``tests/flawed_maps.py`` (units shrunk or grown by 5 m, a bow-tie, a spike, a repeated row, a unit
drawn on top of another, an island). All eight run in one ``territory run``; step 2's plan on each
flawed map must hold the params' bands and keep its compactness within 20 % of the clean map's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import yaml

from territory_lib.cli import main
from territory_lib.config import PARAMS_DIR, load_config
from territory_lib.io import prepare_builtin_data
from territory_lib.paths import REPORTS_ENV_VAR
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
    template = yaml.safe_load((PARAMS_DIR / "north_carolina.yaml").read_text(encoding="utf-8"))
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
    patch = pytest.MonkeyPatch()
    patch.setenv(REPORTS_ENV_VAR, str(reports))
    try:
        assert main(["run", *params, "--jobs", "2", "--run-date", "2026-11-27"]) == 0
    finally:
        patch.undo()
    return reports


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
    assert "needed no repair" in clean
