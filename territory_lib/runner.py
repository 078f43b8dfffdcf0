"""Run the step notebooks for markets with papermill, export stakeholder HTML, publish atomically.

A market's run happens in a staging folder; only when every step has succeeded does it replace
``reports/<market>/``. A failed run leaves the previous reports untouched, keeps the failed
notebooks in ``reports/_failed/<market>/`` and records the failure for the index page. One run
per market at a time: a second one fails at once, naming the first (see :mod:`territory_lib.safety`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import multiprocessing
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from territory_lib.config import MarketConfig, load_config, market_params_path
from territory_lib.errors import ConfigError, TerritoryError
from territory_lib.io import prepare_builtin_data
from territory_lib.kernels import (
    NEXT_KERNEL_TAG,
    KernelsAhead,
    LocalKernelManager,
    StartedKernel,
    collection_paused,
    has_tagged_cell,
)
from territory_lib.paths import (
    PROJECT_ENV_VAR,
    REPORTS_ENV_VAR,
    project_dir,
    reports_dir,
    write_text_atomically,
)
from territory_lib.safety import (
    STAGING_DIR,
    check_can_run,
    ensure_writable,
    market_lock,
    publish_folder,
    remove_stale_kernel_dirs,
    remove_stale_staging,
)
from territory_lib.snapshot import (
    build_snapshot,
    file_digest,
    input_hashes,
    is_current,
    library_digest,
    snapshot_info,
)
from territory_lib.steps import MANIFEST, STEPS, Step, Workspace, assigned_names, step_settings

if TYPE_CHECKING:
    from nbformat import NotebookNode

logger = logging.getLogger(__name__)

#: The kernel the notebooks run on: the project's named kernelspec, which ``make setup`` installs
#: (``python -m ipykernel install --sys-prefix --name territory``) and the notebooks name.
KERNEL_NAME = "territory"
#: The kernel used when ``territory`` is not installed (a plain ``pip install``): ipykernel's own,
#: which runs this Python.
FALLBACK_KERNEL_NAME = "python3"

#: The parameters every step notebook declares in its ``parameters`` cell, and the runner passes.
NOTEBOOK_PARAMETERS = ("params_path", "output_dir", "run_date")

DOWNLOADS = (
    ("alignment.csv", "Alignment (unit → territory)"),
    ("account_assignment.csv", "Account assignment (account → territory, rep)"),
    ("rep_workload.csv", "Rep workload and travel"),
    ("proposed_moves.csv", "Proposed realignment moves"),
)


@dataclass
class MarketRun:
    """The outcome of one market's run."""

    market: str
    title: str
    ok: bool
    seconds: float
    folder: Path
    steps_run: list[int] = field(default_factory=list)
    failure: str | None = None
    #: How many times a cluster started this market (more than 1: a worker died during the run).
    attempts: int = 1


def parse_steps(text: str | None) -> list[int]:
    """Parse ``--steps`` (``"1-5"``, ``"2,3"``, ``"4"``) into step numbers; ``None`` means all."""
    if not text:
        return [step.number for step in STEPS]
    chosen: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            chosen.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise ConfigError(f"--steps {text!r}: write step numbers like 1-5, 2,3 or 4.") from None
    if not chosen or min(chosen) < 1 or max(chosen) > len(STEPS):
        raise ConfigError(f"--steps {text!r}: steps run from 1 to {len(STEPS)}.")
    return sorted(chosen)


def run_market(
    params: str,
    steps: Sequence[int] | None = None,
    run_date: str | None = None,
    progress: Callable[[str], None] = logger.info,
    reports_root: str | None = None,
    project: str | None = None,
    force: bool = False,
    lock_wait: float = 0.0,
) -> MarketRun:
    """Run one market's steps that need it and publish its reports if all succeed.

    Parameters
    ----------
    params
        A market name in ``params/`` or the path of a params YAML.
    steps
        Step numbers to run whatever changed; steps not run keep their previous results (a later
        step may need them). ``None``: every step whose inputs changed since the published run
        (see :func:`step_keys`), and every step after it.
    force
        With ``steps=None``, run all five steps even when nothing changed.
    lock_wait
        Seconds to wait for another run of the market to end (a cluster retry waits for the
        worker it replaces); by default a second run fails at once.
    run_date
        The date printed on the reports (``YYYY-MM-DD``); today by default.
    progress
        Called with one line per event (start, each step done, published, failed); by default the
        ``territory_lib.runner`` log at INFO, which the ``territory`` command prints.
    reports_root, project
        The reports folder to publish into and the project folder, when this process (a worker)
        does not know them.
    """
    # Notebook kernels inherit the environment, so they use the same folders.
    if reports_root is not None:
        os.environ[REPORTS_ENV_VAR] = reports_root
    if project is not None:
        os.environ[PROJECT_ENV_VAR] = project
    started = time.perf_counter()
    config = load_config(params)
    root = ensure_writable(reports_dir())
    with market_lock(root, config.market, wait=lock_wait):
        remove_stale_staging(root, config.market)
        remove_stale_kernel_dirs()
        run = _run_locked(config, steps, run_date, progress, root, force=force)
    run.seconds = time.perf_counter() - started
    return run


def _run_locked(
    config: MarketConfig,
    steps: Sequence[int] | None,
    run_date: str | None,
    progress: Callable[[str], None],
    root: Path,
    force: bool = False,
) -> MarketRun:
    """The body of :func:`run_market`, run while holding the market's lock."""
    run_date = run_date or dt.date.today().isoformat()
    final = root / config.market
    say = _prefixed(progress, config.market)
    prepare_builtin_data(config, say)
    keys = step_keys(config, run_date)
    published = _read_manifest(final) or {"market": config.market, "steps": []}
    if steps is None:
        done = {entry["step"]: entry for entry in published.get("steps", [])}
        steps = [
            step.number
            for step in STEPS
            if force or not _up_to_date(done.get(step.number), keys[step.number], final)
        ]
        if not steps:
            say("up to date: no input file, params, notebook or library change since the published run")
            return MarketRun(config.market, config.title, ok=True, seconds=0.0, folder=final)
    staging = root / STAGING_DIR / f"{config.market}-{uuid.uuid4().hex[:8]}"
    logger.debug("[%s] steps to run: %s; staging folder %s", config.market, steps, staging)
    if final.exists():
        # Without the published manifest: the staging folder is not a published one, so the notebooks
        # may write into it (steps.refuse_published_folder); the run writes its own manifest at the end.
        shutil.copytree(
            final, staging, ignore=lambda folder, names: [MANIFEST] if Path(folder) == final else []
        )
    staging.mkdir(parents=True, exist_ok=True)
    manifest = published
    manifest.update(title=config.title, run_started=_now(), last_failure=None)
    run = MarketRun(config.market, config.title, ok=True, seconds=0.0, folder=final)
    tick = time.perf_counter()
    # Each notebook's kernel boots and imports its modules while the step before it runs (the
    # first one while the inputs are read), so no step waits for Python and its libraries.
    notebooks = [STEPS[number - 1].path for number in steps]
    ahead = KernelsAhead(kernel_name(), project_dir())
    ahead.start(notebooks[0])
    try:
        failure = _take_snapshot(config, staging, run_date, say)
        _prefetch_exporter()
        for number, then in zip(steps, [*notebooks[1:], None], strict=True):
            step = STEPS[number - 1]
            if failure is None:
                say(f"step {number}/{len(STEPS)} {step.title} ...")
                # A notebook may say after which cell the next kernel should boot (its heaviest
                # cell keeps both cores busy): then it starts there, not once this kernel is ready.
                later = then is not None and has_tagged_cell(step.path, NEXT_KERNEL_TAG)
                cell_done = _next_kernel_after_tag(ahead) if later else None
                with ahead.running(step.path, then, later=later) as kernel:
                    failure = _execute(step, config.source, staging, run_date, kernel, cell_done=cell_done)
            if failure is None:
                failure = _export(step, config.title, staging)
            seconds = time.perf_counter() - tick
            if failure is not None:
                run.ok, run.failure = False, f"step {number} ({step.notebook}): {failure}"
                say(f"FAILED at step {number} after {seconds:.1f} s: {failure}")
                _keep_failed(staging, root / "_failed" / config.market)
                manifest["last_failure"] = {
                    "time": _now(),
                    "step": number,
                    "notebook": step.notebook,
                    "message": failure,
                }
                manifest.setdefault("status", "failed")
                final.mkdir(parents=True, exist_ok=True)
                _write_json(final / "manifest.json", manifest)
                break
            _record_step(manifest, step, seconds, keys[number])
            run.steps_run.append(number)
            say(f"step {number}/{len(STEPS)} {step.title} done in {seconds:.1f} s")
            tick = time.perf_counter()
    finally:
        ahead.close()
    if run.ok:
        from territory_lib.overview import OVERVIEW_FILE, try_build_overview

        overview, overview_failure = try_build_overview(config, staging, run_date)
        if overview_failure is not None:
            say(f"the overview could not be built ({overview_failure}); the step reports are published")
            (staging / OVERVIEW_FILE).unlink(missing_ok=True)  # never show the previous run's overview
        manifest.update(
            overview=OVERVIEW_FILE if overview is not None else None,
            alerts=overview.alerts if overview is not None else [],
            run_finished=_now(),
            status="ok",
            # The hashes taken when the inputs were read, not now: a file changed during the run
            # must make the next run read it.
            inputs=(snapshot_info(staging) or {}).get("inputs", {}),
            highlights=headline_figures(Workspace(staging), config.currency),
            downloads=[
                {"label": label, "href": name} for name, label in DOWNLOADS if (staging / name).exists()
            ],
        )
        _write_json(staging / "manifest.json", manifest)
        publish_folder(staging, final)
        say(f"reports written to {final}")
    else:
        shutil.rmtree(staging, ignore_errors=True)
    return run


def _prefetch_exporter() -> None:
    """Import the HTML exporter (nbconvert: 2-3 s) and compile its templates in the background
    while the first notebook runs.

    This process only waits on the kernel meanwhile, so the first report is rendered without the
    wait. papermill is imported first, here, so the two threads never import the same modules.
    Both import with the garbage collector paused (see :func:`~territory_lib.kernels.import_ahead`).
    """
    with collection_paused():
        import papermill  # noqa: F401

    def load() -> None:
        try:
            with collection_paused():
                from territory_lib.report import warm_exporter

                warm_exporter()
        except Exception:  # the export itself reports what is wrong
            logger.debug("the exporter could not be made ahead", exc_info=True)

    threading.Thread(target=load, name="import-exporter", daemon=True).start()


def _take_snapshot(
    config: MarketConfig, folder: Path, run_date: str, say: Callable[[str], None]
) -> str | None:
    """Validate the inputs once for all steps (unless the snapshot in ``folder`` is current).

    Returns a one-line failure message (a data or params error, which fails the run at its first
    step) or ``None``.
    """
    if is_current(folder, config, run_date):
        return None
    tick = time.perf_counter()
    try:
        build_snapshot(config, folder, run_date, "run", say)
    except TerritoryError as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    say(f"inputs read and checked once for every step in {time.perf_counter() - tick:.1f} s")
    return None


def step_keys(config: MarketConfig, run_date: str) -> dict[int, str]:
    """A key per step over everything its result depends on; a step reruns when its key changes.

    A key covers the step's own params (:func:`territory_lib.steps.step_settings`), the content
    of every data file, the run date, the step's notebook, the library's code and the key of the
    step before, so a change reruns its step and every step after it.
    """
    data = {path: digest for path, digest in input_hashes(config).items() if path != str(config.source)}
    library = library_digest()
    keys: dict[int, str] = {}
    upstream = ""
    for step in STEPS:
        payload = {
            "params": step_settings(config, step.number),
            "data": data,
            "run_date": run_date,
            "notebook": file_digest(step.path),
            "library": library,
            "upstream": upstream,
        }
        upstream = keys[step.number] = hashlib.sha256(
            json.dumps(payload, sort_keys=True, default=str).encode()
        ).hexdigest()
    return keys


def _up_to_date(entry: dict | None, key: str, final: Path) -> bool:
    """Whether a published step was made with ``key`` and its report is still there."""
    return entry is not None and entry.get("key") == key and (final / entry.get("html", "")).is_file()


def run_markets(
    markets: Sequence[str],
    *,
    steps: Sequence[int] | None = None,
    jobs: int = 2,
    run_date: str | None = None,
    progress: Callable[[str], None] = logger.info,
    scheduler: str | None = None,
    force: bool = False,
) -> list[MarketRun]:
    """Run several markets, then rebuild the index page.

    Markets run ``jobs`` at a time in separate local processes or, with ``scheduler`` (the
    address of a dask.distributed scheduler), on its workers, which need this project installed
    and the same files at the same paths. Every params file is validated before anything runs,
    so a typo fails fast.
    """
    # The same file named twice runs once; two files of one market are an error.
    params = list(dict.fromkeys(str(market_params_path(market)) for market in markets))
    check_can_run([load_config(path) for path in params], reports_dir())
    for number in steps or [step.number for step in STEPS]:
        check_notebook_parameters(STEPS[number - 1].path, NOTEBOOK_PARAMETERS)
    run_date = run_date or dt.date.today().isoformat()
    if scheduler is not None:
        runs = _run_on_dask(scheduler, params, steps, run_date, progress, force)
    elif jobs <= 1 or len(params) <= 1:
        runs = [run_market(path, steps, run_date, progress, force=force) for path in params]
    else:
        context = multiprocessing.get_context("spawn")
        # Spawned workers start with logging unset: give them this process's level and handlers.
        with ProcessPoolExecutor(
            max_workers=min(jobs, len(params)),
            mp_context=context,
            initializer=_configure_worker,
            initargs=(logging.getLogger("territory_lib").getEffectiveLevel(),),
        ) as pool:
            futures = [
                pool.submit(run_market, path, steps, run_date, _log_progress, force=force) for path in params
            ]
            runs = [future.result() for future in futures]
    index = reports_dir() / "index.html"
    if any(run.steps_run or not run.ok for run in runs) or not index.is_file():
        from territory_lib.report import write_index

        write_index(reports_dir())
    return runs


#: How long to wait for the dask scheduler to answer before saying it cannot be reached.
SCHEDULER_TIMEOUT = "10s"
#: Seconds a market started again on a cluster waits for the worker it replaces to let go.
RETRY_LOCK_WAIT = 120.0
#: The event topic on which workers send a market's progress lines to the client.
PROGRESS_TOPIC = "territory-progress"


def _run_on_dask(
    scheduler: str,
    params: Sequence[str],
    steps: Sequence[int] | None,
    run_date: str,
    progress: Callable[[str], None],
    force: bool = False,
) -> list[MarketRun]:
    """Run each market as a task on the cluster; show the workers' progress here; count attempts.

    The scheduler starts a task again on another worker when its worker dies: every start is
    logged as an event, so a market that ran more than once comes back with ``attempts > 1``.
    """
    try:
        from distributed import Client, as_completed
        from distributed.comm import get_address_host_port
    except ImportError:
        raise ConfigError(
            "--scheduler needs dask.distributed; install it with: pip install 'distributed>=2026.8'."
        ) from None
    try:
        # A malformed address is refused here: a Client that fails on it hangs on close.
        get_address_host_port(scheduler)
        client = Client(scheduler, timeout=SCHEDULER_TIMEOUT, set_as_default=False)
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TerritoryError(
            f"cannot reach the dask scheduler at {scheduler} ({reason}). Check that the scheduler is "
            "running (`dask scheduler`), that the address and port are right, and that this machine "
            "can reach it."
        ) from None
    run_id = uuid.uuid4().hex
    with client:

        def show(event: tuple[float, dict]) -> None:
            message = event[1]
            if message.get("run") == run_id and "line" in message:
                progress(message["line"])

        client.subscribe_topic(PROGRESS_TOPIC, show)
        progress(f"running {len(params)} market(s) on the dask cluster at {scheduler}")
        futures = [
            client.submit(
                _run_market_on_worker,
                run_id,
                index,
                path,
                steps,
                run_date,
                str(reports_dir()),
                str(project_dir()),
                force,
                pure=False,
            )
            for index, path in enumerate(params)
        ]
        order = {future.key: index for index, future in enumerate(futures)}
        runs: list[MarketRun | None] = [None] * len(futures)
        for future in as_completed(futures, loop=client.loop):
            index = order[future.key]
            try:
                run = future.result()
            except Exception as exc:  # e.g. KilledWorker: the market's workers kept dying
                config = load_config(params[index])
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
                run = MarketRun(config.market, config.title, False, 0.0, reports_dir() / config.market)
                run.failure = f"on the cluster: {reason}"
            runs[index] = run
            progress(f"[{run.market}] {'done' if run.ok else 'FAILED'} on the cluster in {run.seconds:.1f} s")
        starts = [
            message["start"]
            for _, message in client.get_events(PROGRESS_TOPIC)
            if message.get("run") == run_id and "start" in message
        ]
        client.unsubscribe_topic(PROGRESS_TOPIC)
    done = [run for run in runs if run is not None]
    for index, run in enumerate(done):
        run.attempts = max(1, starts.count(index))
        if run.attempts > 1:
            progress(
                f"[{run.market}] retried: the cluster started it {run.attempts} times (a worker died mid-run)"
            )
    return done


def _run_market_on_worker(
    run_id: str,
    index: int,
    params: str,
    steps: Sequence[int] | None,
    run_date: str,
    reports_root: str,
    project: str,
    force: bool = False,
) -> MarketRun:
    """A cluster task: log this attempt's start, run the market, send its progress lines to the client."""
    from distributed import get_worker

    worker = get_worker()
    worker.log_event(PROGRESS_TOPIC, {"run": run_id, "start": index})
    return run_market(
        params,
        steps,
        run_date,
        progress=lambda line: worker.log_event(PROGRESS_TOPIC, {"run": run_id, "line": line}),
        reports_root=reports_root,
        project=project,
        force=force,
        lock_wait=RETRY_LOCK_WAIT,
    )


def notebook_parameters(notebook: Path) -> list[str]:
    """The names the notebook's cell tagged ``parameters`` assigns (read without a kernel)."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8")).get("cells", [])
    for cell in cells:
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            source = cell.get("source", "")
            return assigned_names(source if isinstance(source, str) else "".join(source))
    return []


def check_notebook_parameters(notebook: Path, parameters: Sequence[str]) -> None:
    """Refuse to pass ``parameters`` that ``notebook`` does not declare (papermill would only warn).

    Raises
    ------
    ConfigError
        Naming the notebook, the undeclared parameters and the ones its ``parameters`` cell declares.
    """
    declared = notebook_parameters(notebook)
    unknown = [name for name in parameters if name not in declared]
    if unknown:
        raise ConfigError(
            f"{notebook}: its parameters cell does not declare {', '.join(map(repr, unknown))}; it declares "
            f"{', '.join(declared) or 'nothing'}. A step notebook needs a cell tagged 'parameters' that "
            f"assigns {', '.join(parameters)}."
        )


def kernel_name() -> str:
    """The kernelspec to run notebooks on: ``territory`` when it runs this environment's Python.

    Else ipykernel's ``python3``, which always does: a ``territory`` kernel installed for the user
    by another environment (``make kernel-user``) would run the notebooks on that environment's
    library. Never the kernel saved in a notebook's metadata, which may name one of another machine.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        logger.debug("kernel %r is not installed; running notebooks on %r", KERNEL_NAME, FALLBACK_KERNEL_NAME)
        return FALLBACK_KERNEL_NAME
    if Path(spec.argv[0]).parent != Path(sys.executable).parent:
        logger.debug(
            "kernel %r runs %s, not this environment's Python; running notebooks on %r",
            KERNEL_NAME,
            spec.argv[0],
            FALLBACK_KERNEL_NAME,
        )
        return FALLBACK_KERNEL_NAME
    return KERNEL_NAME


def run_step(number: int, params: str | Path, folder: Path, run_date: str) -> Path:
    """Execute step ``number``'s notebook into ``folder`` (its artifacts and executed notebook), no export.

    What a stakeholder report is built from, without publishing: tests use it to give a notebook
    the results of the steps before it.

    Raises
    ------
    TerritoryError
        With the step's one-line failure message.
    """
    step = STEPS[number - 1]
    Path(folder).mkdir(parents=True, exist_ok=True)
    failure = _execute(step, load_config(params).source, Path(folder), run_date)
    if failure is not None:
        raise TerritoryError(f"step {number} ({step.notebook}) failed: {failure}")
    return Path(folder) / f"{step.notebook}.ipynb"


def _next_kernel_after_tag(ahead: KernelsAhead) -> Callable[[NotebookNode], None]:
    """A ``cell_done`` callback that starts the next step's kernel after the cell tagged for it."""

    def cell_done(cell: NotebookNode) -> None:
        if NEXT_KERNEL_TAG in cell.get("metadata", {}).get("tags", []):
            ahead.start_next()

    return cell_done


def _execute(
    step: Step,
    params_path: Path,
    folder: Path,
    run_date: str,
    started: StartedKernel | None = None,
    cell_done: Callable[[NotebookNode], None] | None = None,
) -> str | None:
    """Execute one step notebook into ``folder``; return a one-line failure message or ``None``.

    ``started``: a kernel started ahead for this notebook (:class:`~territory_lib.kernels.KernelsAhead`),
    which the caller stops; without it papermill starts and stops one. ``cell_done`` is called
    with each cell once it has run (:class:`~territory_lib.notebook_engine.SaveOnceEngine`).
    """
    import papermill as pm

    from territory_lib.notebook_engine import ENGINE_NAME

    parameters = dict(zip(NOTEBOOK_PARAMETERS, (str(params_path), str(folder), run_date), strict=True))
    kernel = started.kernel_name if started is not None else kernel_name()
    logger.debug("%s: running %s on the %r kernel into %s", step.notebook, step.path, kernel, folder)
    try:
        check_notebook_parameters(step.path, list(parameters))
        pm.execute_notebook(
            str(step.path),
            str(folder / f"{step.notebook}.ipynb"),
            parameters=parameters,
            kernel_name=kernel,
            kernel_manager_class=LocalKernelManager,
            km=started,
            engine_name=ENGINE_NAME,
            cell_done=cell_done,
            progress_bar=False,
            # The kernel starts in the project folder: it finds the same project as this process, and
            # never writes next to built-in notebooks (inside the installed package). Not papermill's
            # `cwd`, which changes this whole process's directory.
            resources={"metadata": {"path": str(project_dir())}},
        )
    except ConfigError as exc:
        return str(exc).splitlines()[0]
    except pm.PapermillExecutionError as exc:
        return f"{exc.ename}: {exc.evalue}".splitlines()[0] if exc.evalue else exc.ename
    except Exception as exc:  # a kernel that died or would not start: report it, keep old results
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def headline_figures(workspace: Workspace, currency: str = "USD") -> list[dict[str, str]]:
    """The few figures the index page shows per market, read from a run's artifacts."""
    from territory_lib.presentation import money, percent

    figures = []
    artifacts = {name: workspace.artifact_path(name) for name in ("unit_metrics", "territories", "trends")}
    if artifacts["unit_metrics"].is_file():
        metrics = workspace.read("unit_metrics")
        figures.append({"label": "Accounts", "value": f"{int(metrics['accounts'].sum()):,}"})
        figures.append({"label": "Annual potential", "value": money(metrics["potential"].sum(), currency)})
    if artifacts["territories"].is_file():
        table = workspace.read("territories")
        deviations = [column for column in table.columns if column.endswith("_dev")]
        figures.append({"label": "Territories", "value": f"{len(table)}"})
        for column in deviations:
            measure = column.removesuffix("_dev").replace("_", " ")
            figures.append(
                {"label": f"Largest {measure} deviation", "value": percent(table[column].abs().max())}
            )
    if artifacts["trends"].is_file():
        trends = workspace.read("trends")
        # Growth is the last 12 months against the 12 before: missing (NaN) under 24 months of
        # history, and the table is empty under 12.
        growth = float(trends["annual_growth"].iloc[0]) if len(trends) else math.nan
        value = (
            f"{percent(growth, signed=True)}, last 12 months vs 12 before"
            if math.isfinite(growth)
            else "too little history"
        )
        figures.append({"label": "Sales trend", "value": value})
    return figures


def _export(step: Step, title: str, folder: Path) -> str | None:
    """Render an executed step as stakeholder HTML; return a one-line failure message or ``None``."""
    try:
        from territory_lib.report import export_html

        export_html(
            folder / f"{step.notebook}.ipynb",
            folder / f"{step.notebook}.html",
            title=f"{title}: step {step.number}, {step.title}",
            nav=[(f"{s.number}. {s.title}", f"{s.notebook}.html") for s in STEPS],
            home_href="../index.html",
        )
    except TerritoryError as exc:
        return f"the report could not be rendered: {exc}".splitlines()[0]
    return None


def export_notebook(notebook: Path, out: Path | None = None) -> Path:
    """Render an executed notebook (JupyterLab, papermill) as the stakeholder HTML of ``territory run``.

    The title names the market and step when the notebook is a step notebook run with papermill
    (its ``params_path`` parameter), else the notebook's name.

    Parameters
    ----------
    notebook
        The executed ``.ipynb``.
    out
        Where to write the report; default: beside the notebook, with ``.html``. Never into a
        published market folder (see :func:`territory_lib.steps.refuse_published_folder`).

    Raises
    ------
    TerritoryError
        For a missing or unexecuted notebook, or an ``out`` in a published market folder.
    """
    import nbformat

    from territory_lib.report import export_html
    from territory_lib.steps import refuse_published_folder

    notebook = Path(notebook)
    out = Path(out) if out is not None else notebook.with_suffix(".html")
    if notebook.suffix != ".ipynb" or not notebook.is_file():
        raise TerritoryError(f"{notebook}: no such notebook; give the path of an executed .ipynb file.")
    if out.resolve() == notebook.resolve() or out.suffix.lower() != ".html":
        raise TerritoryError(f"--out {out}: give an .html file to write (not the notebook itself).")
    refuse_published_folder(out, "--out")
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as exc:  # not JSON, or not a notebook
        raise TerritoryError(f"{notebook}: not a readable notebook ({exc}).".splitlines()[0]) from None
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    if code and all(cell.get("execution_count") is None and not cell.get("outputs") for cell in code):
        raise TerritoryError(
            f"{notebook} has not been run, so there is nothing to show: run it first (Run All in "
            "JupyterLab, or papermill), save it, then export it."
        )
    title = notebook.stem
    step = next((step for step in STEPS if step.notebook == notebook.stem), None)
    params = nb.metadata.get("papermill", {}).get("parameters", {}).get("params_path")
    if step is not None and params:
        try:
            title = f"{load_config(params).title}: step {step.number}, {step.title}"
        except TerritoryError:
            logger.debug("%s: params %r not found; the report is titled %r", notebook, params, title)
    out.parent.mkdir(parents=True, exist_ok=True)
    return export_html(notebook, out, title=title)


def _keep_failed(staging: Path, failed: Path) -> None:
    shutil.rmtree(failed, ignore_errors=True)
    failed.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(staging, failed, ignore=shutil.ignore_patterns("artifacts"))


def _record_step(manifest: dict, step: Step, seconds: float, key: str) -> None:
    entry = {
        "step": step.number,
        "key": key,
        "notebook": step.notebook,
        "title": step.title,
        "html": f"{step.notebook}.html",
        "ipynb": f"{step.notebook}.ipynb",
        "seconds": round(seconds, 1),
    }
    manifest["steps"] = sorted(
        [item for item in manifest.get("steps", []) if item["step"] != step.number] + [entry],
        key=lambda item: item["step"],
    )


def _read_manifest(folder: Path) -> dict | None:
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def _write_json(path: Path, payload: dict) -> None:
    write_text_atomically(path, json.dumps(payload, indent=2, ensure_ascii=False))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _prefixed(progress: Callable[[str], None], market: str) -> Callable[[str], None]:
    return lambda message: progress(f"[{market}] {message}")


def skip_unused_iri_checks() -> None:
    """Let jsonschema skip its optional IRI format checks in a process that only runs markets.

    papermill and nbconvert validate notebooks with jsonschema (through nbformat), which imports
    ``rfc3987_syntax``, when installed, to check "iri" strings; that module compiles a grammar as
    it is imported: 1.2 s at the start of every run, on the core step 1's kernel needs. No notebook
    schema has an IRI. Called by the ``territory`` command and its market workers (processes of
    its own), never by the library's functions, which may run in someone else's process; it does
    nothing once jsonschema is loaded.
    """
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def _configure_worker(level: int) -> None:
    """A market worker process: the command's logging, and no IRI grammar."""
    from territory_lib.cli import configure_logging

    configure_logging(level)
    skip_unused_iri_checks()


def _log_progress(message: str) -> None:
    """A market's progress line in a worker process (a module function: the pool pickles it by name)."""
    logger.info(message)
