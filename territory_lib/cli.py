"""The ``territory`` command: run markets, prepare built-in data, check inputs, export, design territories.

Progress goes through :mod:`logging` (logger ``territory_lib``): one line per event on stdout by
default, more with ``-v``, only warnings and errors with ``-q``. A command's result is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from territory_lib.config import available_markets, check_unique_markets, load_config
from territory_lib.errors import ConfigError, TerritoryError
from territory_lib.paths import PROJECT_ENV_VAR, builtin_dir, params_dir

if TYPE_CHECKING:
    from territory_lib.io import Market

log = logging.getLogger("territory_lib")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``territory`` console script; returns the exit status."""
    skip_unused_iri_parser()
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(_log_level(getattr(args, "verbose", 0), getattr(args, "quiet", False)))
    try:
        with _project(getattr(args, "project", None)):
            return args.handler(args)
    except TerritoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; reports already published are intact.", file=sys.stderr)
        return 130


def skip_unused_iri_parser() -> None:
    """Keep jsonschema from building its RFC 3987 parser in this process (1 s of every run).

    nbformat validates notebooks with jsonschema, which registers an "iri" format check when
    ``rfc3987_syntax`` is installed (jupyterlab's jupyter-events asks for it), and that module
    compiles its grammar as it is imported. Notebook validation checks no formats, so the command
    line leaves the module out: jsonschema then simply has no "iri" check. Unless already imported.
    """
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def _log_level(verbose: int, quiet: bool) -> int:
    if quiet:
        return logging.WARNING
    return logging.DEBUG if verbose else logging.INFO


def configure_logging(level: int) -> None:
    """Show the library's log records at ``level`` and above: below WARNING on stdout, plainly.

    Progress lines look as they always have (no level or logger name); warnings go to stderr.
    Called again (another command in the same process, a worker process), it replaces its handlers.
    """
    handler = _ConsoleHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


class _ConsoleHandler(logging.Handler):
    """Writes to whatever ``sys.stdout``/``sys.stderr`` are when a record comes (as ``print`` does)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from territory_lib.design.cli import add_parser as add_design_parser

    parser = argparse.ArgumentParser(
        prog="territory", description="Open, notebook-driven sales territory management."
    )
    # --project is accepted before or after the command; SUPPRESS keeps a subcommand's default
    # from overwriting the value given before it.
    project = argparse.ArgumentParser(add_help=False)
    project.add_argument(
        "--project",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="the project folder, with params/ (and data/, reports/, optionally notebooks/); "
        "default: the current folder or the nearest one above it that has params/",
    )
    project.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="say more: which kernel, folders and steps a run uses",
    )
    project.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress lines, only results",
    )
    parser.add_argument("--project", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="say more (progress details)")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress lines, only results and errors"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser(
        "init", help="create a project folder with the built-in markets' params, ready to run"
    )
    init.add_argument("folder", metavar="DIR", help="the folder to create (or an empty one)")
    init.add_argument(
        "--with-notebooks",
        action="store_true",
        help="also copy the step notebooks into DIR/notebooks/ to edit; they replace the built-in ones",
    )
    init.set_defaults(handler=_init)

    run = commands.add_parser(
        "run", parents=[project], help="run the five step notebooks and write the HTML reports"
    )
    run.add_argument(
        "markets",
        nargs="*",
        metavar="MARKET",
        help="market names in params/ or params YAML paths (default: all)",
    )
    run.add_argument(
        "--steps",
        help="steps to run whatever changed, e.g. 1-5, 2,3 or 4 (default: the steps whose inputs, "
        "params, notebook or library changed since the published run, and the steps after them)",
    )
    run.add_argument("--force", action="store_true", help="rerun all five steps even if nothing changed")
    run.add_argument(
        "--jobs", type=int, default=2, help="markets run at once, each in its own process (default: 2)"
    )
    run.add_argument("--run-date", help="date printed on the reports, YYYY-MM-DD (default: today)")
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run markets on a dask.distributed cluster (e.g. tcp://10.0.0.5:8786); its workers need "
        "this project installed and the same files at the same paths",
    )
    run.set_defaults(handler=_run)

    prepare = commands.add_parser(
        "prepare", parents=[project], help="generate the data files of built-in markets"
    )
    prepare.add_argument(
        "markets", nargs="*", metavar="MARKET", help="markets to prepare (default: all built-in)"
    )
    prepare.add_argument("--force", action="store_true", help="regenerate even when the files exist")
    prepare.set_defaults(handler=_prepare)

    check = commands.add_parser(
        "check", parents=[project], help="validate params and data files without running anything"
    )
    check.add_argument("markets", nargs="*", metavar="MARKET", help="markets to check (default: all)")
    check.add_argument("--run-date", help="date of the run to check against, YYYY-MM-DD (default: today)")
    check.set_defaults(handler=_check)

    markets = commands.add_parser("markets", parents=[project], help="list the markets in params/")
    markets.set_defaults(handler=_markets)

    index = commands.add_parser(
        "index", parents=[project], help="rebuild reports/index.html from the published reports"
    )
    index.set_defaults(handler=_index)

    export = commands.add_parser(
        "export",
        parents=[project],
        help="render an executed notebook (e.g. a papermill run) as the stakeholder HTML report",
    )
    export.add_argument("notebook", metavar="NOTEBOOK.ipynb", help="the executed notebook")
    export.add_argument(
        "--out", metavar="FILE.html", help="where to write the report (default: beside the notebook, .html)"
    )
    export.set_defaults(handler=_export)

    add_design_parser(commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    from territory_lib.paths import reports_dir
    from territory_lib.safety import check_can_run

    markets = _chosen_markets(args.markets)
    if args.jobs < 1:
        raise TerritoryError("--jobs must be at least 1.")
    # Checked before the notebook machinery loads (seconds), so a refused run fails at once.
    check_can_run([load_config(market) for market in markets], reports_dir())
    from territory_lib.runner import parse_steps, run_markets, skip_unused_iri_checks

    skip_unused_iri_checks()
    runs = run_markets(
        markets,
        steps=parse_steps(args.steps) if args.steps else None,
        jobs=args.jobs,
        run_date=args.run_date,
        scheduler=args.scheduler,
        force=args.force,
    )
    print()
    for run in runs:
        state = ("ok" if run.steps_run else "up to date") if run.ok else f"FAILED ({run.failure})"
        if run.attempts > 1:
            state += f" (retried: ran {run.attempts} times)"
        print(f"{run.market:<20} {state:<10} {run.seconds:6.1f} s  {run.folder}")
    print(f"index: {reports_dir() / 'index.html'}")
    return 0 if all(run.ok for run in runs) else 1


def _chosen_markets(names: Sequence[str]) -> list[str]:
    """The markets named on the command line, else every market in the project's params/."""
    chosen = list(names) or available_markets()
    if not chosen:
        raise ConfigError(
            f"no markets: {params_dir()} has no params YAML. Run from a project folder, pass "
            "--project DIR, or create a project with `territory init DIR`."
        )
    return chosen


@contextlib.contextmanager
def _project(folder: str | None) -> Iterator[None]:
    """Make ``folder`` (from ``--project``) the project folder of this command and its kernels."""
    if folder is None:
        yield
        return
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(
            f"--project {folder}: no such folder; create a project there with `territory init {folder}`."
        )
    previous = os.environ.get(PROJECT_ENV_VAR)
    os.environ[PROJECT_ENV_VAR] = str(path)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PROJECT_ENV_VAR, None)
        else:
            os.environ[PROJECT_ENV_VAR] = previous


PROJECT_README = """# {name}

A Territory project: sales territory reports for the markets in `params/`.

- `params/`: one YAML per market (the built-in markets to start with; add your own).
- `data/`: the markets' data files (`territory prepare` writes the built-in markets' here).
- `reports/`: the HTML reports; open `reports/index.html` after a run.
- `notebooks/` (optional): your own versions of the step notebooks, which replace the built-in
  ones file by file (`territory init --with-notebooks` copies them here to start from).

Run from this folder, or from anywhere with `--project {folder}`:

    territory markets          # the markets in params/
    territory run north_carolina
    territory run              # every market
"""


def _init(args: argparse.Namespace) -> int:
    folder = Path(args.folder).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{args.folder} exists and is not a folder; choose another path for the project.")
    sources = {folder / "params" / path.name: path for path in sorted(builtin_dir("params").glob("*.yaml"))}
    if args.with_notebooks:
        notebooks = sorted(builtin_dir("notebooks").glob("*.ipynb"))
        sources.update({folder / "notebooks" / path.name: path for path in notebooks})
    readme = folder / "README.md"
    targets = [*sources, readme]
    existing = [path for path in targets if path.exists()]
    if existing:
        raise ConfigError(
            f"{folder} already has {', '.join(str(path.relative_to(folder)) for path in existing)}; "
            "territory init never overwrites files: choose a new folder or move them away."
        )
    for target, source in sources.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    (folder / "reports").mkdir(exist_ok=True)
    readme.write_text(PROJECT_README.format(name=folder.name, folder=folder), encoding="utf-8")
    print(f"created the project {folder}:")
    for target in targets:
        print(f"  {target.relative_to(folder)}")
    print(f"next: cd {folder} && territory run north_carolina   (or territory --project {folder} run ...)")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from territory_lib.io import prepare_builtin_data

    configs = [load_config(name) for name in _chosen_markets(args.markets)]
    check_unique_markets(configs)
    for config in configs:
        folder = Path(config.data.units).parent
        if not config.builtin:
            print(
                f"{config.market}: not a built-in market (its params name no 'builtin:'); nothing to prepare."
            )
        elif prepare_builtin_data(config, log.info, force=args.force):
            print(f"{config.market}: wrote the data files to {folder}")
        else:
            print(f"{config.market}: data already in {folder} (use --force to regenerate)")
    return 0


def _check(args: argparse.Namespace) -> int:
    from territory_lib.checks import parse_run_date
    from territory_lib.io import load_market

    run_date = parse_run_date(args.run_date, "--run-date")
    configs = [load_config(name) for name in _chosen_markets(args.markets)]
    check_unique_markets(configs)
    for config in configs:
        market = load_market(config, progress=log.info, run_date=run_date)
        months = market.sales["date"].dt.to_period("M").nunique()
        print(
            f"{market.config.market}: OK: {len(market.units):,} units, {len(market.accounts):,} accounts, "
            f"{len(market.reps):,} reps, {len(market.sales):,} sales rows over {months} months, "
            f"{0 if market.feedback is None else len(market.feedback):,} feedback rows"
        )
        for note in market.warnings + adjacency_notes(market):
            print(f"  note: {note}")
    return 0


def adjacency_notes(market: Market) -> list[str]:
    """Build the unit adjacency exactly as step 2 will, so a map that passes ``check`` passes step 2.

    Returns the graph's own notes (islands joined to the mainland, units lying on others).
    """
    from territory_lib.snapshot import unit_graph

    graph = unit_graph(market)
    return [note for note in graph.notes if not note.startswith("Map repair")]


def _markets(args: argparse.Namespace) -> int:
    for name in available_markets():
        config = load_config(name)
        kind = f"built-in ({config.builtin})" if config.builtin else "own data"
        print(f"{name:<20} {config.title:<30} {config.territories:>3} territories  {kind}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from territory_lib.runner import export_notebook

    print(f"wrote {export_notebook(Path(args.notebook), Path(args.out) if args.out else None)}")
    return 0


def _index(args: argparse.Namespace) -> int:
    from territory_lib.paths import reports_dir
    from territory_lib.report import write_index

    print(write_index(reports_dir()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
