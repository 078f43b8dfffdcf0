"""The ``territory design`` subcommand: read units, design territories, write ``unit_id,territory_id``.

``add_parser`` registers the subcommand on the main parser's subparsers; ``run`` executes it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from territory_lib.errors import ConfigError, DataError

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

    from territory_lib.design.engine import BalanceTarget

#: Exit code when a plan is written but some band, lock or cap does not hold.
EXIT_INFEASIBLE = 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``design`` on ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    parser = subparsers.add_parser(
        "design",
        help="partition units into balanced, contiguous, compact territories",
        description="Design k territories from geographic units and write unit_id,territory_id.",
    )
    parser.add_argument(
        "--units", required=True, type=Path, help="GeoPackage, GeoJSON, Shapefile or GeoParquet"
    )
    parser.add_argument("--id", required=True, dest="id_column", help="column holding unit ids")
    parser.add_argument("--k", required=True, type=int, help="number of territories")
    parser.add_argument(
        "--balance",
        required=True,
        action="append",
        metavar="COL[:TOL]",
        help="measure to balance with its tolerance (default 0.05); repeat for several measures",
    )
    parser.add_argument("--current", metavar="COL", help="column of units holding the current territory")
    parser.add_argument(
        "--max-disruption", type=float, metavar="F", help="largest share of units that may move"
    )
    parser.add_argument(
        "--disruption-measure", metavar="COL", help="measure disruption as a share of this column"
    )
    parser.add_argument(
        "--locked", type=Path, metavar="FILE", help="CSV of unit_id,territory_id that must hold"
    )
    parser.add_argument(
        "--seeds", type=Path, metavar="FILE", help="CSV of k unit ids (column unit_id) or points (lat, lon)"
    )
    parser.add_argument("--targets", metavar="S1,S2,…", help="k target shares summing to 1 (default equal)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--work-budget",
        type=int,
        metavar="N",
        help="search effort in work units (candidate moves scored); the same N gives the same plan "
        "on any machine (default: grows with the number of units)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        metavar="SECONDS",
        help="safety cap on the search time; a plan it cuts short depends on the machine (default: none)",
    )
    parser.add_argument(
        "--snap",
        type=float,
        metavar="METRES",
        help="close gaps and overlaps between neighbouring polygons up to this width "
        "(default: 0.2%% of the median unit's size)",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="FILE.csv", help="where to write the plan")
    parser.set_defaults(handler=run)


def parse_balance(specs: list[str]) -> list[BalanceTarget]:
    """Turn ``COL[:TOL]`` strings into balance targets (tolerance as a share, e.g. ``sales:0.03``)."""
    from territory_lib.design.engine import BalanceTarget

    out = []
    for spec in specs:
        column, _, tol = spec.rpartition(":") if ":" in spec else (spec, "", "")
        if not tol:
            out.append(BalanceTarget(column or spec))
            continue
        try:
            value = float(tol.rstrip("%")) / (100 if tol.endswith("%") else 1)
        except ValueError:
            raise ConfigError(
                f"--balance {spec!r}: tolerance {tol!r} is not a number; write e.g. sales:0.05"
            ) from None
        out.append(BalanceTarget(column, value))
    return out


def read_units(path: Path) -> gpd.GeoDataFrame:
    """Read a units file (GeoParquet by suffix, anything GDAL reads otherwise)."""
    import geopandas as gpd

    if not path.exists():
        raise DataError(f"--units {path}: no such file.")
    try:
        if path.suffix.lower() in {".parquet", ".geoparquet"}:
            return gpd.read_parquet(path)
        return gpd.read_file(path)
    except Exception as exc:
        raise DataError(f"--units {path}: cannot read it as a geographic file ({exc}).") from exc


def _read_table(path: Path, flag: str) -> pd.DataFrame:
    import pandas as pd

    if not path.exists():
        raise DataError(f"{flag} {path}: no such file.")
    try:
        return pd.read_csv(path, dtype=str)
    except Exception as exc:
        raise DataError(f"{flag} {path}: cannot read it as CSV ({exc}).") from exc


def run(args: argparse.Namespace) -> int:
    """Run ``territory design``; print the metrics table and notes; return the exit code."""
    # Imported here, not at the top, so that the other subcommands start without the engine.
    import pandas as pd

    from territory_lib.design.engine import design_territories

    if args.work_budget is not None and args.work_budget < 1:
        raise ConfigError(f"--work-budget {args.work_budget}: give a positive number of work units.")
    if args.time_limit is not None and not args.time_limit > 0:
        raise ConfigError(f"--time-limit {args.time_limit:g}: give a positive number of seconds, or omit it.")
    units = read_units(args.units)
    if args.id_column not in units.columns:
        raise ConfigError(
            f"--id {args.id_column!r} is not a column of {args.units} (has {list(units.columns)})."
        )
    current = None
    if args.current:
        if args.current not in units.columns:
            raise ConfigError(f"--current {args.current!r} is not a column of {args.units}.")
        current = pd.Series(units[args.current].to_numpy(), index=units[args.id_column].astype(str))
        current = current.where(current.notna(), None).dropna().astype(str)
    locked = None
    if args.locked:
        table = _read_table(args.locked, "--locked")
        id_col = "unit_id" if "unit_id" in table.columns else args.id_column
        if id_col not in table.columns or "territory_id" not in table.columns:
            raise ConfigError(f"--locked {args.locked} needs columns unit_id and territory_id.")
        locked = dict(zip(table[id_col], table["territory_id"], strict=True))
    seeds = None
    if args.seeds:
        table = _read_table(args.seeds, "--seeds")
        id_col = "unit_id" if "unit_id" in table.columns else args.id_column
        if id_col in table.columns:
            seeds = table[id_col].tolist()
        else:
            # Points: the engine finds lat/lon columns and maps each point to the unit it falls in.
            seeds = table.apply(
                lambda col: pd.to_numeric(col, errors="coerce") if col.name != id_col else col
            )
    targets = None
    if args.targets:
        try:
            targets = [float(v) for v in args.targets.split(",")]
        except ValueError:
            raise ConfigError(f"--targets {args.targets!r}: give k numbers separated by commas.") from None
    result = design_territories(
        units,
        args.k,
        parse_balance(args.balance),
        id_column=args.id_column,
        current=current,
        max_disruption=args.max_disruption,
        disruption_measure=args.disruption_measure,
        locked=locked,
        seeds=seeds,
        targets=targets,
        seed=args.seed,
        work_budget=args.work_budget,
        time_limit=args.time_limit,
        snap=args.snap,
    )
    result.to_csv(args.out)
    print(result.metrics_text())
    if not result.moves.empty:
        print(f"\nmoved units ({len(result.moves)}):")
        print(result.moves.to_string(index=False))
    print(f"\nwrote {args.out}")
    return 0 if result.feasible else EXIT_INFEASIBLE
