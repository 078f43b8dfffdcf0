"""Unit adjacency graph for territory design: queen contiguity for polygons, Delaunay for points.

Polygons are first made a clean coverage (:func:`territory_lib.geometry.clean_coverage`), so maps
with overlapping neighbours or small gaps between them give the adjacency a reader sees on the map.
Disconnected pieces (islands, exclaves, isolated points) are joined to their nearest unit so that
every plan can be contiguous; each join is recorded as a human-readable note.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import Delaunay, QhullError, cKDTree

from territory_lib.errors import DataError
from territory_lib.geometry import (
    clean_coverage,
    default_snap,
    repair_notes,
    repair_shapes,
    stacked_edges,
)


@dataclass
class UnitGraph:
    """Adjacency of the units in CSR form with the geometry the optimiser needs.

    Attributes
    ----------
    ids : numpy.ndarray
        Unit ids (str), position ``i`` is unit ``i``.
    indptr, indices : numpy.ndarray
        CSR adjacency (symmetric, no self loops), neighbours of ``i`` are
        ``indices[indptr[i]:indptr[i + 1]]``.
    shared : numpy.ndarray
        Length in metres of the boundary shared along each CSR entry (0 for point units and joins).
    perimeter, area : numpy.ndarray
        Perimeter (m) and area (m²) of each unit; zeros for point units.
    xy : numpy.ndarray
        ``(n, 2)`` unit centroids in an equal-area projection (metres).
    polygons : bool
        Whether units are polygons (so Polsby-Popper is defined).
    joins : list of tuple
        ``(i, j, metres)`` edges added to connect components.
    notes : list of str
        What was done to make the graph connected.
    """

    ids: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    shared: np.ndarray
    perimeter: np.ndarray
    area: np.ndarray
    xy: np.ndarray
    polygons: bool
    joins: list[tuple[int, int, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        """Number of units."""
        return len(self.ids)

    def matrix(self) -> sparse.csr_matrix:
        """Adjacency as a scipy CSR matrix of ones."""
        data = np.ones(len(self.indices), dtype=np.int8)
        return sparse.csr_matrix((data, self.indices, self.indptr), shape=(self.n, self.n))

    def edges(self) -> np.ndarray:
        """Undirected edges ``(i, j)`` with ``i < j`` as an ``(e, 2)`` array."""
        rows = np.repeat(np.arange(self.n), np.diff(self.indptr))
        keep = rows < self.indices
        return np.column_stack([rows[keep], self.indices[keep]])

    def neighbour_lists(self) -> list[list[int]]:
        """Neighbours of each unit as Python lists (fast to iterate in the local search)."""
        ind = self.indices.tolist()
        ptr = self.indptr.tolist()
        return [ind[ptr[i] : ptr[i + 1]] for i in range(self.n)]


def _polygon_edges(geoms: np.ndarray, stacked: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Queen contiguity with shared boundary lengths (libpysal) on a clean coverage.

    Stacked units (lying on others) are left out of libpysal's planar computation and joined to
    every unit they intersect, with no shared length. Self-loops of isolates are dropped.
    """
    planar = np.flatnonzero(~stacked)
    heads, tails = _shared_vertex_pairs(geoms[planar])
    # libpysal's perimeter weights: the length of each ordered pair's intersection.
    touching = shapely.intersection(geoms[planar][heads], geoms[planar][tails])
    if np.isin(shapely.get_type_id(shapely.get_parts(touching)), [3, 6]).any():
        raise ValueError("Some geometries overlap. Perimeter weights require planar coverage.")
    weight = shapely.length(touching)
    extra_focal, extra_neigh = stacked_edges(geoms, stacked)
    return (
        np.concatenate([planar[heads], extra_focal]),
        np.concatenate([planar[tails], extra_neigh]),
        np.concatenate([weight, np.zeros(len(extra_focal))]),
    )


def _shared_vertex_pairs(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair of polygons sharing at least one vertex (queen contiguity).

    The rule of libpysal's ``Graph.build_contiguity(rook=False)`` (vertex set intersection), on
    arrays: its per-vertex Python loop took seconds on detailed maps such as the Census counties.
    """
    vertices, owner = shapely.get_coordinates(geoms, return_index=True)
    # + 0.0 turns -0.0 into 0.0, so equal coordinates have equal bytes.
    keys = np.ascontiguousarray(vertices + 0.0).view(np.dtype((np.void, 16))).ravel()
    _, vertex = np.unique(keys, return_inverse=True)
    pairs = np.unique(np.column_stack([vertex.ravel(), owner]), axis=0)  # by vertex, then polygon
    start = np.flatnonzero(np.r_[True, pairs[1:, 0] != pairs[:-1, 0]])
    sizes = np.diff(np.r_[start, len(pairs)])
    heads, tails = [], []
    # Vertices shared by k polygons give k(k-1) ordered pairs; k is small (2-4) on real maps.
    for k in np.unique(sizes[sizes > 1]):
        members = pairs[start[sizes == k][:, None] + np.arange(k), 1]
        a, b = np.nonzero(~np.eye(k, dtype=bool))
        heads.append(members[:, a].ravel())
        tails.append(members[:, b].ravel())
    if not heads:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    edges = np.unique(np.column_stack([np.concatenate(heads), np.concatenate(tails)]), axis=0)
    return edges[:, 0].astype(np.int64), edges[:, 1].astype(np.int64)


def _point_edges(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Delaunay edges between points; a nearest-neighbour chain when the points are degenerate."""
    n = len(xy)
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    try:
        if n < 4:
            raise QhullError("too few points for a triangulation")
        tri = Delaunay(xy)
        indptr, indices = tri.vertex_neighbor_vertices
        focal = np.repeat(np.arange(n), np.diff(indptr))
        return focal, indices.astype(np.int64)
    except QhullError:
        # Collinear or very few points: link each point to its nearest predecessor along the line.
        order = np.lexsort((xy[:, 1], xy[:, 0]))
        a, b = order[:-1], order[1:]
        return np.concatenate([a, b]), np.concatenate([b, a])


def _join_components(
    n: int, rows: np.ndarray, cols: np.ndarray, xy: np.ndarray, ids: np.ndarray
) -> tuple[list[tuple[int, int, float]], list[str]]:
    """Join every component to its nearest unit outside it until the graph is connected."""
    joins: list[tuple[int, int, float]] = []
    notes: list[str] = []
    r, c = rows, cols
    while True:
        mat = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
        n_comp, comp = connected_components(mat, directed=False)
        if n_comp <= 1:
            return joins, notes
        sizes = np.bincount(comp)
        main = int(np.argmax(sizes))
        new_r, new_c = [], []
        for label in sorted(range(n_comp), key=lambda lab: (-sizes[lab], lab)):
            if label == main:
                continue
            inside = np.flatnonzero(comp == label)
            outside = np.flatnonzero(comp != label)
            dist, nearest = cKDTree(xy[outside]).query(xy[inside])
            best = int(np.argmin(dist))
            i, j = int(inside[best]), int(outside[nearest[best]])
            metres = float(dist[best])
            joins.append((i, j, metres))
            new_r += [i, j]
            new_c += [j, i]
            what = f"unit {ids[i]}" if len(inside) == 1 else f"{len(inside)} units around {ids[i]}"
            notes.append(
                f"{what} had no neighbour in the rest of the map; joined to unit {ids[j]} "
                f"({metres / 1000:.1f} km away) so territories stay contiguous."
            )
        r = np.concatenate([r, np.asarray(new_r, dtype=np.int64)])
        c = np.concatenate([c, np.asarray(new_c, dtype=np.int64)])


def _repaired(
    shapes: np.ndarray, names: np.ndarray, snap: float | None
) -> tuple[np.ndarray, np.ndarray, list]:
    """Shapes repaired and cleaned into a coverage (see :mod:`territory_lib.geometry`)."""
    tolerance = default_snap(shapes) if snap is None else snap
    shapes, repairs, unusable = repair_shapes(shapes, names, shapes, tolerance)
    if unusable:
        raise DataError(
            f"units {unusable[:5]} have no area (their shapes collapse to lines or points); "
            "redraw them as polygons or drop them."
        )
    coverage = clean_coverage(shapes, names, tolerance)
    return coverage.geometry, coverage.stacked, repairs + coverage.repairs


def build_unit_graph(
    units: gpd.GeoDataFrame, ids: np.ndarray, snap: float | None = None, stacked: np.ndarray | None = None
) -> UnitGraph:
    """Build the adjacency graph of ``units`` (already in an equal-area projection).

    Parameters
    ----------
    units : geopandas.GeoDataFrame
        One row per unit, polygons or points, projected in metres.
    ids : numpy.ndarray
        Unit ids in row order (used in notes).
    snap : float, optional
        Polygons: gaps and overlaps up to this many metres count as a shared border; ``None``
        derives it from the map (:func:`territory_lib.geometry.default_snap`).
    stacked : numpy.ndarray, optional
        For polygons already repaired by :func:`territory_lib.geometry.repair_units` (a clean
        coverage but for these units, which lie on others): the repair is not done again.

    Returns
    -------
    UnitGraph
        Connected adjacency with shared boundary lengths, centroids, areas and perimeters.
    """
    geoms = units.geometry
    if geoms.isna().any() or geoms.is_empty.any():
        bad = ids[(geoms.isna() | geoms.is_empty).to_numpy()][:5]
        raise DataError(
            f"units {list(bad)} have an empty or missing geometry; drop them or fix their shapes."
        )
    kinds = set(shapely.get_type_id(geoms.to_numpy()).tolist())
    # Collections (3 = polygon, 6 = multipolygon, 7 = collection) come from repaired shapes.
    polygons = bool(kinds & {3, 6}) and kinds <= {3, 6, 7}
    if not polygons and not kinds <= {0}:
        raise DataError(
            "units mix geometry types; give either all polygons (areas) or all points "
            "(e.g. account locations)."
        )
    n = len(units)
    notes: list[str] = []
    if polygons:
        shapes = geoms.to_numpy()
        if stacked is None:
            shapes, stacked, repairs = _repaired(shapes, np.asarray(ids).astype(str), snap)
            notes += repair_notes(repairs)
        xy = shapely.get_coordinates(shapely.centroid(shapes))
        focal, neigh, shared = _polygon_edges(shapes, np.asarray(stacked, dtype=bool))
        perimeter = shapely.length(shapes).astype(float)
        area = shapely.area(shapes).astype(float)
    else:
        xy = shapely.get_coordinates(geoms.to_numpy())
        focal, neigh = _point_edges(xy)
        shared = np.zeros(len(focal))
        perimeter = np.zeros(n)
        area = np.zeros(n)
    joins, join_notes = _join_components(n, focal, neigh, xy, ids)
    notes += join_notes
    if joins:
        jr = np.array([[i, j] for i, j, _ in joins] + [[j, i] for i, j, _ in joins], dtype=np.int64)
        focal = np.concatenate([focal, jr[:, 0]])
        neigh = np.concatenate([neigh, jr[:, 1]])
        shared = np.concatenate([shared, np.zeros(len(jr))])
    # Deduplicate and sort into CSR; duplicates can come from Delaunay or repeated joins.
    frame = pd.DataFrame({"i": focal, "j": neigh, "s": shared}).groupby(["i", "j"], sort=True)["s"].max()
    rows = frame.index.get_level_values(0).to_numpy()
    indices = frame.index.get_level_values(1).to_numpy().astype(np.int64)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]).astype(np.int64)
    return UnitGraph(
        ids=np.asarray(ids),
        indptr=indptr,
        indices=indices,
        shared=frame.to_numpy(dtype=float),
        perimeter=perimeter,
        area=area,
        xy=np.asarray(xy, dtype=float),
        polygons=polygons,
        joins=joins,
        notes=notes,
    )
