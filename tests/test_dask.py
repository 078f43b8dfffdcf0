"""Markets run on a dask.distributed cluster publish the same reports as local runs; the client
shows the workers' progress, says when a market had to run again, and when the scheduler is away."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from territory_lib import runner
from territory_lib.cli import main
from territory_lib.errors import ConfigError
from territory_lib.paths import REPORTS_ENV_VAR
from territory_lib.runner import PROGRESS_TOPIC, run_markets


@pytest.mark.slow
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
    assert [(run.ok, run.attempts) for run in runs] == [(True, 1)]
    assert (tmp_path / "georgia" / "01_analyze_market.html").is_file()
    assert (tmp_path / "index.html").is_file()
    assert any("on the dask cluster" in line for line in lines)
    # the worker's step lines reach the client, before the market's result
    step_done = next(
        i for i, line in enumerate(lines) if line.startswith("[georgia] step 1/5 Analyze the market done")
    )
    assert step_done < next(
        i for i, line in enumerate(lines) if line.startswith("[georgia] done on the cluster")
    )
    assert not any("retried" in line for line in lines)


@pytest.mark.slow
def test_a_market_whose_worker_died_runs_again_and_is_reported_as_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(REPORTS_ENV_VAR, str(tmp_path))
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        command = ["run", "north_carolina", "--steps", "1", "--run-date", "2026-11-27"]
        command += ["--scheduler", cluster.scheduler_address]
        outcome: dict[str, int] = {}
        thread = threading.Thread(target=lambda: outcome.update(code=main(command)))
        thread.start()
        deadline = time.monotonic() + 300
        busy: list[str] = []
        while time.monotonic() < deadline and not busy:
            started = any("start" in message for _, message in client.get_events(PROGRESS_TOPIC))
            busy = [worker for worker, keys in client.processing().items() if keys] if started else []
            time.sleep(0.2)
        assert busy, "the market never started on a worker"
        time.sleep(2)  # well into the step's notebook
        client.restart_workers(busy)  # the worker dies mid-run; the scheduler runs the market again
        thread.join(600)
    out = capsys.readouterr().out
    assert outcome == {"code": 0}, out
    assert "[north_carolina] retried: the cluster started it 2 times" in out
    summary = next(line for line in out.splitlines() if line.startswith("north_carolina "))
    assert "ok (retried: ran 2 times)" in summary
    assert (tmp_path / "north_carolina" / "01_analyze_market.html").is_file()


def test_an_unreachable_scheduler_is_one_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runner, "SCHEDULER_TIMEOUT", "1s")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    for scheduler in (address, "not-an-address"):
        assert main(["run", "north_carolina", "--scheduler", scheduler]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"error: cannot reach the dask scheduler at {scheduler} (")
        assert "`dask scheduler`" in err


def test_params_are_checked_before_the_cluster_is_contacted() -> None:
    with pytest.raises(ConfigError, match="no market 'atlantis'"):
        run_markets(["atlantis"], scheduler="tcp://127.0.0.1:1")
