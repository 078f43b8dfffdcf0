"""Interactive and papermill runs never write into a market folder that `territory run` published."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from territory_lib import runner
from territory_lib.errors import ConfigError
from territory_lib.paths import REPORTS_ENV_VAR
from territory_lib.steps import resolve_output_dir


@pytest.fixture
def reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A reports folder with Georgia published (a manifest) and a scratch folder."""
    folder = tmp_path / "reports"
    monkeypatch.setenv(REPORTS_ENV_VAR, str(folder))
    (folder / "georgia" / "artifacts").mkdir(parents=True)
    (folder / "georgia" / "manifest.json").write_text(json.dumps({"market": "georgia", "steps": []}))
    return folder


def test_output_dir_in_a_published_market_folder_is_refused(reports: Path) -> None:
    for target in (reports / "georgia", reports / "georgia" / "artifacts", reports / "georgia" / "new"):
        with pytest.raises(ConfigError) as error:
            resolve_output_dir(str(target), "georgia")
        message = str(error.value)
        assert f"output_dir parameter '{target}' is inside {reports / 'georgia'}" in message
        assert "published reports of market 'georgia' (it has manifest.json)" in message
        assert "Leave output_dir empty (results go to reports/_scratch/georgia)" in message
        assert "`territory run georgia`" in message
    assert not (reports / "georgia" / "new").exists()


def test_other_folders_inside_reports_are_fine(reports: Path) -> None:
    assert resolve_output_dir("", "georgia") == reports / "_scratch" / "georgia"
    assert resolve_output_dir(str(reports / "mine"), "georgia") == (reports / "mine").resolve()
    (reports / "georgia" / "manifest.json").unlink()  # not published (yet)
    assert resolve_output_dir(str(reports / "georgia"), "georgia") == (reports / "georgia").resolve()


def test_territory_run_still_republishes_a_published_market(
    reports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner's notebooks write into its staging copy, which is not a published folder."""
    folders: list[Path] = []

    def execute(
        step: object, params: Path, folder: Path, run_date: str, kernel: object, **kwargs: object
    ) -> None:
        folders.append(resolve_output_dir(str(folder), "georgia"))  # what start_step does

    monkeypatch.setattr(runner, "_execute", execute)
    monkeypatch.setattr(runner, "_export", lambda step, title, folder: None)
    run = runner.run_market("georgia", steps=[1, 2], run_date="2026-11-27")
    assert run.ok, run.failure
    assert len(folders) == 2 and all(folder.parent == reports / "_staging" for folder in folders)
    manifest = json.loads((reports / "georgia" / "manifest.json").read_text())
    assert manifest["status"] == "ok" and [entry["step"] for entry in manifest["steps"]] == [1, 2]
