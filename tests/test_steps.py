"""The step workspace: results pass between steps as files, inside the reports folder only."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import Point

from territory_lib.errors import ConfigError, StepOrderError
from territory_lib.paths import reports_dir
from territory_lib.steps import STEPS, Workspace, resolve_output_dir, start_step


def test_artifacts_round_trip_with_geometry(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    frame = gpd.GeoDataFrame({"unit_id": ["a"], "geometry": [Point(1, 2)]}, crs=4326)
    workspace.write("alignment", frame)
    back = workspace.read("alignment")
    assert isinstance(back, gpd.GeoDataFrame) and back.crs.to_epsg() == 4326
    workspace.write("kpis", pd.DataFrame({"x": [1]}))
    assert list(workspace.read("kpis")["x"]) == [1]
    assert not list(workspace.artifacts.glob("*.tmp"))


def test_a_missing_artifact_names_the_step_to_run_first(tmp_path: Path) -> None:
    with pytest.raises(StepOrderError, match=r"written by step 2 \(02_define_territories\)"):
        Workspace(tmp_path).read("alignment")


def test_output_dir_stays_inside_the_reports_folder() -> None:
    assert resolve_output_dir("", "georgia") == reports_dir() / "_scratch" / "georgia"
    inside = reports_dir() / "somewhere"
    assert resolve_output_dir(str(inside), "georgia") == inside.resolve()
    with pytest.raises(ConfigError, match="output_dir parameter '/etc' points outside"):
        resolve_output_dir("/etc", "georgia")
    with pytest.raises(ConfigError, match="points outside"):
        resolve_output_dir(str(reports_dir() / ".." / "escape"), "georgia")


def test_start_step_validates_its_inputs(georgia_config) -> None:
    context = start_step(1, "georgia", "", "2026-01-31", show_header=False, progress=None)
    assert context.step is STEPS[0] and context.run_date == "2026-01-31"
    assert len(context.market.units) == 159
    with pytest.raises(ConfigError, match="run_date parameter 'tomorrow' is not a date"):
        start_step(1, "georgia", "", "tomorrow", show_header=False, progress=None)
    with pytest.raises(ConfigError, match="step must be 1 to 5"):
        start_step(6, "georgia", show_header=False)


@pytest.mark.slow
@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.notebook)
def test_a_step_kernel_imports_no_report_machinery(step) -> None:
    """A step's imports and start, in a fresh interpreter, load neither nbconvert nor jsonschema,
    nor mapclassify or libpysal, nor (steps 2, 3 and 5) statsmodels.

    Importing them (for the report header) cost every kernel 1.3 s; mapclassify compiles numba
    code on import (about 2 s) and only step 1's choropleths need it; statsmodels (1 s) serves
    the models of steps 1 and 4.
    """
    import ast
    import subprocess
    import sys

    tree = ast.parse(step.path.with_suffix(".py").read_text(encoding="utf-8"))
    imports = [ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    probe = "\n".join(
        [
            *imports,
            "import sys",
            "from territory_lib.steps import start_step",
            f"start_step({step.number}, 'georgia', '', '2026-11-27', progress=None)",
            "print(sorted({m.split('.')[0] for m in sys.modules}))",
        ]
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "'nbconvert'" not in loaded and "'jsonschema'" not in loaded
    assert "'mapclassify'" not in loaded
    # libpysal loads numba and scikit-learn (1-2 s); only step 1's hot spots use it, and they
    # import it when they run. The report header of a built-in market used to load it.
    assert "'libpysal'" not in loaded and "'sklearn'" not in loaded
    if step.number in (2, 3, 5):
        assert "'statsmodels'" not in loaded


def test_metrics_sections_are_kept_across_steps_and_written_as_plain_json(tmp_path: Path) -> None:
    import json

    import numpy as np

    workspace = Workspace(tmp_path / "m")
    workspace.record_metrics("step1", {"hot_spots": np.int64(3), "expected_false_spots": float("nan")})
    workspace.record_metrics("step4", {"backtest": {"mase": np.float64(0.75)}})
    workspace.record_metrics("step1", {"hot_spots": 2, "cold_spots": [np.int32(1)]})
    loaded = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert loaded == {"step1": {"hot_spots": 2, "cold_spots": [1]}, "step4": {"backtest": {"mase": 0.75}}}
    workspace.record_metrics("step2", {"x": float("nan")})
    assert workspace.read_metrics()["step2"] == {"x": None}
