"""Pipeline benchmark (issue 10): whole ``territory run`` of Georgia, US counties and US ZIP areas.

Builds the markets once (cached under ``benchmarks/.cache/pipeline/``, a Territory project folder
with ``params/``, ``data/`` and ``reports/``), runs all five steps from scratch (its published
reports removed first) in a child process, and prints per market: each step's seconds (the
runner's manifest), the whole run's wall time, the peak resident memory of the notebook kernels
and of the runner, each HTML report's size, the time of a second run with nothing changed, and
whether step 2's plan is the same when step 2 runs again while other processes load both cores.
For Georgia it also times the "imports-only floor" (a papermill run of a one-cell notebook
importing pandas, geopandas, folium and statsmodels, on the runner's kernel manager) and divides
each step by it. The issue's baseline figures (before its work) are printed beside the new ones.

- ``georgia``: the built-in market (159 counties, 2,400 accounts, 8 territories).
- ``counties``: the 3,108 counties of the contiguous US (Census cartographic file
  ``cb_2016_us_county_500k`` shipped in the PyPI package ``plotly-geo``), 50,000 accounts, k = 60;
  account density follows the number of real standard ZIP codes per county, potential the
  county's ZIP density (per km² of land) to the power 0.15.
- ``zips``: the ~29,300 ZIP Voronoi areas of ``instances.zips()``, 300,000 accounts, k = 200;
  account density follows the instance's seeded lognormal potential.

Business data of ``counties`` and ``zips`` come from ``territory_lib.datasets.prepare_market``.

```
.venv/bin/python benchmarks/pipeline_benchmark.py                       # georgia counties zips
.venv/bin/python benchmarks/pipeline_benchmark.py --markets georgia counties --accounts counties=20000
```
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import instances  # noqa: E402
from territory_lib.datasets import prepare_builtin, prepare_market, zip_code_counts  # noqa: E402
from territory_lib.forkserver import is_kernel_command  # noqa: E402

PROJECT = instances.CACHE / "pipeline"
RUN_DATE = "2026-01-15"
STEPS = 5
LOWER48_EXCLUDED_FIPS = {"02", "15", "60", "66", "69", "72", "78"}  # AK, HI and the territories

#: The issue's figures before its work: step seconds, whole run, peak kernel GB, rows.
BASELINE: dict[str, dict] = {
    "georgia": {"steps": [6.3, 15.1, 5.3, 5.9, 6.2], "total": 39, "peak_gb": 0.45, "floor_ratio": 3.1},
    "counties": {"steps": [17.4, 46.4, 10.7, 17.7, 30.1], "total": 121, "peak_gb": 1.25},
    "zips": {"steps": [56.7, 155.7, 36.5, 86.6, 65.7], "total": 400, "peak_gb": 2.37},
}
BASELINE_RERUN = "89-114"
#: The issue's goals: whole run seconds, peak kernel GB, no-change rerun seconds, floor ratio.
GOALS = {"counties": {"total": 60}, "zips": {"total": 150, "peak_gb": 1.5}}
RERUN_GOAL = 5.0
FLOOR_RATIO_GOAL = 1.5


@dataclass(frozen=True)
class MarketSpec:
    """How to build one benchmark market."""

    name: str
    accounts: int
    territories: int
    build: Callable[[Path, int], None] | None  # writes the data folder; None: a built-in market


def county_units() -> gpd.GeoDataFrame:
    """The 3,108 counties of the contiguous US, from the cartographic file inside ``plotly-geo``."""
    try:
        import _plotly_geo
    except ImportError:
        sys.exit("plotly-geo is not installed: pip install -c requirements.lock -e '.[bench]'")
    path = Path(_plotly_geo.__file__).parent / "package_data" / "cb_2016_us_county_500k.shp"
    # The file ships without a .prj; Census cartographic boundary files are NAD83 lon/lat.
    raw = gpd.read_file(path).set_crs(4269)
    raw = raw[~raw["STATEFP"].isin(LOWER48_EXCLUDED_FIPS)]
    return gpd.GeoDataFrame(
        {
            "unit_id": raw["GEOID"].to_numpy(),
            "name": raw["NAME"].to_numpy(),
            "state_fips": raw["STATEFP"].to_numpy(),
            "land_km2": (raw["ALAND"] / 1e6).round(1).to_numpy(),
        },
        geometry=raw.geometry.to_numpy(),
        crs=raw.crs,
    )


def _build_counties(out_dir: Path, accounts: int) -> None:
    units = county_units()
    zips = zip_code_counts(units)  # the zip_codes column prepare_market adds and sizes by
    density = (zips + 1) / np.maximum(units["land_km2"].to_numpy(), 1.0)
    prepare_market(
        units,
        out_dir,
        name="counties",
        title="Contiguous US counties",
        territories=MARKETS["counties"].territories,
        accounts=accounts,
        size="zip_codes",
        affluence=(density / np.median(density)) ** 0.15,
        unit_label="county",
        real_sources=(
            "Real: the 3,108 county polygons of the contiguous US with their names, FIPS codes and "
            "land areas (US Census Bureau cartographic boundary file cb_2016_us_county_500k, shipped "
            "inside the plotly-geo package), read as NAD83 longitude/latitude (EPSG:4269)."
        ),
        size_note="the number of ZIP codes",
        affluence_note="the county's ZIP codes per km² of land (plus one) to the power 0.15",
        progress=_say,
    )


def _build_zips(out_dir: Path, accounts: int) -> None:
    instance = instances.zips()
    units = gpd.GeoDataFrame(
        {
            "unit_id": instance.units["zip"].to_numpy(),
            "name": ("ZIP " + instance.units["zip"]).to_numpy(),
            "potential_index": instance.units["potential"].to_numpy(),
        },
        geometry=instance.units.geometry.to_numpy(),
        crs=instance.units.crs,
    )
    prepare_market(
        units,
        out_dir,
        name="zips",
        title="Contiguous US ZIP areas",
        territories=MARKETS["zips"].territories,
        accounts=accounts,
        size="potential_index",
        unit_label="ZIP area",
        real_sources=(
            f"Real: the {len(units):,} standard ZIP centroids of the contiguous US (zipcodes package); the "
            "areas are their Voronoi cells clipped to libpysal's us48 states, and potential_index is a "
            "seeded lognormal (benchmarks/instances.py zips())."
        ),
        size_note="a seeded lognormal index",
        affluence_note="1 (no affluence signal)",
        progress=_say,
    )


MARKETS: dict[str, MarketSpec] = {
    "georgia": MarketSpec("georgia", 2400, 8, None),
    "counties": MarketSpec("counties", 50_000, 60, _build_counties),
    "zips": MarketSpec("zips", 300_000, 200, _build_zips),
}


def _say(message: str) -> None:
    print(f"  {message}", flush=True)


# --- building the markets -----------------------------------------------------------------------


def prepare(spec: MarketSpec, accounts: int) -> tuple[Path, float | None]:
    """Write the market's params (and data, unless cached); return the params path and build seconds."""
    (PROJECT / "params").mkdir(parents=True, exist_ok=True)
    (PROJECT / "reports").mkdir(exist_ok=True)
    params = PROJECT / "params" / f"{spec.name}.yaml"
    if spec.build is None and accounts == spec.accounts:
        # The built-in market as shipped, its data generated here so the timed run does not.
        shutil.copy(ROOT / "params" / f"{spec.name}.yaml", params)
        seed = yaml.safe_load(params.read_text(encoding="utf-8"))["design"]["seed"]
        if not (PROJECT / "data" / spec.name / "generated.json").is_file():
            prepare_builtin(spec.name, PROJECT / "data" / spec.name, seed=seed, progress=_say)
        return params, None
    folder = PROJECT / "data" / f"{spec.name}_{accounts}"
    seconds = None
    if not (folder / "generated.json").is_file():
        print(f"{spec.name}: generating data for {accounts:,} accounts into {folder}", flush=True)
        tick = time.perf_counter()
        if spec.build is None:
            prepare_builtin(spec.name, folder, accounts=accounts, progress=_say)
        else:
            spec.build(folder, accounts)
        seconds = time.perf_counter() - tick
    if spec.build is None:
        settings = yaml.safe_load((ROOT / "params" / f"{spec.name}.yaml").read_text(encoding="utf-8"))
        settings.pop("builtin")
    else:
        settings = {
            "market": spec.name,
            "title": f"Benchmark: {spec.name}",
            "unit_label": "county" if spec.name == "counties" else "ZIP area",
            "territories": spec.territories,
            "design": {
                "balance": [
                    {"measure": "potential", "tolerance": 0.05},
                    {"measure": "accounts", "tolerance": 0.25},
                ],
                "effort_tolerance": 0.20,
                "seed": 7,
            },
        }
    settings["data"] = {
        table: f"../data/{folder.name}/{file}"
        for table, file in {
            "units": "units.gpkg",
            "accounts": "accounts.csv",
            "reps": "reps.csv",
            "sales": "sales.csv",
            "feedback": "feedback.csv",
        }.items()
    }
    params.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return params, seconds


# --- measuring a run ----------------------------------------------------------------------------


def _peak_kib(pid: int) -> int:
    """VmHWM, the peak resident set of a live process (KiB), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Sampler:
    """Polls a process tree's peak memory (VmHWM) every ``interval`` seconds while it runs."""

    root: int
    interval: float = 0.1
    kernels: dict[int, int] = field(default_factory=dict)
    others: dict[int, int] = field(default_factory=dict)

    def poll(self) -> None:
        try:
            parent = psutil.Process(self.root)
            processes = [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for process in processes:
            try:
                parent = process.parent()
                # A kernel forked by the run's fork server keeps the server's command line.
                is_kernel = is_kernel_command(process.cmdline(), parent.cmdline() if parent else [])
            except psutil.Error:
                continue
            book = self.kernels if is_kernel else self.others
            book[process.pid] = max(book.get(process.pid, 0), _peak_kib(process.pid))

    @contextlib.contextmanager
    def running(self) -> Iterator[Sampler]:
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                self.poll()
                stop.wait(self.interval)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()


@dataclass
class RunResult:
    seconds: float
    kernel_peak_gb: float
    runner_peak_gb: float
    kernels: int
    output: str


def territory(*args: str, label: str) -> RunResult:
    """Run the ``territory`` command in a child process, sampling its tree's memory."""
    env = dict(os.environ)
    # Kernels inherit PYTHONPATH: they import this checkout's territory_lib, as the runner does.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-c", "import sys; from territory_lib.cli import main; sys.exit(main())"]
    print(f"{label}: territory {' '.join(args)}", flush=True)
    tick = time.perf_counter()
    process = subprocess.Popen(
        [*command, *args, "--project", str(PROJECT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    with Sampler(process.pid).running() as sampler:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            print(f"  {line.rstrip()}", flush=True)
        process.wait()
    seconds = time.perf_counter() - tick
    if process.returncode:
        sys.exit(f"{label}: territory failed (exit {process.returncode})")
    return RunResult(
        seconds=seconds,
        kernel_peak_gb=max(sampler.kernels.values(), default=0) / 2**20,
        runner_peak_gb=max(sampler.others.values(), default=0) / 2**20,
        kernels=len(sampler.kernels),
        output="".join(lines),
    )


@contextlib.contextmanager
def cpu_load(processes: int) -> Iterator[None]:
    """Busy-loop ``processes`` other processes, so a run competes for the cores."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdout=subprocess.DEVNULL)
        for _ in range(processes)
    ]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def imports_only_floor(repeats: int = 3) -> list[float]:
    """Seconds of papermill runs of a notebook that only imports the steps' heavy libraries."""
    import nbformat
    import papermill as pm

    from territory_lib.kernels import LocalKernelManager
    from territory_lib.runner import KERNEL_NAME

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("import pandas, geopandas, folium, statsmodels.api")]
    notebook.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    times = []
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "floor.ipynb", Path(folder) / "floor_out.ipynb"
        nbformat.write(notebook, source)
        for _ in range(repeats):
            tick = time.perf_counter()
            pm.execute_notebook(
                str(source),
                str(target),
                kernel_name=KERNEL_NAME,
                kernel_manager_class=LocalKernelManager,
                progress_bar=False,
            )
            times.append(time.perf_counter() - tick)
    return times


@dataclass
class MarketResult:
    name: str
    units: int
    accounts: int
    sales_rows: int
    k: int
    build_seconds: float | None
    run: RunResult
    steps: list[float]
    reports_mb: list[float]
    rerun: RunResult
    same_plan_under_load: bool | None
    load: tuple[float, float]  # 1-minute load average of the machine before and after the run


def _count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b"")) - 1


def measure(spec: MarketSpec, accounts: int, load_check: bool) -> MarketResult:
    """Build, run with --force, rerun with nothing changed, and rerun step 2 under load."""
    params, build_seconds = prepare(spec, accounts)
    folder = PROJECT / "reports" / spec.name
    # A cold run: without published results the runner also reads and checks every input (a
    # --force run on top of them would reuse their snapshot).
    shutil.rmtree(folder, ignore_errors=True)
    load_before = os.getloadavg()[0]
    run = territory("run", str(params), "--run-date", RUN_DATE, label=spec.name)
    load_after = os.getloadavg()[0]
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    steps = [entry["seconds"] for entry in manifest["steps"]]
    reports = [(folder / entry["html"]).stat().st_size / 1e6 for entry in manifest["steps"]]
    rerun = territory("run", str(params), "--run-date", RUN_DATE, label=f"{spec.name} (no change)")
    same = None
    if load_check:
        plan = (folder / "alignment.csv").read_bytes()
        with cpu_load(2):
            territory("run", str(params), "--steps", "2", "--run-date", RUN_DATE, label=f"{spec.name} (load)")
        same = (folder / "alignment.csv").read_bytes() == plan
    config = yaml.safe_load(params.read_text(encoding="utf-8"))
    data = (params.parent / config["data"]["sales"]).resolve()
    accounts_file = (params.parent / config["data"]["accounts"]).resolve()
    units = len(gpd.read_file((params.parent / config["data"]["units"]).resolve(), columns=["unit_id"]))
    return MarketResult(
        name=spec.name,
        units=units,
        accounts=_count_lines(accounts_file),
        sales_rows=_count_lines(data),
        k=config["territories"],
        build_seconds=build_seconds,
        run=run,
        steps=steps,
        reports_mb=reports,
        rerun=rerun,
        same_plan_under_load=same,
        load=(load_before, load_after),
    )


# --- the table ----------------------------------------------------------------------------------


def _pair(now: float, before: float | None, digits: int = 1) -> str:
    return f"{now:.{digits}f}" + (f" ({before:g})" if before is not None else "")


def table(results: list[MarketResult], floor: list[float] | None) -> str:
    """The printed table: new figures with the issue's baseline in brackets, then the goals."""
    lines = [
        "figures now (issue baseline in brackets); step seconds from the manifest, step 1 includes "
        "reading and checking the inputs; peak GB = VmHWM of the notebook kernels (forked ones too); "
        "peak runner GB: the runner's or the kernels' fork server's, whichever is larger",
        "",
        "market   | units  | accounts | sales rows | k   | step 1      | step 2      | step 3      "
        "| step 4      | step 5      | whole run s | peak kernel GB | peak runner GB | rerun s        "
        "| same plan under load | load avg",
    ]
    lines.append("-" * len(lines[-1]))
    for result in results:
        base = BASELINE.get(result.name, {})
        before = base.get("steps", [None] * STEPS)
        steps = " | ".join(f"{_pair(s, b):<11}" for s, b in zip(result.steps, before, strict=False))
        same = {None: "not checked", True: "yes", False: "NO"}[result.same_plan_under_load]
        lines.append(
            f"{result.name:<8} | {result.units:<6} | {result.accounts:<8} | {result.sales_rows:<10} | "
            f"{result.k:<3} | {steps} | {_pair(result.run.seconds, base.get('total')):<11} | "
            f"{_pair(result.run.kernel_peak_gb, base.get('peak_gb'), 2):<14} | "
            f"{result.run.runner_peak_gb:<14.2f} | {f'{result.rerun.seconds:.1f} ({BASELINE_RERUN})':<14} | "
            f"{same:<20} | {result.load[0]:.1f}-{result.load[1]:.1f}"
        )
    lines += ["", "HTML report sizes (MB), steps 1-5:"]
    for result in results:
        sizes = " / ".join(f"{size:.1f}" for size in result.reports_mb)
        build = f"; data generated in {result.build_seconds:.1f} s" if result.build_seconds else ""
        lines.append(f"  {result.name}: {sizes}{build}")
    georgia = next((r for r in results if r.name == "georgia"), None)
    if floor and georgia:
        median = statistics.median(floor)
        ratios = [s / median for s in georgia.steps]
        lines += [
            "",
            f"imports-only floor: {' / '.join(f'{t:.2f}' for t in floor)} s (median {median:.2f} s)",
            "Georgia step / floor: "
            + " / ".join(f"{r:.2f}" for r in ratios)
            + f"; sum of the steps / (5 x floor): {sum(georgia.steps) / (STEPS * median):.2f} "
            f"(issue baseline: {BASELINE['georgia']['floor_ratio']}x the floor)",
        ]
    lines += ["", "goals:"]
    for result in results:
        goal = GOALS.get(result.name, {})
        if "total" in goal:
            ok = result.run.seconds <= goal["total"]
            lines.append(
                f"  {result.name} whole run <= {goal['total']} s: {result.run.seconds:.1f} s {_ok(ok)}"
            )
        if "peak_gb" in goal:
            ok = result.run.kernel_peak_gb <= goal["peak_gb"]
            lines.append(
                f"  {result.name} peak kernel RSS <= {goal['peak_gb']} GB: "
                f"{result.run.kernel_peak_gb:.2f} GB {_ok(ok)}"
            )
        lines.append(
            f"  {result.name} no-change rerun <= {RERUN_GOAL:g} s: {result.rerun.seconds:.1f} s "
            f"{_ok(result.rerun.seconds <= RERUN_GOAL)}"
        )
        if result.same_plan_under_load is not None:
            lines.append(
                f"  {result.name} step 2 plan identical under load: {_ok(result.same_plan_under_load)}"
            )
    if floor and georgia:
        worst = max(georgia.steps) / statistics.median(floor)
        lines.append(
            f"  georgia every step <= {FLOOR_RATIO_GOAL}x floor: worst {worst:.2f}x "
            f"{_ok(worst <= FLOOR_RATIO_GOAL)}"
        )
    return "\n".join(lines)


def _ok(holds: bool) -> str:
    return "holds" if holds else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", nargs="+", choices=list(MARKETS), default=list(MARKETS))
    parser.add_argument(
        "--accounts",
        nargs="+",
        default=[],
        metavar="MARKET=N",
        help="override a market's number of accounts, e.g. zips=100000",
    )
    parser.add_argument("--no-load-check", action="store_true", help="skip rerunning step 2 under load")
    parser.add_argument("--floor-repeats", type=int, default=3)
    args = parser.parse_args(argv)
    accounts = {spec.name: spec.accounts for spec in MARKETS.values()}
    for item in args.accounts:
        market, _, number = item.partition("=")
        if market not in MARKETS or not number.isdigit() or int(number) < 1:
            parser.error(f"--accounts {item!r}: write MARKET=N with MARKET in {', '.join(MARKETS)}")
        accounts[market] = int(number)

    print(
        f"machine: {multiprocessing.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"{platform.platform()}, Python {platform.python_version()}",
        flush=True,
    )
    floor = None
    if "georgia" in args.markets:
        floor = imports_only_floor(args.floor_repeats)
        print(f"imports-only floor: {', '.join(f'{t:.2f}' for t in floor)} s", flush=True)
    results = [
        measure(MARKETS[name], accounts[name], load_check=not args.no_load_check) for name in args.markets
    ]
    report = table(results, floor)
    print("\n" + report)
    (instances.CACHE / "pipeline_results.txt").write_text(report + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
