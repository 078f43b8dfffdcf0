"""Read once, compute once, rerun only what changed.

A run snapshots its inputs before step 1 and every step reads the snapshot; ``territory run``
reruns a step only when something it depends on changed, and every step after it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from territory_lib import runner, snapshot
from territory_lib.cli import main
from territory_lib.config import load_config
from territory_lib.design import design_territories
from territory_lib.io import load_market, prepare_builtin_data
from territory_lib.market import hot_spots, unit_metrics
from territory_lib.paths import REPORTS_ENV_VAR, builtin_dir
from territory_lib.steps import step_inputs, step_settings

RUN_DATE = "2026-11-27"


@pytest.fixture(scope="module")
def nc_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """North Carolina's built-in data copied to a folder of its own, with a params YAML pointing at it."""
    base = load_config("north_carolina")
    prepare_builtin_data(base)
    root = tmp_path_factory.mktemp("incremental")
    shutil.copytree(Path(base.data.units).parent, root / "data")
    document = yaml.safe_load((builtin_dir("params") / "north_carolina.yaml").read_text(encoding="utf-8"))
    document.pop("builtin")
    document["market"] = "nc"
    document["data"] = {table: f"data/{Path(path).name}" for table, path in document["data"].items()}
    path = root / "nc.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("reports")
    patch = pytest.MonkeyPatch()
    patch.setenv(REPORTS_ENV_VAR, str(root))
    yield root
    patch.undo()


def _stamps(folder: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    executed: list[int] = []
    real = runner._execute

    def execute(step, *args, **kwargs):
        executed.append(step.number)
        return real(step, *args, **kwargs)

    monkeypatch.setattr(runner, "_execute", execute)
    return executed


@pytest.mark.slow
def test_a_no_change_rerun_executes_no_notebook_and_a_step_4_change_reruns_4_and_5(
    nc_copy: Path, reports: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    executed = _counting(monkeypatch)
    first = runner.run_market(str(nc_copy), run_date=RUN_DATE, progress=lambda line: None)
    assert first.ok and executed == [1, 2, 3, 4, 5]
    published = _stamps(reports / "nc")

    executed.clear()
    assert main(["run", str(nc_copy), "--run-date", RUN_DATE]) == 0
    assert executed == []
    assert "up to date" in capsys.readouterr().out
    assert {
        path: path.stat().st_mtime_ns for path in (reports / "nc").rglob("*") if path.is_file()
    } == published

    document = yaml.safe_load(nc_copy.read_text(encoding="utf-8"))
    changed = nc_copy.with_name("nc_months.yaml")
    changed.write_text(yaml.safe_dump(document | {"forecast_months": 9}), encoding="utf-8")
    rerun = runner.run_market(str(changed), run_date=RUN_DATE, progress=lambda line: None)
    assert rerun.ok and executed == [4, 5] and rerun.steps_run == [4, 5]

    executed.clear()
    forced = runner.run_market(str(changed), run_date=RUN_DATE, progress=lambda line: None, force=True)
    assert forced.ok and executed == [1, 2, 3, 4, 5]


@pytest.mark.slow
def test_a_file_edited_mid_run_does_not_change_what_later_steps_read(
    nc_copy: Path, reports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reps_file = nc_copy.parent / "data" / "reps.csv"
    original = pd.read_csv(reps_file, dtype=str)
    real = runner._execute

    def execute(step, *args, **kwargs):
        failure = real(step, *args, **kwargs)
        if step.number == 1:  # between step 1 and step 2, someone renames every rep
            original.assign(name="Renamed Mid-Run").to_csv(reps_file, index=False)
        return failure

    monkeypatch.setattr(runner, "_execute", execute)
    try:
        run = runner.run_market(str(nc_copy), run_date="2026-11-26", progress=lambda line: None)
    finally:
        original.to_csv(reps_file, index=False)
    assert run.ok and run.steps_run == [1, 2, 3, 4, 5]
    assignment = pd.read_parquet(reports / "nc" / "artifacts" / "rep_assignment.parquet")
    assert "Renamed Mid-Run" not in set(assignment["rep_name"])
    assert set(assignment["rep_name"]) <= set(original["name"])
    # The run records the reps file as it read it, so a later run sees the file differ and reruns.
    manifest = json.loads((reports / "nc" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["inputs"][str(reps_file)] == snapshot.file_digest(reps_file)


def test_step_settings_split_the_params_by_step(georgia_config) -> None:
    before = {n: step_settings(georgia_config, n) for n in range(1, 6)}

    def changed(**update) -> set[int]:
        after = georgia_config.model_copy(update=update)
        return {n for n in range(1, 6) if step_settings(after, n) != before[n]}

    assert changed(forecast_months=9) == {4}
    assert changed(monitor=georgia_config.monitor.model_copy(update={"chart_territories": 3})) == {4}
    assert changed(resources=georgia_config.resources.model_copy(update={"over_capacity": 1.3})) == {3}
    design = georgia_config.design
    assert changed(design=design.model_copy(update={"max_disruption": 0.3})) == {5}
    assert changed(design=design.model_copy(update={"seed": 1})) == {2}
    assert changed(title="Another title") == {1, 2, 3, 4, 5}


def test_the_snapshot_reads_back_what_was_validated(georgia_config, tmp_path: Path) -> None:
    market, graph = snapshot.build_snapshot(georgia_config, tmp_path, RUN_DATE, "run")
    again, graph_again = snapshot.read_snapshot(georgia_config, tmp_path)
    for table in snapshot.TABLES:
        pd.testing.assert_frame_equal(
            pd.DataFrame(getattr(again, table)), pd.DataFrame(getattr(market, table)), check_dtype=False
        )
    assert again.warnings == market.warnings and again.repairs == market.repairs
    assert np.array_equal(graph_again.indices, graph.indices) and graph_again.notes == graph.notes
    assert snapshot.is_current(tmp_path, georgia_config, RUN_DATE)
    assert not snapshot.is_current(tmp_path, georgia_config, "2026-11-28")


def test_a_snapshot_made_by_another_version_of_the_library_is_made_again(
    georgia_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new version may read, repair or join the units differently: its steps must not read an
    old version's snapshot (they rerun because the library changed, and would read stale data)."""
    snapshot.build_snapshot(georgia_config, tmp_path, RUN_DATE, "run")
    assert snapshot.is_current(tmp_path, georgia_config, RUN_DATE)
    monkeypatch.setattr(snapshot, "library_digest", lambda: "another version")
    assert not snapshot.is_current(tmp_path, georgia_config, RUN_DATE)


def test_a_notebook_step_reads_the_snapshot_until_a_file_changes(make_market, tmp_path: Path) -> None:
    path = make_market()
    config = load_config(path)
    folder = tmp_path / "scratch"
    first, _ = step_inputs(config, folder, RUN_DATE, 1, None)
    reps = Path(config.data.reps)
    table = pd.read_csv(reps, dtype=str)
    unchanged, _ = step_inputs(config, folder, RUN_DATE, 2, None)
    pd.testing.assert_frame_equal(unchanged.reps, first.reps, check_dtype=False)
    table.assign(name="Changed").to_csv(reps, index=False)
    # Run by hand, a later step reads the snapshot of step 1 only while the files are unchanged.
    later, _ = step_inputs(config, folder, RUN_DATE, 2, None)
    assert set(later.reps["name"]) == {"Changed"}
    assert "Changed" not in set(first.reps["name"])


@pytest.mark.slow
def test_steps_1_2_and_5_reuse_the_runs_adjacency(georgia, monkeypatch: pytest.MonkeyPatch) -> None:
    from territory_lib.design import engine
    from territory_lib.design import graph as graph_module

    graph = snapshot.unit_graph(georgia)
    metrics = unit_metrics(georgia)

    def refuse(*args, **kwargs):
        raise AssertionError("the adjacency was built again")

    monkeypatch.setattr(graph_module, "build_unit_graph", refuse)
    monkeypatch.setattr(engine, "build_unit_graph", refuse)
    spots = hot_spots(metrics, graph=graph, permutations=99)
    assert len(spots) == len(metrics)
    result = design_territories(metrics, 8, {"potential": 0.1}, graph=graph, seed=1)
    assert result.summary["all_contiguous"]


def test_a_run_checks_its_inputs_once(nc_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = load_market

    def counting(config, *args, **kwargs):
        calls.append(config.market)
        return real(config, *args, **kwargs)

    monkeypatch.setattr("territory_lib.io.load_market", counting)
    config = load_config(nc_copy)
    folder = nc_copy.parent / "once"
    snapshot.build_snapshot(config, folder, RUN_DATE, "run")
    for number in range(1, 6):
        step_inputs(config, folder, RUN_DATE, number, None)
    assert calls == ["nc"]
