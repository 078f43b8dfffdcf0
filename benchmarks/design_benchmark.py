"""Side-by-side benchmark of territory design: our engine vs METIS, GerryChain and spopt.

Every (instance, method) pair runs in its own Python process with a timeout (10 minutes by
default) so that peak memory is the process's own and a method that cannot finish is reported as
such. Every plan is scored by the same code (``territory_lib.design.metrics``) on the same unit
graph: worst relative deviation per measure, contiguity, mean Polsby-Popper, moment of inertia.

Usage::

    python benchmarks/design_benchmark.py                      # everything (can take an hour)
    python benchmarks/design_benchmark.py --instances nc georgia --methods ours metis gerrychain
    python benchmarks/design_benchmark.py --timeout 120
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.instances import INSTANCES, Instance  # noqa: E402

METHODS = ["ours", "metis", "gerrychain", "maxp", "skater", "azp"]
PRELOAD = {
    "ours": ["territory_lib.design", "territory_lib.design.diagnose"],
    "metis": ["pymetis", "territory_lib.design.graph"],
    "gerrychain": ["gerrychain", "gerrychain.tree", "networkx", "territory_lib.design.graph"],
    "maxp": ["spopt.region", "libpysal.weights", "territory_lib.design.graph"],
    "skater": ["spopt.region", "libpysal.weights", "territory_lib.design.graph"],
    "azp": ["spopt.region", "libpysal.weights", "territory_lib.design.graph"],
}


def _labels_from(assignment: dict | list | np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Integer labels 0..k'-1 in unit order from any per-unit assignment."""
    values = [assignment[i] for i in range(len(ids))] if isinstance(assignment, dict) else list(assignment)
    _, labels = np.unique(np.asarray([str(v) for v in values]), return_inverse=True)
    return labels.astype(np.int64)


def _int_weights(values: np.ndarray) -> np.ndarray:
    """Positive integer weights proportional to ``values`` (METIS and GerryChain want integers)."""
    scale = 1e6 / max(values.sum(), 1e-12)
    return np.maximum(np.rint(values * scale), 1).astype(np.int64)


def run_method(inst: Instance, method: str, seed: int) -> tuple[np.ndarray, dict]:
    """Run one method; return integer labels per unit and extra facts to report."""
    from territory_lib.design.graph import build_unit_graph
    from territory_lib.geo import to_equal_area

    ids = inst.units[inst.id_column].astype(str).to_numpy()
    values = inst.units[inst.measures].to_numpy(float)
    extra: dict = {}
    if method == "ours":
        from territory_lib.design import design_territories

        result = design_territories(
            inst.units,
            inst.k,
            inst.balance,
            id_column=inst.id_column,
            current=inst.current,
            max_disruption=inst.max_disruption,
            seed=seed,
        )
        if inst.current is not None:
            extra["units_moved"] = int(result.summary["units_moved"])
            extra["share_moved"] = float(result.summary["share_moved"])
            extra["moves"] = [
                f"{row.unit_id} {row.from_territory}→{row.to_territory}" for row in result.moves.itertuples()
            ]
        return _labels_from(result.assignment.to_numpy(), ids), extra
    if inst.current is not None:
        raise ValueError(f"{method} has no realignment mode (no current plan, no disruption cap)")
    graph = build_unit_graph(to_equal_area(inst.units), ids)
    if method == "metis":
        import pymetis

        vweights = _int_weights(values[:, 0])
        opts = pymetis.Options(ufactor=30, contig=1, seed=seed)
        _, parts = pymetis.part_graph(
            inst.k, xadj=graph.indptr, adjncy=graph.indices, vweights=vweights, options=opts
        )
        return np.asarray(parts), extra
    if method == "gerrychain":
        import networkx as nx
        from gerrychain import Graph
        from gerrychain.tree import recursive_tree_part

        nxg = nx.Graph()
        weights = _int_weights(values[:, 0])
        nxg.add_nodes_from((i, {"pop": int(w)}) for i, w in enumerate(weights))
        nxg.add_edges_from(graph.edges().tolist())
        assignment = recursive_tree_part(
            Graph.from_networkx(nxg),
            range(inst.k),
            weights.sum() / inst.k,
            "pop",
            inst.tolerance[0],
            rng=seed,
        )
        return _labels_from(assignment, ids), extra
    # spopt regionalisers take a libpysal W built from the same adjacency.
    from libpysal.weights import W

    neighbours = {i: graph.indices[graph.indptr[i] : graph.indptr[i + 1]].tolist() for i in range(graph.n)}
    w = W(neighbours, silence_warnings=True)
    frame = inst.units.reset_index(drop=True).copy()
    attrs = list(inst.measures)
    if method == "maxp":
        from spopt.region import MaxPHeuristic

        frame["_floor"] = values[:, 0]
        threshold = values[:, 0].sum() / inst.k * (1 - inst.tolerance[0])
        model = MaxPHeuristic(frame, w, attrs, "_floor", threshold, top_n=2)
    elif method == "skater":
        from spopt.region import Skater

        model = Skater(frame, w, attrs, n_clusters=inst.k)
    elif method == "azp":
        from spopt.region import AZP

        model = AZP(frame, w, attrs, n_clusters=inst.k, random_state=seed)
    else:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    model.solve()
    return _labels_from(np.asarray(model.labels_), ids), extra


def compactness_gap(
    inst: Instance, labels: np.ndarray, time_limit: float = 120.0
) -> dict[str, float | str | None]:
    """Our plan's p-median compactness against the MIP bound on a benchmark instance."""
    from territory_lib.design.exact import pmedian_bound, pmedian_value
    from territory_lib.geo import to_equal_area

    projected = to_equal_area(inst.units)
    xy_km = np.column_stack([projected.geometry.centroid.x, projected.geometry.centroid.y]) / 1000.0
    values = inst.units[inst.measures].to_numpy(float)
    share = values / values.sum(axis=0)
    weight = share[:, 0]
    ours = pmedian_value(xy_km, weight, labels)
    bound, incumbent, status = pmedian_bound(
        xy_km,
        weight,
        share,
        np.full(share.shape[1], 1.0 / inst.k),
        np.asarray(inst.tolerance),
        inst.k,
        time_limit,
    )
    return {
        "ours_pmedian": ours,
        "mip_bound": bound,
        "mip_incumbent": incumbent,
        "mip_status": status,
        "gap": (ours - bound) / ours if ours > 0 else 0.0,
    }


def child(instance: str, method: str, seed: int) -> None:
    """Run in a subprocess: time one method, score its plan, print one JSON line."""
    from territory_lib.design.graph import build_unit_graph
    from territory_lib.design.metrics import contiguous, moment_of_inertia, polsby_popper
    from territory_lib.geo import to_equal_area

    inst = INSTANCES[instance]()
    # Library imports are not part of a method's time.
    for module in PRELOAD.get(method, []):
        importlib.import_module(module)
    started = time.perf_counter()
    labels, extra = run_method(inst, method, seed)
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ids = inst.units[inst.id_column].astype(str).to_numpy()
    graph = build_unit_graph(to_equal_area(inst.units), ids)
    values = inst.units[inst.measures].to_numpy(float)
    k = int(labels.max()) + 1
    totals = np.zeros((k, values.shape[1]))
    np.add.at(totals, labels, values)
    mean = values.sum(axis=0) / inst.k
    devs = [float(np.abs(totals[:, a] / mean[a] - 1).max()) for a in range(values.shape[1])]
    out = {
        "instance": instance,
        "method": method,
        "units": len(ids),
        "k": k,
        "dev": devs,
        "contiguous": bool(contiguous(graph, labels, k).all()),
        "pp": float(np.nanmean(polsby_popper(graph, labels, k))),
        "inertia": float(moment_of_inertia(graph, labels, k, np.clip(values[:, 0], 0, None)).sum()),
        "seconds": seconds,
        "peak_mib": peak_mib,
        **extra,
    }
    if inst.current is not None:
        cur = _labels_from(inst.current.reindex(ids).to_numpy(), ids)
        cur_totals = np.zeros((int(cur.max()) + 1, values.shape[1]))
        np.add.at(cur_totals, cur, values)
        cur_dev = np.abs(cur_totals / mean - 1).max(axis=0)
        out["current_dev"] = [float(v) for v in cur_dev]
        out["max_disruption"] = inst.max_disruption
    elif method == "ours" and len(ids) <= 100:
        out.update(compactness_gap(inst, labels, time_limit=120.0))
    print("RESULT " + json.dumps(out))


def _cell(row: dict | None, key: str) -> str:
    if row is None:
        return "—"
    value = row.get(key)
    if key in ("dev", "current_dev"):
        return " / ".join(f"{v:.2%}" for v in value)
    if key == "pp":
        return f"{value:.3f}"
    if key == "inertia":
        return f"{value:.4g}"
    if key == "seconds":
        return f"{value:.2f}"
    if key == "peak_mib":
        return f"{value:.0f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    """Run the requested instances × methods and print one table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", nargs="+", default=list(INSTANCES), choices=list(INSTANCES))
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per method run (default 600)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=2, metavar=("INSTANCE", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.seed)
        return 0
    header = [
        "instance",
        "method",
        "k",
        "max dev per measure",
        "contig",
        "mean PP",
        "inertia km²",
        "s",
        "peak MiB",
    ]
    rows = []
    gaps = []
    realigned = []
    for instance in args.instances:
        for method in args.methods:
            if instance.endswith("_realign") and method != "ours":
                rows.append([instance, method, "—", "no realignment mode", "—", "—", "—", "—", "—"])
                continue
            cmd = [sys.executable, __file__, "--child", instance, method, "--seed", str(args.seed)]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, check=False)
                line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
                if line is None:
                    err = (proc.stderr.strip().splitlines() or ["no output"])[-1][:60]
                    rows.append([instance, method, "—", f"failed: {err}", "—", "—", "—", "—", "—"])
                    continue
                res = json.loads(line[len("RESULT ") :])
            except subprocess.TimeoutExpired:
                rows.append(
                    [instance, method, "—", f"no plan in {args.timeout:.0f} s", "—", "—", "—", "—", "—"]
                )
                continue
            rows.append(
                [instance, method, str(res["k"])]
                + [_cell(res, key) for key in ("dev", "contiguous", "pp", "inertia", "seconds", "peak_mib")]
            )
            if "mip_bound" in res:
                gaps.append(res)
            if "units_moved" in res:
                realigned.append(res)
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    for res in gaps:
        print(
            f"\n{res['instance']}: p-median compactness (Σ w·d² to a centre unit, km²·share) ours "
            f"{res['ours_pmedian']:.1f}, MIP bound {res['mip_bound']:.1f} (MIP status: {res['mip_status']}, "
            f"incumbent {res['mip_incumbent']}) → gap {res['gap']:.1%}"
        )
    for res in realigned:
        print(
            f"\n{res['instance']}: current plan deviates {_cell(res, 'current_dev')}, band "
            f"±{INSTANCES[res['instance']]().tolerance[0]:.0%}; ours → {_cell(res, 'dev')}, contiguous "
            f"{res['contiguous']}, moved {res['units_moved']} of {res['units']} units "
            f"({res['share_moved']:.1%}; cap {res['max_disruption']:.0%}): {', '.join(res['moves'])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
