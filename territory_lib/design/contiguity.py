"""Compiled contiguity checks and shortest paths for the local search and recombination (numba).

Verdicts are booleans, so any correct algorithm gives the answers of the Python code they replace.
The multi-source Dijkstra computes each distance as ``min(d[u] + w)`` over settled neighbours, the
same IEEE additions and comparisons as scipy's, so the (unique) distances are equal bit for bit.
Compiled code is cached in the user's cache folder (:mod:`territory_lib.compiled`).
"""

from __future__ import annotations

import heapq

import numpy as np
from numba import njit

from territory_lib.compiled import use_user_cache_folder

use_user_cache_folder()


@njit(cache=True)
def _root(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@njit(cache=True)
def stays_connected(
    indptr: np.ndarray,
    indices: np.ndarray,
    labels: np.ndarray,
    j: int,
    a: int,
    owner: np.ndarray,
    nxt: np.ndarray,
) -> bool:
    """Whether territory ``a`` stays connected without unit ``j``.

    One breadth-first search per piece around ``j`` (neighbours of ``j`` in ``a`` that touch form
    one), advanced in turn one unit at a time; pieces that meet merge. The work is that of the
    smallest piece when ``j`` cuts the territory. ``owner`` (all ``-2``) and ``nxt`` are scratch
    arrays of length ``n``; ``owner`` is all ``-2`` again on return.
    """
    lo, hi = indptr[j], indptr[j + 1]
    same = np.empty(hi - lo, np.int64)
    ns = 0
    for e in range(lo, hi):
        v = indices[e]
        if labels[v] == a:
            same[ns] = v
            ns += 1
    if ns <= 1:
        return True
    parent = np.arange(ns)
    head = np.full(ns, -1, np.int64)
    tail = np.full(ns, -1, np.int64)
    touched = np.empty(len(labels), np.int64)
    nt = 0
    owner[j] = -1
    touched[nt] = j
    nt += 1
    for i in range(ns):
        owner[same[i]] = i
        touched[nt] = same[i]
        nt += 1
        head[i] = tail[i] = same[i]
        nxt[same[i]] = -1
    groups = ns
    # Neighbours of j that touch each other are one piece from the start.
    for i in range(ns):
        v = same[i]
        for e in range(indptr[v], indptr[v + 1]):
            o = owner[indices[e]]
            if o >= 0 and labels[indices[e]] == a:
                r1, r2 = _root(parent, o), _root(parent, i)
                if r1 != r2:
                    parent[r1] = r2
                    nxt[tail[r2]] = head[r1]
                    tail[r2] = tail[r1]
                    head[r1] = -1
                    groups -= 1
    result = groups == 1
    while not result:
        stop = False
        for g in range(ns):
            if parent[g] != g:
                continue
            v = head[g]
            if v < 0:
                stop = True
                break
            head[g] = nxt[v]
            if head[g] < 0:
                tail[g] = -1
            for e in range(indptr[v], indptr[v + 1]):
                u = indices[e]
                if labels[u] != a:
                    continue
                o = owner[u]
                if o == -2:
                    owner[u] = g
                    touched[nt] = u
                    nt += 1
                    nxt[u] = -1
                    if tail[g] < 0:
                        head[g] = u
                    else:
                        nxt[tail[g]] = u
                    tail[g] = u
                elif o >= 0:
                    r1, r2 = _root(parent, o), g
                    if r1 != r2:
                        parent[r1] = r2
                        if head[r1] >= 0:
                            if tail[r2] < 0:
                                head[r2] = head[r1]
                            else:
                                nxt[tail[r2]] = head[r1]
                            tail[r2] = tail[r1]
                        head[r1] = -1
                        groups -= 1
                        if groups == 1:
                            result = True
                            stop = True
                            break
            if stop:
                break
        if stop:
            break
    for i in range(nt):
        owner[touched[i]] = -2
    return result


@njit(cache=True)
def subset_connected(indptr: np.ndarray, indices: np.ndarray, member: np.ndarray) -> bool:
    """Whether the units where ``member`` is true form one connected piece (none: not connected)."""
    n = len(member)
    start = -1
    count = 0
    for v in range(n):
        if member[v]:
            count += 1
            if start < 0:
                start = v
    if count == 0:
        return False
    seen = np.zeros(n, np.bool_)
    stack = np.empty(n, np.int64)
    stack[0] = start
    top = 1
    seen[start] = True
    reached = 1
    while top > 0:
        top -= 1
        v = stack[top]
        for e in range(indptr[v], indptr[v + 1]):
            u = indices[e]
            if member[u] and not seen[u]:
                seen[u] = True
                reached += 1
                stack[top] = u
                top += 1
    return reached == count


@njit(cache=True)
def multi_source_dijkstra(
    indptr: np.ndarray, indices: np.ndarray, lengths: np.ndarray, sources: np.ndarray
) -> np.ndarray:
    """Shortest-path distance from the nearest of ``sources`` (``inf`` where unreachable)."""
    n = len(indptr) - 1
    dist = np.full(n, np.inf)
    done = np.zeros(n, np.bool_)
    heap = [(0.0, np.int64(0)) for _ in range(0)]
    for s in sources:
        dist[s] = 0.0
        heapq.heappush(heap, (0.0, np.int64(s)))
    while len(heap) > 0:
        d, v = heapq.heappop(heap)
        if done[v]:
            continue
        done[v] = True
        for e in range(indptr[v], indptr[v + 1]):
            u = indices[e]
            if done[u]:
                continue
            cand = d + lengths[e]
            if cand < dist[u]:
                dist[u] = cand
                heapq.heappush(heap, (cand, np.int64(u)))
    return dist


def warm_up() -> None:
    """Run each function once on a path of three units with the argument types of real searches."""
    indptr = np.array([0, 1, 3, 4], dtype=np.int64)
    indices = np.array([1, 0, 2, 1], dtype=np.int64)
    labels = np.zeros(3, dtype=np.int64)
    stays_connected(indptr, indices, labels, 1, 0, np.full(3, -2, np.int64), np.empty(3, np.int64))
    subset_connected(indptr, indices, np.ones(3, bool))
    multi_source_dijkstra(indptr, indices, np.ones(4), np.array([0], dtype=np.int64))
