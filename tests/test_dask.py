"""Markets run on a dask.distributed cluster publish the same reports as local runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from distributed import LocalCluster

from territory_lib.errors import ConfigError
from territory_lib.paths import REPORTS_ENV_VAR
from territory_lib.runner import run_markets

pytestmark = pytest.mark.slow


def test_a_market_runs_on_cluster_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REPORTS_ENV_VAR, str(tmp_path))
    lines: list[str] = []
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        runs = run_markets(
            ["georgia"],
            steps=[1],
            run_date="2026-11-27",
            scheduler=cluster.scheduler_address,
            progress=lines.append,
        )
    assert [run.ok for run in runs] == [True]
    assert (tmp_path / "georgia" / "01_analyze_market.html").is_file()
    assert (tmp_path / "index.html").is_file()
    assert any("on the dask cluster" in line for line in lines)
    assert any(line.startswith("[georgia] done on the cluster") for line in lines)


def test_params_are_checked_before_the_cluster_is_contacted() -> None:
    with pytest.raises(ConfigError, match="no market 'atlantis'"):
        run_markets(["atlantis"], scheduler="tcp://127.0.0.1:1")
