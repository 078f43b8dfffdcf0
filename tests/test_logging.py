"""Progress through logging: the usual lines by default, details with -v, none with -q."""

from __future__ import annotations

from pathlib import Path

import pytest

from territory_lib import runner
from territory_lib.cli import main
from territory_lib.paths import REPORTS_ENV_VAR


@pytest.fixture
def quick_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`territory run` without notebooks: steps succeed at once, into a temporary reports folder."""
    monkeypatch.setenv(REPORTS_ENV_VAR, str(tmp_path / "reports"))
    monkeypatch.setattr(runner, "_execute", lambda step, params, folder, run_date, kernel, **kwargs: None)
    monkeypatch.setattr(runner, "_export", lambda step, title, folder: None)


def run(capsys: pytest.CaptureFixture[str], *options: str) -> list[str]:
    assert main([*options, "run", "georgia", "--steps", "1", "--run-date", "2026-11-27"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out.splitlines()


def test_progress_lines_by_default_more_with_v_none_with_q(
    quick_run: None, capsys: pytest.CaptureFixture[str]
) -> None:
    default = run(capsys)
    assert "[georgia] step 1/5 Analyze the market ..." in default
    assert any(line.startswith("[georgia] reports written to ") for line in default)
    assert not any("staging folder" in line for line in default)
    assert any(line.startswith("georgia ") and " ok " in line for line in default)  # the result

    verbose = run(capsys, "-v")
    assert any(line.startswith("[georgia] steps to run: [1]; staging folder ") for line in verbose)
    assert "[georgia] step 1/5 Analyze the market ..." in verbose  # the usual lines too

    quiet = run(capsys, "-q")
    assert not any(line.startswith("[georgia]") for line in quiet)
    assert any(line.startswith("georgia ") and " ok " in line for line in quiet)
    assert (
        main(["run", "-q", "georgia", "--steps", "1", "--run-date", "2026-11-27"]) == 0
    )  # after the command
    assert not any(line.startswith("[georgia]") for line in capsys.readouterr().out.splitlines())
