"""Never lose or overwrite data: built-in generation, one run per market, duplicate markets, an
unwritable reports folder, leftovers of killed runs, atomic publishing, CSV injection."""

from __future__ import annotations

import csv
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from territory_lib import paths, runner
from territory_lib.cli import main
from territory_lib.config import load_config
from territory_lib.datasets import GENERATED_FILE, TABLE_FILES
from territory_lib.errors import ConfigError, DataError, MarketBusyError
from territory_lib.io import prepare_builtin_data
from territory_lib.paths import REPORTS_ENV_VAR
from territory_lib.runner import MarketRun, run_market, run_markets
from territory_lib.safety import ensure_not_running, market_lock, publish_folder
from territory_lib.steps import Workspace


@pytest.fixture
def reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary reports folder; any attempt to execute a notebook fails the test."""
    folder = tmp_path / "reports"
    monkeypatch.setenv(REPORTS_ENV_VAR, str(folder))

    def no_notebooks(*args: object) -> str:
        raise AssertionError("a step notebook was executed")

    monkeypatch.setattr(runner, "_execute", no_notebooks)
    return folder


def write_params(path: Path, **params: object) -> Path:
    document = {"market": "mine", "title": "Mine", "territories": 8, **params}
    document.setdefault("data", {table: f"data/{name}" for table, name in TABLE_FILES.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from territory_lib.safety import market_lock
with market_lock(Path(sys.argv[1]), "georgia"):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_second_run_of_a_market_fails_at_once_naming_the_first(
    reports: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(reports)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout is not None and first.stdout.readline() == "locked\n"
        started = time.perf_counter()
        with pytest.raises(MarketBusyError, match=rf"'georgia' is already being run by process {first.pid} "):
            run_markets(["georgia"], run_date="2026-01-05")
        with pytest.raises(MarketBusyError, match=rf"process {first.pid} .* running since 20\d\d-"):
            run_market("georgia", run_date="2026-01-05")
        assert main(["run", "georgia"]) == 2
        assert f"process {first.pid}" in capsys.readouterr().err
        assert time.perf_counter() - started < 5
        ensure_not_running(reports, "north_carolina")  # other markets still run meanwhile
    finally:
        first.kill()
        first.wait()
    ensure_not_running(reports, "georgia")  # the killed holder's lock went with it
    assert not (reports / "georgia").exists()


def test_the_lock_is_held_for_the_whole_run(reports: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def body(config, steps, run_date, progress, root, force=False) -> MarketRun:
        with pytest.raises(MarketBusyError, match=f"process {os.getpid()}"):
            ensure_not_running(root, config.market)
        seen.append(config.market)
        return MarketRun(config.market, config.title, True, 0.0, root / config.market)

    monkeypatch.setattr(runner, "_run_locked", body)
    run_market("georgia")
    assert seen == ["georgia"]
    ensure_not_running(reports, "georgia")  # released afterwards


def test_built_in_generation_refuses_a_folder_of_the_users(
    tmp_path: Path, reports: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "data"
    mine.mkdir()
    for name in ("units.gpkg", "accounts.csv", "reps.csv"):  # sales and feedback missing
        (mine / name).write_text(f"my own {name}")
    params = write_params(tmp_path / "mine.yaml", builtin="georgia")
    config = load_config(params)
    with pytest.raises(
        ConfigError, match=r"'data: units:' is .*data/units\.gpkg.*only in .*data/mine"
    ) as error:
        prepare_builtin_data(config)
    assert "data: units: ../" in str(error.value) and "remove 'builtin:'" in str(error.value)
    with pytest.raises(ConfigError, match="'data: units:'"):
        run_market(str(params))
    assert main(["prepare", "--force", str(params)]) == 2
    assert "'data: units:'" in capsys.readouterr().err
    assert sorted(path.name for path in mine.iterdir()) == ["accounts.csv", "reps.csv", "units.gpkg"]
    for path in mine.iterdir():
        assert path.read_text() == f"my own {path.name}"


@pytest.mark.slow
def test_built_in_generation_never_replaces_a_file_it_did_not_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paths, "data_dir", lambda: tmp_path / "data")
    data = {table: f"../data/states/{name}" for table, name in TABLE_FILES.items()}
    config = load_config(
        write_params(tmp_path / "params" / "states.yaml", market="states", builtin="us_states", data=data)
    )
    folder = tmp_path / "data" / "states"
    assert prepare_builtin_data(config)
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        [*TABLE_FILES.values(), "provenance.md", GENERATED_FILE]
    )
    original = (folder / "accounts.csv").read_bytes()
    edited = original + b"A-9999,My own account,33.0,-84.0,SMB,customer,1000,,\n"
    (folder / "accounts.csv").write_bytes(edited)
    with pytest.raises(DataError, match=r"accounts\.csv was not written by the built-in data generator"):
        prepare_builtin_data(config, force=True)
    (folder / "sales.csv").unlink()
    with pytest.raises(DataError, match=r"accounts\.csv"):
        prepare_builtin_data(config)  # a missing file is regenerated, but not over the edited one
    assert (folder / "accounts.csv").read_bytes() == edited
    # A dataset written before generated.json existed may be replaced only where it is identical.
    (folder / GENERATED_FILE).unlink()
    with pytest.raises(DataError, match=r"accounts\.csv"):
        prepare_builtin_data(config)
    assert (folder / "accounts.csv").read_bytes() == edited
    (folder / "accounts.csv").write_bytes(original)
    assert prepare_builtin_data(config)
    assert (folder / "sales.csv").is_file() and (folder / GENERATED_FILE).is_file()


def test_two_params_files_of_one_market_are_an_error_naming_both(
    tmp_path: Path, reports: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first = write_params(tmp_path / "params" / "acme.yaml", market="acme")
    second = write_params(tmp_path / "params" / "acme_copy.yaml", market="acme")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(first))} and {re.escape(str(second))} both"):
        run_markets([str(first), str(second)])
    monkeypatch.setenv("TERRITORY_PROJECT", str(tmp_path))
    for command in (["run"], ["prepare"], ["check"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert str(first) in err and str(second) in err, command


def test_an_unwritable_reports_folder_fails_before_step_one(
    tmp_path: Path, reports: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # chmod does not stop root, so the folder sits under a regular file: no one can create it.
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    unwritable = blocker / "reports"
    monkeypatch.setenv(REPORTS_ENV_VAR, str(unwritable))
    with pytest.raises(ConfigError, match=rf"reports folder {re.escape(str(unwritable))} is not writable"):
        run_markets(["georgia"])
    with pytest.raises(ConfigError, match="not writable"):
        run_market("georgia")
    assert main(["run", "georgia"]) == 2
    assert "not writable" in capsys.readouterr().err


def test_a_run_removes_leftovers_of_killed_runs_but_not_of_live_ones(
    tmp_path: Path, reports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging = reports / "_staging"
    stale = [staging / "georgia-0badc0de", staging / "georgia-0badc0de-previous"]
    kept = [staging / "north_carolina-12345678", staging / "georgia-x-12345678"]
    for folder in stale + kept:
        (folder / "artifacts").mkdir(parents=True)
        (folder / "manifest.json").write_text("{}")
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead, live = int(ended.stdout), os.getpid()
    old_unnamed, new_unnamed = temp / "territory-kernel-abc123", temp / "territory-kernel-def456"
    sockets = {
        temp / f"territory-kernel-{dead}-k1": False,
        temp / f"territory-kernel-{live}-k2": True,
        old_unnamed: False,
        new_unnamed: True,
    }
    for folder in sockets:
        folder.mkdir()
        (folder / "ipc-1").write_text("")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old_unnamed, (two_days_ago, two_days_ago))
    found: list[set[str]] = []

    def body(config, steps, run_date, progress, root, force=False) -> MarketRun:
        found.append({path.name for path in staging.iterdir()})
        return MarketRun(config.market, config.title, True, 0.0, root / config.market)

    monkeypatch.setattr(runner, "_run_locked", body)
    with market_lock(reports, "north_carolina"):  # a live run of another market
        run_market("georgia")
    assert found == [{path.name for path in kept}]
    assert {folder: folder.exists() for folder in sockets} == sockets


def _publish_repeatedly(final: str, worker: str, times: int) -> None:
    """Publish ``times`` versions of ``final``, each staged whole beside it first."""
    final_path = Path(final)
    for number in range(times):
        staging = final_path.parent / "_staging" / f"{worker}-{number}"
        staging.mkdir(parents=True)
        token = f"{worker}-{number};"
        for name in HAMMER_FILES:
            (staging / name).write_text(token * 200)
        publish_folder(staging, final_path)


HAMMER_FILES = ("manifest.json", "01_analyze_market.html", "alignment.csv")


def _check_whole(final: Path) -> None:
    assert final.is_dir(), "reports/<market>/ is missing"
    for name in HAMMER_FILES:
        text = (final / name).read_text()
        token = text[: text.index(";") + 1]
        assert text == token * 200, f"{name} is half written"


def _read_repeatedly(final: str, stop: Any, count: Any) -> None:
    while not stop.is_set():
        _check_whole(Path(final))
        with count.get_lock():
            count.value += 1


def test_publishing_is_atomic_under_concurrent_publishers_and_readers(tmp_path: Path) -> None:
    final = tmp_path / "reports" / "market"
    _publish_repeatedly(str(final), "first", 1)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    stop, reads = context.Event(), context.Value("i", 0)
    readers = [context.Process(target=_read_repeatedly, args=(str(final), stop, reads)) for _ in range(2)]
    publishers = [
        context.Process(target=_publish_repeatedly, args=(str(final), f"process{i}", 100)) for i in range(3)
    ]
    for process in readers + publishers:
        process.start()  # every fork before this process starts a thread
    errors: list[BaseException] = []

    def in_threads(target: Callable[..., None], *args: object) -> threading.Thread:
        def work() -> None:
            try:
                target(*args)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=work)
        thread.start()
        return thread

    threads = [in_threads(_publish_repeatedly, str(final), "thread", 100)]
    threads.append(in_threads(lambda: [_check_whole(final) for _ in range(300)]))
    for worker in [*threads, *publishers]:
        worker.join()
    stop.set()
    for reader in readers:
        reader.join()
    assert not errors, errors[0]
    assert [process.exitcode for process in readers + publishers] == [0] * 5
    assert reads.value > 10
    _check_whole(final)
    assert not list((tmp_path / "reports" / "_staging").iterdir()), "swapped-out versions are removed"


def test_csv_downloads_neutralise_formulas_and_keep_numbers(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "unit_id": ["-12", "13", "@14"],
            "name": ['=HYPERLINK("http://evil.example","x")', "+1 555", "\tcmd|' /C calc'!A0"],
            "note": ["a = b", "-", "fine"],
            "change": [-1.5, 2.0, -0.25],
            "accounts": [-3, 4, 5],
            "ok": [True, False, True],
        }
    )
    path = Workspace(tmp_path).write_csv("proposed_moves.csv", frame)
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["unit_id", "name", "note", "change", "accounts", "ok"]
    assert [row[0] for row in rows[1:]] == ["'-12", "13", "'@14"]
    assert [row[1] for row in rows[1:]] == [
        '\'=HYPERLINK("http://evil.example","x")',
        "'+1 555",
        "'\tcmd|' /C calc'!A0",
    ]
    assert [row[2] for row in rows[1:]] == ["a = b", "'-", "fine"]
    assert [row[3:] for row in rows[1:]] == [
        ["-1.5", "-3", "True"],
        ["2.0", "4", "False"],
        ["-0.25", "5", "True"],
    ]
    back = pd.read_csv(path)
    assert back["change"].tolist() == [-1.5, 2.0, -0.25] and back["accounts"].tolist() == [-3, 4, 5]
    assert frame["unit_id"].tolist() == ["-12", "13", "@14"], "the caller's frame is left as it was"
    carriage_return = Workspace(tmp_path).write_csv("cr.csv", pd.DataFrame({"name": ["\r=1+1"]}))
    assert carriage_return.read_bytes() == b"name\n'\r=1+1\n"
