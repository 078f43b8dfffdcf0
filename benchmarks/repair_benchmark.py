"""What map repair costs next to step 2, on the ~29,300-unit ZIP map of the design benchmark.

Times, in one process (median of ``--repeat`` calls, after imports), on the ZIP Voronoi map as
built (nearly a clean coverage) and on the same map with every unit shrunk by 5 m (gaps along
every border, as many exports have), what a run does once:

- ``repair`` — :func:`territory_lib.geometry.repair_units`, done when the units file is read (the
  cost this repair adds to a run; ``territory check`` pays it too);
- ``adjacency`` — the unit graph on the repaired units, built once per run (its snapshot) and
  reused by steps 1, 2 and 5 and by ``territory check``;
- ``step 2 engine`` — ``design_territories`` with k = 200, ±1 %, given that adjacency.

Each figure is printed with its share of the step 2 engine's time on the same map.

    .venv/bin/python benchmarks/repair_benchmark.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.instances import zips
from territory_lib.design import design_territories
from territory_lib.design.graph import build_unit_graph
from territory_lib.geo import to_equal_area
from territory_lib.geometry import repair_units, stacked_units
from tests.flawed_maps import flawed_map


def _median_seconds(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _measure(units, id_column: str, repeat: int) -> dict[str, float]:
    ids = units[id_column].astype(str).to_numpy()
    repair = repair_units(units.geometry, ids)
    repaired = units.set_geometry(repair.geometry)
    projected = to_equal_area(repaired)
    stacked = stacked_units(repair.repairs, ids)
    figures = {
        "repair (reading the units)": _median_seconds(lambda: repair_units(units.geometry, ids), repeat),
        "adjacency (once per run)": _median_seconds(
            lambda: build_unit_graph(projected, ids, stacked=stacked), repeat
        ),
    }
    graph = build_unit_graph(projected, ids, stacked=stacked)
    start = time.perf_counter()
    # Step 2 designs on the repaired units that step 1 passed on, with the run's adjacency.
    result = design_territories(repaired, 200, {"potential": 0.01}, id_column=id_column, seed=0, graph=graph)
    figures["step 2 engine (k = 200, ±1 %)"] = time.perf_counter() - start
    figures["_deviation"] = result.summary["max_dev_potential"]
    figures["_pp"] = result.summary["mean_polsby_popper"]
    figures["_repairs"] = len(repair.repairs)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="calls per figure (median)")
    args = parser.parse_args()
    instance = zips()
    clean = instance.units
    shrunk = flawed_map(clean, "shrunk", instance.id_column)
    rows = {}
    for name, units in (("as built", clean), ("shrunk 5 m", shrunk)):
        print(f"measuring the ZIP map {name} ({len(units):,} units) ...", flush=True)
        rows[name] = _measure(units, instance.id_column, args.repeat)
    print()
    header = f"{'figure':<36}" + "".join(f"{name:>26}" for name in rows)
    print(header)
    print("-" * len(header))
    step2 = {name: figures["step 2 engine (k = 200, ±1 %)"] for name, figures in rows.items()}
    for key in next(iter(rows.values())):
        if key.startswith("_"):
            continue
        cells = "".join(
            f"{figures[key]:>10.2f} s ({figures[key] / step2[name]:>6.1%})" + " " * 4
            for name, figures in rows.items()
        )
        print(f"{key:<36}{cells}")
    for name, figures in rows.items():
        print(
            f"{name}: {figures['_repairs']:,} unit repairs; plan {figures['_deviation']:.2%} max deviation, "
            f"mean Polsby-Popper {figures['_pp']:.3f}"
        )
    print(f"numpy {np.__version__}; shares are of the step 2 engine's time on the same map")


if __name__ == "__main__":
    main()
