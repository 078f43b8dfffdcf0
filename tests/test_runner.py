"""Markets run side by side in separate processes, each kernel on its own private sockets."""

from __future__ import annotations

import glob
import tempfile
from pathlib import Path

import pytest

from territory_lib.kernels import LocalKernelManager
from territory_lib.paths import REPORTS_ENV_VAR
from territory_lib.runner import run_markets

pytestmark = pytest.mark.slow


def test_markets_run_in_parallel_without_sharing_kernel_sockets(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(REPORTS_ENV_VAR, str(tmp_path / "reports"))
    # A temporary folder of this test's own (the worker processes read TMPDIR), so kernels of
    # other programs running on the machine cannot come or go in it.
    sockets = tmp_path / "tmp"
    sockets.mkdir()
    monkeypatch.setenv("TMPDIR", str(sockets))
    monkeypatch.setattr(tempfile, "tempdir", str(sockets))
    tmp_path = tmp_path / "reports"
    before = set(glob.glob(str(sockets / "territory-kernel-*")))
    runs = run_markets(["georgia", "north_carolina", "us_states"], steps=[1], jobs=3, run_date="2026-11-27")
    assert [run.ok for run in runs] == [True, True, True], [run.failure for run in runs]
    for market in ("georgia", "north_carolina", "us_states"):
        assert (tmp_path / market / "01_analyze_market.html").is_file()
    assert not list((tmp_path / "_staging").iterdir())
    # None left behind (a run may remove stale ones of killed runs, so fewer is fine).
    assert not set(glob.glob(str(sockets / "territory-kernel-*"))) - before


def test_each_kernel_manager_has_its_own_private_socket_folder() -> None:
    first, second = LocalKernelManager(), LocalKernelManager()
    assert first.transport == "ipc"
    assert Path(first.ip).parent != Path(second.ip).parent
    assert Path(first.ip).parent.stat().st_mode & 0o777 == 0o700
    for manager in (first, second):
        manager.cleanup_ipc_files()
        assert not Path(manager.ip).parent.exists()


def test_kernel_sockets_fit_a_unix_socket_path_under_a_long_temp_folder(tmp_path: Path, monkeypatch) -> None:
    long_temp = tmp_path / ("deep-ci-workspace-folder-" * 4)
    long_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long_temp))
    manager = LocalKernelManager()
    socket = f"{manager.ip}-{65535}"
    try:
        assert len(socket) <= 100, socket  # Linux allows 107 bytes, macOS 103
        assert not Path(manager.ip).parent.is_relative_to(long_temp)
    finally:
        manager.cleanup_ipc_files()
    assert not Path(manager.ip).parent.exists()


def test_the_territory_command_runs_without_compiling_the_iri_grammar_and_still_validates_notebooks(
    tmp_path: Path,
) -> None:
    """``territory run`` (and its market workers) let jsonschema skip its IRI format checks: the
    grammar they compile on import cost 1.2 s at the start of every run. Notebooks still validate,
    and an invalid one is still refused."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "import territory_lib.cli as cli\n"
        "calls = []\n"
        "cli.run_markets = lambda *a, **k: calls.append(1) or []\n"
        "import territory_lib.runner as runner\n"
        "runner.run_markets = cli.run_markets\n"
        "cli.main(['run', 'georgia', '--jobs', '1'])\n"
        "import nbformat, papermill, territory_lib.report\n"
        "print(calls, 'rfc3987_syntax' in sys.modules and sys.modules['rfc3987_syntax'] is not None)\n"
        "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('x = 1')])\n"
        "nbformat.validate(nb)\n"
        "nb.cells[0]['cell_type'] = 'no such type'\n"
        "try:\n"
        "    nbformat.validate(nb)\n"
        "except nbformat.ValidationError:\n"
        "    print('refused')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout.split()[-3:] == ["[1]", "False", "refused"], done.stderr[-2000:]
