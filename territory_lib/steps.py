"""The five management steps: their notebooks, where a run keeps its results, and how a step starts.

Each step notebook calls :func:`start_step` first; it loads the market, shows the report header,
and hands back a :class:`StepContext` whose workspace passes results (Parquet/GeoParquet) from one
step to the next.
"""

from __future__ import annotations

import ast
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import pandas as pd

from territory_lib.checks import parse_run_date
from territory_lib.config import MarketConfig, load_config
from territory_lib.errors import ConfigError, StepOrderError
from territory_lib.io import Market
from territory_lib.paths import ensure_inside, notebook_path, reports_dir, write_text_atomically

if TYPE_CHECKING:
    from territory_lib.design.graph import UnitGraph


@dataclass(frozen=True)
class Step:
    """One management step and its notebook."""

    number: int
    notebook: str
    title: str

    @property
    def path(self) -> Path:
        """The step's notebook: the project's own ``notebooks/<notebook>.ipynb``, else the built-in one."""
        return notebook_path(self.notebook)


STEPS: tuple[Step, ...] = (
    Step(1, "01_analyze_market", "Analyze the market"),
    Step(2, "02_define_territories", "Define territories"),
    Step(3, "03_align_resources", "Align reps and resources"),
    Step(4, "04_monitor_performance", "Monitor performance"),
    Step(5, "05_feedback_optimize", "Gather feedback and re-optimize"),
)

#: The params each step reads beyond those every report shows (title, labels, currency, maps):
#: a change to them reruns that step and the ones after it. Top-level settings no step claims
#: count for every step.
STEP_SETTINGS: dict[int, tuple[str, ...]] = {
    1: ("data", "columns", "units_crs", "geometry", "builtin", "analysis"),
    2: ("territories", "design", "scenarios"),
    3: ("resources",),
    4: ("forecast_months", "monitor"),
    5: ("realignment", "feedback"),
}
#: The design settings only step 5's realignment reads; the rest of ``design`` is step 2's.
REALIGNMENT_SETTINGS = ("max_disruption", "effort_tolerance", "capacity_targets")


def step_settings(config: MarketConfig, number: int) -> dict[str, object]:
    """The params that step ``number``'s result depends on (see :data:`STEP_SETTINGS`)."""
    dump = config.model_dump(mode="json", exclude={"source"})
    dump["realignment"] = {key: dump["design"].pop(key) for key in REALIGNMENT_SETTINGS}
    claimed = {key for keys in STEP_SETTINGS.values() for key in keys}
    common = {key: value for key, value in dump.items() if key not in claimed}
    settings = common | {key: dump[key] for key in STEP_SETTINGS[number]}
    if number == 2:  # step 2 matches reps to its territories, weighing their capacity
        settings["capacity_weight"] = dump["resources"]["capacity_weight"]
    return settings


#: Which step writes each artifact, so a missing one can be explained.
ARTIFACT_PRODUCERS = {
    "unit_metrics": 1,
    "accounts": 1,
    "alignment": 2,
    "territories": 2,
    "rep_assignment": 2,
    "account_assignment": 2,
    "rep_workload": 3,
    "rep_comparison": 3,
    "kpis": 4,
    "trends": 4,
    "feedback_summary": 5,
    "proposed_moves": 5,
    "proposal_workload": 5,
}


if TYPE_CHECKING:
    _ConcretePath = Path
else:
    _ConcretePath = type(Path())  # PosixPath or WindowsPath: Path itself cannot be subclassed on 3.11


class SavedPath(_ConcretePath):
    """The path of a file a step saved, which a notebook cell ending in the save does not echo."""

    def _ipython_display_(self) -> None:
        """Show nothing: a saved file is not a finding (its path would be a stray ``PosixPath(...)``)."""


class Workspace:
    """The folder of one market's run: reports, CSV downloads, and ``artifacts/`` passed between steps."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.artifacts = self.root / "artifacts"

    def artifact_path(self, name: str) -> Path:
        """Where the artifact ``name`` lives."""
        return self.artifacts / f"{name}.parquet"

    def write(self, name: str, frame: pd.DataFrame) -> Path:
        """Save ``frame`` (GeoParquet for a GeoDataFrame) atomically and return its path."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        target = self.artifact_path(name)
        with tempfile.NamedTemporaryFile(dir=self.artifacts, suffix=".tmp", delete=False) as handle:
            temp = Path(handle.name)
        try:
            frame.to_parquet(temp, index=False)
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
        return SavedPath(target)

    def read(self, name: str) -> pd.DataFrame:
        """Load the artifact ``name``; a missing one says which step to run first."""
        path = self.artifact_path(name)
        if not path.is_file():
            step = STEPS[ARTIFACT_PRODUCERS[name] - 1]
            raise StepOrderError(
                f"{path} does not exist: it is written by step {step.number} ({step.notebook}). "
                f"Run that notebook first with the same params_path and output_dir, "
                f"or run the whole market with `territory run`."
            )
        try:
            return gpd.read_parquet(path)
        except ValueError:
            return pd.read_parquet(path)

    @property
    def metrics_path(self) -> Path:
        """The run's machine-readable results, ``<root>/metrics.json`` (documented in the README)."""
        return self.root / "metrics.json"

    def read_metrics(self) -> dict[str, object]:
        """Everything recorded so far with :meth:`record_metrics` (empty when nothing is)."""
        if not self.metrics_path.is_file():
            return {}
        try:
            loaded = json.loads(self.metrics_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def record_metrics(self, section: str, values: Mapping[str, object]) -> None:
        """Set ``section`` (``"step1"`` ... ``"step5"``) of ``metrics.json`` to ``values``, atomically.

        The other sections are kept, so a rerun of step 4 alone leaves steps 1-3's figures in place.
        Values must be JSON: numbers, text, booleans, ``None``, lists and mappings of them; NumPy
        scalars are converted and NaN becomes ``null``.
        """
        metrics = self.read_metrics()
        metrics[section] = _plain_json(values)
        self.root.mkdir(parents=True, exist_ok=True)
        text = json.dumps(metrics, indent=2, ensure_ascii=False, sort_keys=True, allow_nan=False)
        # Returns nothing, so a notebook cell ending with this call shows no output.
        write_text_atomically(self.metrics_path, text + "\n")

    def write_csv(self, name: str, frame: pd.DataFrame) -> Path:
        """Write a download for stakeholders and CRM uploads (``<root>/<name>``) atomically.

        Text cells that a spreadsheet would run as a formula are neutralised first
        (:func:`neutralise_formulas`).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        return SavedPath(
            write_text_atomically(self.root / name, neutralise_formulas(frame).to_csv(index=False))
        )


def _plain_json(value: object) -> object:
    """``value`` with NumPy scalars and arrays as Python numbers and lists, and NaN/inf as ``None``."""
    if isinstance(value, Mapping):
        return {str(key): _plain_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_json(item) for item in value]
    if hasattr(value, "tolist"):  # NumPy scalars and arrays
        return _plain_json(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


#: What a spreadsheet takes for the start of a formula (CSV injection), or strips to reach one.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and headers starting like a formula begin with ``'``.

    A spreadsheet opening the CSV then shows ``'=HYPERLINK(...)`` as text instead of running it.
    Numeric columns are left alone, so negative numbers stay numbers; a text id such as ``-12``
    becomes ``'-12``.
    """
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_numeric_dtype(out[column]) or pd.api.types.is_datetime64_any_dtype(out[column]):
            continue
        values = out[column].astype(object)
        if values.map(_is_formula).any():
            out[column] = values.map(_neutralise)
    out.columns = [_neutralise(column) for column in out.columns]
    return out


def _is_formula(value: object) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def _neutralise(value: object) -> object:
    return f"'{value}" if _is_formula(value) else value


@dataclass
class StepContext:
    """What a step notebook works with: the step, its validated market, the workspace, the run date."""

    step: Step
    config: MarketConfig
    market: Market
    workspace: Workspace
    run_date: str
    adjacency: UnitGraph


def step_inputs(
    config: MarketConfig, folder: Path, run_date: str, number: int, progress: Callable[[str], None] | None
) -> tuple[Market, UnitGraph]:
    """The validated market and its unit adjacency for a step, read once per run.

    A run of ``territory run`` snapshots its inputs before step 1 and every step reads that
    snapshot, even if a file changed since. Run from a notebook, step 1 reads the files afresh and
    writes the snapshot; later steps read it while the files are unchanged.
    """
    from territory_lib import snapshot

    info = snapshot.snapshot_info(folder)
    made_by_run = info is not None and info.get("origin") == "run" and info.get("run_date") == run_date
    if made_by_run or (number > 1 and snapshot.is_current(folder, config, run_date)):
        return snapshot.read_snapshot(config, folder)
    return snapshot.build_snapshot(config, folder, run_date, "interactive", progress)


def resolve_output_dir(output_dir: str | Path, market: str) -> Path:
    """The run folder: the given one (inside the reports folder) or ``reports/_scratch/<market>``.

    Interactive runs default to a scratch folder so they never touch the reports of ``territory run``.

    Raises
    ------
    ConfigError
        When ``output_dir`` lies outside the reports folder, or in a published market folder
        (see :func:`refuse_published_folder`).
    """
    root = reports_dir()
    if str(output_dir).strip() == "":
        return root / "_scratch" / market
    folder = ensure_inside(Path(output_dir), root, "output_dir parameter")
    refuse_published_folder(folder, "output_dir parameter", market)
    return folder


#: The file that marks a market folder published by ``territory run`` (see territory_lib.runner).
MANIFEST = "manifest.json"


def published_folder(path: Path) -> Path | None:
    """The published market folder (one with a ``manifest.json``) that ``path`` is or lies in, if any.

    Only folders inside the reports folder count.
    """
    root = reports_dir().resolve()
    path = Path(path).resolve()
    for folder in (path, *path.parents):
        if folder == root or root not in folder.parents:
            return None
        if (folder / MANIFEST).is_file():
            return folder
    return None


def refuse_published_folder(path: Path, what: str, market: str = "") -> None:
    """Refuse to write ``path`` (a folder or file) into a market folder that ``territory run`` published.

    Its HTML reports and ``manifest.json`` describe the published run: results written there by a
    notebook would not match them, and the next ``territory run`` would take them for its own.

    Raises
    ------
    ConfigError
        Naming the folder and what to do instead.
    """
    published = published_folder(path)
    if published is None:
        return
    name = market or published.name
    raise ConfigError(
        f"{what} {str(path)!r} is inside {published}, the published reports of market '{published.name}' "
        f"(it has {MANIFEST}): writing there would overwrite their results while the HTML reports and "
        f"manifest stay old. Leave output_dir empty (results go to reports/_scratch/{name}), choose "
        f"another folder inside {reports_dir()}, or publish with `territory run {name}`."
    )


def start_step(
    number: int,
    params_path: str,
    output_dir: str = "",
    run_date: str = "",
    *,
    show_header: bool = True,
    progress: Callable[[str], None] | None = print,
) -> StepContext:
    """Begin step ``number``: validate params and data, show the report header, return the context.

    Parameters
    ----------
    number
        The step, 1 to 5.
    params_path
        A market name in ``params/`` or the path of a params YAML.
    output_dir
        The run folder; empty for ``reports/_scratch/<market>``.
    run_date
        The date printed on the report (``YYYY-MM-DD``); empty for today.
    show_header
        Display the title block (market, run date, data provenance) in the notebook.
    """
    check_injected_parameters()
    if not 1 <= number <= len(STEPS):
        raise ConfigError(f"step must be 1 to {len(STEPS)}, got {number}.")
    step = STEPS[number - 1]
    config = load_config(params_path)
    run_date = parse_run_date(run_date).isoformat()
    workspace = Workspace(resolve_output_dir(output_dir, config.market))
    market, adjacency = step_inputs(config, workspace.root, run_date, number, progress)
    if show_header:
        from IPython.display import display

        from territory_lib.presentation import notebook_header

        display(
            notebook_header(f"Step {step.number}: {step.title}", config.title, run_date, provenance(config))
        )
    return StepContext(step, config, market, workspace, run_date, adjacency)


#: The first line of the cell papermill injects after the ``parameters`` cell (its Python translator).
INJECTED_CELL_COMMENT = "# Parameters"


def check_injected_parameters() -> None:
    """Fail a papermill run that passed a parameter the notebook does not declare.

    papermill only warns about an unknown parameter (``-p market north_carolina``) and runs the
    notebook on its defaults, which would publish a report of the wrong market. In a kernel,
    this finds the cell papermill injected (the latest input starting with ``# Parameters``) and
    compares the names it assigns with those assigned by the cell run just before it, the
    notebook's ``parameters`` cell. Outside IPython, or when nothing was injected, it does nothing.

    Raises
    ------
    ConfigError
        Naming the undeclared parameters and listing the declared ones.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    inputs = list(shell.history_manager.input_hist_raw)
    injected_at = next(
        (i for i in range(len(inputs) - 1, 0, -1) if inputs[i].lstrip().startswith(INJECTED_CELL_COMMENT)),
        None,
    )
    if injected_at is None:
        return
    declared = assigned_names(inputs[injected_at - 1])
    if not declared:  # the cell before is not a parameters cell (cells run by hand, out of order)
        return
    unknown = [name for name in assigned_names(inputs[injected_at]) if name not in declared]
    unknown = [name for name in unknown if not name.startswith("PAPERMILL_")]  # papermill's --inject-paths
    if unknown:
        hint = " (to run another market, pass -p params_path NAME)" if "params_path" in declared else ""
        raise ConfigError(
            f"parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"{'are' if len(unknown) > 1 else 'is'} not declared by this notebook, so papermill would "
            f"ignore {'them' if len(unknown) > 1 else 'it'}. The notebook's parameters are: "
            f"{', '.join(declared)}{hint}."
        )


def assigned_names(source: str) -> list[str]:
    """Names a cell assigns at top level (``x = ...``, ``x: T = ...``), in order; none if not Python."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        names.extend(t.id for t in targets if isinstance(t, ast.Name) and t.id not in names)
    return names


def provenance(config: MarketConfig) -> str:
    """What the report says about where the data come from: what is real and what is synthetic."""
    if config.provenance:
        return config.provenance
    if config.builtin:
        from territory_lib.datasets import BUILTIN_MARKETS

        builtin = BUILTIN_MARKETS[config.builtin]
        return f"{builtin.real_sources} {builtin.synthetic_parts}"
    return (
        f"Data supplied by the owner of the '{config.market}' market (files named in {config.source.name})."
    )
