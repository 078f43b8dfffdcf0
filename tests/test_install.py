"""The wheel, installed (not editable) into a fresh venv, runs a market from any folder.

The fresh venv gets only the wheel; its dependencies come from this test's own environment
through a ``.pth`` line (installing them all again would take minutes), together with their
Jupyter data files (``JUPYTER_PATH``: nbconvert's templates). The package under test is the
wheel's copy in the fresh venv, never the source tree: the commands run from temporary folders
with no ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from territory_lib.paths import SOURCE_ROOT

pytestmark = pytest.mark.slow


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh venv with the wheel built from this checkout; returns its bin folder and a clean env."""
    root = tmp_path_factory.mktemp("install")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "TERRITORY_PROJECT", "TERRITORY_REPORTS_DIR", "VIRTUAL_ENV"}
    }
    wheels = root / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(SOURCE_ROOT)],
        root,
        env,
    )
    (wheel,) = wheels.glob("territory_planner-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root, env)
    python = venv / "bin" / "python"
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], root, env
    ).stdout.strip()
    Path(purelib, "dependencies-from-test-env.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        root,
        env,
    )
    env["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return venv / "bin", env


def test_the_installed_wheel_scaffolds_a_project_and_runs_a_market_in_it(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    bin_dir, env = installed
    where = _run(
        [str(bin_dir / "python"), "-c", "import territory_lib; print(territory_lib.__file__)"], tmp_path, env
    )
    package = Path(where.stdout.strip()).parent
    assert bin_dir.parent in package.parents, f"imported {package}, not the wheel's copy"
    site_packages = package.parent
    before = _snapshot(site_packages)

    init = _run([str(bin_dir / "territory"), "init", "acme"], tmp_path, env)
    project = tmp_path / "acme"
    assert "params/north_carolina.yaml" in init.stdout
    assert sorted(p.name for p in (project / "params").iterdir()) == [
        "georgia.yaml",
        "north_carolina.yaml",
        "us_states.yaml",
    ]
    again = subprocess.run(
        [str(bin_dir / "territory"), "init", "acme"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert again.returncode == 2 and "never overwrites" in again.stderr

    listed = _run([str(bin_dir / "territory"), "--project", str(project), "markets"], tmp_path, env)
    assert "north_carolina" in listed.stdout

    run = _run(
        [str(bin_dir / "territory"), "run", "north_carolina", "--run-date", "2026-11-27", "--jobs", "1"],
        project,
        env,
    )
    assert "north_carolina       ok" in run.stdout
    published = project / "reports" / "north_carolina"
    for number, name in enumerate(
        (
            "analyze_market",
            "define_territories",
            "align_resources",
            "monitor_performance",
            "feedback_optimize",
        ),
        start=1,
    ):
        assert (published / f"0{number}_{name}.html").is_file()
    assert (published / "alignment.csv").is_file()
    assert (project / "reports" / "index.html").is_file()
    assert (project / "data" / "north_carolina" / "units.gpkg").is_file()
    assert _snapshot(site_packages) == before, "the run wrote under site-packages"
