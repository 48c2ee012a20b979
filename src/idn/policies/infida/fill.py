"""Two things INFIDA does with a rounded allocation before using it
(docs/model.md, section 12).

Filling. A rounding leaves budget unused: a fractional model whose size did
not fit, or the last coordinate rounded down. ``fill_leftover`` adds, node by
node, the models not chosen in decreasing order of a key, each one that
still fits. The gain is monotone in x, so every draw gains at least what it
had, whatever the order: E[G(x_filled)] >= E[G(x)] >= (1 - 1/e) G(y) still
holds, although the marginals E[x] are no longer y. Two keys (``fill``):
- ``state``: the fractional state y (ties: supergradient per MB);
- ``marginal`` (the default): what a model would add where it is drawn,
  per MB: node v's supergradient terms at the point where its own
  coordinates are its draw x_v and every other node's are the state y_t its
  slot's messages carried (``marginal_terms``), ties by y. The state's order
  fills the room a knapsack leaves with the models the state half-holds,
  which are mostly those the draw could not fit, or copies of what the draw
  already holds; the marginal order fills it with what the draw lacks. On
  the tuning scenarios it adds 0.7-1.2 points of the bound where popularity
  shifts (docs/model.md, section 12.2). Live, a node computes the same terms
  from its paths' lists, which the downward messages then carry (the
  design's O(K) numbers per message) instead of the cut-off alone.

Lazy redraws (low churn). With the coupled rounding, x is a fixed function of
y, but a small move of y still flips models: each pairwise step's direction
compares a fixed coin with a ratio of y's. ``stale_nodes`` says which nodes'
states moved by more than delta_t = reround / sqrt(t) (size-weighted l1,
relative to the budget) since their allocation was drawn; only those redraw.
A node that keeps x drawn at y_a, with sum_m s_m |y_m - y_a,m| <= delta_t b_v,
loses at most delta_t b_v ||g||_* of relaxed gain in the slot (G is
Lipschitz in that norm with constant ||g||_* = max_m |g_m| / s_m), and
sum_t delta_t = O(sqrt T): the regret stays O(sqrt T).

A kept allocation is also repaired (``hold_sure``): a model whose state is
sure of it (y >= 1 - 1e-3) but that the allocation lacks is loaded, in
place of the held models of least y. The size-weighted move hides a small
model's full swing (a 1 kB model going from 0.7 to 1 at a node of 9 kB
moved 3% of the budget; the threshold falls below that only after
thousands of slots), and a rounding of the current y would hold it anyway
(models at 1 are always drawn). A repair loads one model, where a redraw
would reshuffle the node.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _fill(x, y, g_per_mb, sizes, offsets, budgets):  # pragma: no cover - numba
    """Per node: while some model not chosen fits what is left, add the one
    with the largest y (then supergradient per MB). A scan per addition:
    nodes add few models, and most have nothing left to fill."""
    for v in range(offsets.size - 1):
        left = budgets[v] * (1.0 + 1e-12)
        smallest = np.inf  # of the models not chosen: most nodes have no room for any
        for m in range(offsets[v], offsets[v + 1]):
            if x[m]:
                left -= sizes[m]
            elif sizes[m] < smallest:
                smallest = sizes[m]
        if smallest > left:
            continue
        while True:
            best = -1
            for m in range(offsets[v], offsets[v + 1]):
                if x[m] or sizes[m] > left:
                    continue
                if best < 0 or y[m] > y[best] or (y[m] == y[best] and g_per_mb[m] > g_per_mb[best]):
                    best = m
            if best < 0:
                break
            x[best] = True
            left -= sizes[best]


@njit(cache=True, nogil=True)
def _marginal_terms(offsets, pair, cost, share, counts, y, x, entry_node, path_offsets, path_nodes, room,
                    out):  # pragma: no cover - numba  # fmt: skip
    """Per request type with requests, per node v on its path with room:
    serving's cut-off k* recomputed with v's entries at x (the others at y),
    and v's terms share_e (C^{k*} - C^e) for its entries before it, added
    into out[pair[e]]. The fallback (last entry) has entry_node -1."""
    for t in range(len(offsets) - 1):
        r = counts[t]
        if r <= 0.0:
            continue
        start, last = offsets[t], offsets[t + 1] - 1
        for j in range(path_offsets[t], path_offsets[t + 1]):
            v = path_nodes[j]
            if not room[v]:
                continue
            cum = 0.0
            kstar = last
            for e in range(start, last):
                cum += share[e] * (x[pair[e]] if entry_node[e] == v else y[pair[e]])
                if cum >= r:
                    kstar = e
                    break
            c_star = cost[kstar]
            for e in range(start, kstar):
                if entry_node[e] == v:
                    out[pair[e]] += share[e] * (c_star - cost[e])


def marginal_terms(offsets, pair, cost, share, counts, y, x, entry_node, path_offsets, path_nodes, room) -> np.ndarray:
    """The ``marginal`` fill's terms (module docstring) in the layout of y and
    x, for the nodes marked in ``room`` (0 elsewhere). ``pair`` maps each
    candidate entry to its coordinate; ``entry_node`` gives its node (-1 at
    the fallbacks); ``path_offsets`` / ``path_nodes`` each type's path (only
    its nodes are looked at)."""
    y = np.ascontiguousarray(y, dtype=float)
    out = np.zeros(y.size)
    _marginal_terms(offsets, pair, cost, np.ascontiguousarray(share, dtype=float),
                    np.ascontiguousarray(counts, dtype=float), y, np.ascontiguousarray(x, dtype=float),
                    entry_node, path_offsets, path_nodes, np.ascontiguousarray(room, dtype=np.bool_), out)  # fmt: skip
    return out


@njit(cache=True, nogil=True)
def _room(x, sizes, offsets, budgets, room):  # pragma: no cover - numba
    for v in range(offsets.size - 1):
        left = budgets[v] * (1.0 + 1e-12)
        smallest = np.inf
        for m in range(offsets[v], offsets[v + 1]):
            if x[m]:
                left -= sizes[m]
            elif sizes[m] < smallest:
                smallest = sizes[m]
        room[v] = smallest <= left


def has_room(x: np.ndarray, sizes: np.ndarray, offsets: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """(V,) bool: nodes whose allocation x leaves room for a model it lacks."""
    room = np.zeros(offsets.size - 1, dtype=np.bool_)
    _room(np.asarray(x, dtype=np.bool_), sizes, offsets, budgets, room)
    return room


def fill_leftover(x: np.ndarray, y: np.ndarray, g_per_mb: np.ndarray, sizes: np.ndarray, offsets: np.ndarray,
                  budgets: np.ndarray, inplace: bool = False) -> np.ndarray:  # fmt: skip
    """x (flat bool, CSR by node ``offsets``) with each node's unused budget
    filled, in decreasing y then decreasing g_per_mb (any two keys: the
    ``marginal`` fill passes its terms per MB first and y second). A new
    array, or x itself (a bool array) with inplace."""
    x = np.array(x, dtype=np.bool_, copy=not inplace)
    _fill(x, np.ascontiguousarray(y, dtype=float), np.ascontiguousarray(g_per_mb, dtype=float), sizes, offsets, budgets)
    return x


def stale_nodes(y: np.ndarray, anchor: np.ndarray, sizes: np.ndarray, node_of: np.ndarray, budgets: np.ndarray,
                delta: float) -> np.ndarray:  # fmt: skip
    """(V,) bool: nodes whose state moved more than delta * budget (size-weighted l1) from the anchor."""
    moved = np.bincount(node_of, sizes * np.abs(y - anchor), budgets.size)
    return moved > delta * np.maximum(budgets, 1e-300)


SURE = 1e-3


@njit(cache=True, nogil=True)
def _hold_sure(x, y, sizes, offsets, budgets, sure):  # pragma: no cover - numba
    loads = 0
    for v in range(offsets.size - 1):
        a, e = offsets[v], offsets[v + 1]
        for m in range(a, e):
            if x[m] or y[m] < 1.0 - sure:
                continue
            left = budgets[v] * (1.0 + 1e-12)
            for k in range(a, e):
                if x[k]:
                    left -= sizes[k]
            while left < sizes[m]:  # evict the held model of least y that the state is not sure of
                w = -1
                for k in range(a, e):
                    if x[k] and y[k] < 1.0 - sure and (w < 0 or y[k] < y[w]):
                        w = k
                if w < 0:
                    break
                x[w] = False
                left += sizes[w]
            if left >= sizes[m]:
                x[m] = True
                loads += 1
    return loads


def hold_sure(x: np.ndarray, y: np.ndarray, sizes: np.ndarray, offsets: np.ndarray, budgets: np.ndarray) -> int:
    """Put into x (flat bool, in place) every model with y >= 1 - SURE it
    lacks, evicting held models of least y to make room; returns how many."""
    return int(_hold_sure(x, np.ascontiguousarray(y, dtype=float), sizes, offsets, budgets, SURE))
