"""The ``territory`` command: run markets, prepare built-in data, check inputs, design territories."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from territory_lib.config import available_markets, check_unique_markets, load_config
from territory_lib.errors import TerritoryError

if TYPE_CHECKING:
    from territory_lib.io import Market


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``territory`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except TerritoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; reports already published are intact.", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from territory_lib.design.cli import add_parser as add_design_parser

    parser = argparse.ArgumentParser(
        prog="territory", description="Open, notebook-driven sales territory management."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the five step notebooks and write the HTML reports")
    run.add_argument(
        "markets",
        nargs="*",
        metavar="MARKET",
        help="market names in params/ or params YAML paths (default: all)",
    )
    run.add_argument("--steps", help="steps to run, e.g. 1-5, 2,3 or 4 (default: all)")
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

    prepare = commands.add_parser("prepare", help="generate the data files of built-in markets")
    prepare.add_argument(
        "markets", nargs="*", metavar="MARKET", help="markets to prepare (default: all built-in)"
    )
    prepare.add_argument("--force", action="store_true", help="regenerate even when the files exist")
    prepare.set_defaults(handler=_prepare)

    check = commands.add_parser("check", help="validate params and data files without running anything")
    check.add_argument("markets", nargs="*", metavar="MARKET", help="markets to check (default: all)")
    check.add_argument("--run-date", help="date of the run to check against, YYYY-MM-DD (default: today)")
    check.set_defaults(handler=_check)

    markets = commands.add_parser("markets", help="list the markets in params/")
    markets.set_defaults(handler=_markets)

    index = commands.add_parser("index", help="rebuild reports/index.html from the published reports")
    index.set_defaults(handler=_index)

    add_design_parser(commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    from territory_lib.paths import reports_dir
    from territory_lib.safety import check_can_run

    markets = args.markets or available_markets()
    if args.jobs < 1:
        raise TerritoryError("--jobs must be at least 1.")
    # Checked before the notebook machinery loads (seconds), so a refused run fails at once.
    check_can_run([load_config(market) for market in markets], reports_dir())
    from territory_lib.runner import parse_steps, run_markets

    runs = run_markets(
        markets,
        steps=parse_steps(args.steps),
        jobs=args.jobs,
        run_date=args.run_date,
        scheduler=args.scheduler,
    )
    print()
    for run in runs:
        state = "ok" if run.ok else f"FAILED ({run.failure})"
        print(f"{run.market:<20} {state:<10} {run.seconds:6.1f} s  {run.folder}")
    print(f"index: {reports_dir() / 'index.html'}")
    return 0 if all(run.ok for run in runs) else 1


def _prepare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from territory_lib.io import prepare_builtin_data

    configs = [load_config(name) for name in (args.markets or available_markets())]
    check_unique_markets(configs)
    for config in configs:
        folder = Path(config.data.units).parent
        if not config.builtin:
            print(
                f"{config.market}: not a built-in market (its params name no 'builtin:'); nothing to prepare."
            )
        elif prepare_builtin_data(config, print, force=args.force):
            print(f"{config.market}: wrote the data files to {folder}")
        else:
            print(f"{config.market}: data already in {folder} (use --force to regenerate)")
    return 0


def _check(args: argparse.Namespace) -> int:
    from territory_lib.checks import parse_run_date
    from territory_lib.io import load_market

    run_date = parse_run_date(args.run_date, "--run-date")
    configs = [load_config(name) for name in args.markets or available_markets()]
    check_unique_markets(configs)
    for config in configs:
        market = load_market(config, progress=print, run_date=run_date)
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
    from territory_lib.design.graph import build_unit_graph
    from territory_lib.geo import to_equal_area

    graph = build_unit_graph(
        to_equal_area(market.units), market.units["unit_id"].to_numpy(), market.config.geometry.snap
    )
    return [note for note in graph.notes if not note.startswith("Map repair")]


def _markets(args: argparse.Namespace) -> int:
    for name in available_markets():
        config = load_config(name)
        kind = f"built-in ({config.builtin})" if config.builtin else "own data"
        print(f"{name:<20} {config.title:<30} {config.territories:>3} territories  {kind}")
    return 0


def _index(args: argparse.Namespace) -> int:
    from territory_lib.paths import reports_dir
    from territory_lib.report import write_index

    print(write_index(reports_dir()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
