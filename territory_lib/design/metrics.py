"""Plan metrics: balance per measure, Polsby-Popper, moment of inertia and contiguity per territory.

All functions take integer labels ``0..k-1`` over the units of a :class:`UnitGraph`, so the engine
and the benchmark score every plan (ours or a peer's) with the same code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from territory_lib.design.graph import UnitGraph


def territory_area_perimeter(graph: UnitGraph, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Area (m²) and perimeter (m) of each territory from unit shapes and shared boundaries.

    A territory's perimeter is the sum of its units' perimeters less twice the boundary they
    share with each other, which equals the perimeter of their union on a clean coverage.
    """
    area = np.bincount(labels, weights=graph.area, minlength=k)
    rows = np.repeat(np.arange(graph.n), np.diff(graph.indptr))
    internal = labels[rows] == labels[graph.indices]
    # CSR holds each shared edge twice, once per direction: that is the "twice".
    inner = np.bincount(labels[rows[internal]], weights=graph.shared[internal], minlength=k)
    perimeter = np.bincount(labels, weights=graph.perimeter, minlength=k) - inner
    return area, perimeter


def polsby_popper(graph: UnitGraph, labels: np.ndarray, k: int) -> np.ndarray:
    """Polsby-Popper score ``4πA/P²`` of each territory (NaN for point units)."""
    if not graph.polygons:
        return np.full(k, np.nan)
    area, perimeter = territory_area_perimeter(graph, labels, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(perimeter > 0, 4 * np.pi * area / perimeter**2, np.nan)


def inertia_weights(measures: np.ndarray) -> np.ndarray:
    """Unit weights for the moment of inertia: the first balance measure, uniform if it sums to 0."""
    w = np.clip(measures[:, 0], 0, None) if measures.size else np.zeros(0)
    return w if w.sum() > 0 else np.ones(len(measures))


def moment_of_inertia(graph: UnitGraph, labels: np.ndarray, k: int, weights: np.ndarray) -> np.ndarray:
    """Weighted moment of inertia of each territory about its weighted centre, in km².

    Each territory's value is ``Σ w_j |x_j - c_t|² / Σ_all w`` with distances in km, so the plan
    total is the weighted mean squared distance from a unit to its territory's centre.
    """
    xy = graph.xy / 1000.0
    sw = np.bincount(labels, weights=weights, minlength=k)
    sx = np.bincount(labels, weights=weights * xy[:, 0], minlength=k)
    sy = np.bincount(labels, weights=weights * xy[:, 1], minlength=k)
    sq = np.bincount(labels, weights=weights * (xy**2).sum(axis=1), minlength=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        centred = np.where(sw > 0, sq - (sx**2 + sy**2) / sw, 0.0)
    return np.clip(centred, 0, None) / weights.sum()


def contiguous(graph: UnitGraph, labels: np.ndarray, k: int) -> np.ndarray:
    """Whether each territory is connected in the unit graph (empty territories count as not)."""
    rows = np.repeat(np.arange(graph.n), np.diff(graph.indptr))
    keep = labels[rows] == labels[graph.indices]
    mat = sparse.csr_matrix(
        (np.ones(int(keep.sum())), (rows[keep], graph.indices[keep])), shape=(graph.n, graph.n)
    )
    _, comp = connected_components(mat, directed=False)
    n_parts = np.zeros(k, dtype=int)
    pairs = np.unique(np.column_stack([labels, comp]), axis=0)
    np.add.at(n_parts, pairs[:, 0], 1)
    return n_parts == 1


def territory_table(
    graph: UnitGraph,
    labels: np.ndarray,
    names: list[str],
    measures: np.ndarray,
    measure_names: list[str],
    targets: np.ndarray,
) -> pd.DataFrame:
    """One row per territory: size, totals and deviations per measure, PP, inertia, contiguity.

    Parameters
    ----------
    graph : UnitGraph
        Unit adjacency and geometry.
    labels : numpy.ndarray
        Territory index ``0..k-1`` of each unit.
    names : list of str
        Territory labels, position ``t`` names index ``t``.
    measures : numpy.ndarray
        ``(n, m)`` balance measures per unit.
    measure_names : list of str
        Column name of each measure.
    targets : numpy.ndarray
        ``(k, m)`` target total of each territory per measure.

    Returns
    -------
    pandas.DataFrame
        Columns ``territory_id, n_units, <measure>, <measure>_dev, …, polsby_popper, inertia, contiguous``.
    """
    k = len(names)
    table = pd.DataFrame({"territory_id": names, "n_units": np.bincount(labels, minlength=k)})
    for a, name in enumerate(measure_names):
        total = np.bincount(labels, weights=measures[:, a], minlength=k)
        table[name] = total
        with np.errstate(divide="ignore", invalid="ignore"):
            table[f"{name}_dev"] = np.where(targets[:, a] > 0, total / targets[:, a] - 1.0, 0.0)
    table["polsby_popper"] = polsby_popper(graph, labels, k)
    table["inertia"] = moment_of_inertia(graph, labels, k, inertia_weights(measures))
    table["contiguous"] = contiguous(graph, labels, k)
    return table


def plan_summary(table: pd.DataFrame, measure_names: list[str]) -> dict[str, float | bool | int]:
    """Plan-level figures from a :func:`territory_table`: worst deviation per measure and shape."""
    summary: dict[str, float | bool | int] = {"k": len(table)}
    for name in measure_names:
        summary[f"max_dev_{name}"] = float(table[f"{name}_dev"].abs().max())
    summary["mean_polsby_popper"] = float(table["polsby_popper"].mean())
    summary["total_inertia"] = float(table["inertia"].sum())
    summary["all_contiguous"] = bool(table["contiguous"].all())
    return summary
