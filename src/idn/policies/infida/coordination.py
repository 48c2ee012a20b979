"""Path-coordinated draws (``coordination: path``, docs/model.md section 12.2):
the nodes of a path draw a task's models with one shared uniform, each in its
own window of it, so that along a path they hold a task's models as rarely
together as their states allow.

Why. The grouped rounding (:mod:`.grouped`) draws each (node, task) group
with its own uniform u: an edge node that holds a task with probability 0.4
and the regional node above it with 0.5 hold it together in 0.2 of the
draws (one copy wasted) and neither in 0.3, while the relaxation counts
their states as 0.9 of the task's requests served below the cloud. With one
uniform U per task and each node's window starting where its ancestors'
end, a path's nodes hold the task in disjoint windows of U: neither in
1 - 0.9 = 0.1 of the draws, as the relaxation counts it.

The draw. Group (v, task) uses u = (U_task - O) mod 1, O the sum of the
fractional states y (0 < y < 1) of the task's models at the nodes above v on
a path through v, as the slot's downward messages carried them (the state
y_t, the one the slot was served with): the path of the active request type
with the lowest index whose candidate list holds one of the group's models.
A group no active type lists keeps its own independent uniform. Each group's u is still uniform,
so every group's marginals are those of :mod:`.grouped`; only the
correlation between nodes changes (and in a tree, whose paths agree on what
is above a node, each path's windows are disjoint while their sum is at
most 1). The offsets need only what node v's downward messages carry (the
lists of ``fill: marginal``), so a live node computes them itself
(:func:`offsets_from_lists`) with the same arithmetic, to the bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_SNAP = 1e-12


def fractional(y: np.ndarray) -> np.ndarray:
    """y where 0 < y < 1, else 0: what a group's systematic sampling spreads."""
    y = np.asarray(y, dtype=float)
    return np.where((y > _SNAP) & (y < 1.0 - _SNAP), y, 0.0)


def offsets_above(type_of: np.ndarray, hop: np.ndarray, frac: np.ndarray, n_types: int, depth: int) -> np.ndarray:
    """(n_types, depth): O[t, h] = sum of frac over type t's entries at hops
    above h. Per (type, hop) the sum runs in the entries' order (bincount), so
    a node's few types give the numbers the whole network's give."""
    s = np.bincount(np.asarray(type_of, np.int64) * depth + np.asarray(hop, np.int64), weights=frac,
                    minlength=n_types * depth).reshape(n_types, depth)  # fmt: skip
    out = np.zeros((n_types, depth))
    for k in range(depth - 2, -1, -1):
        out[:, k] = out[:, k + 1] + s[:, k + 1]
    return out


class PathLayout:
    """What :func:`group_offsets` reads, fixed for a run's request types: per
    path element (a type's node at one hop), the group it lists (-1 if none)
    and its listed free coordinates, in the lists' order, as one of the
    distinct sets they form (a node's models of a task are listed alike by
    every type that passes it, so a slot sums each set once, not once per
    type: the 1111-node tree has 160,000 path elements and 30,000 sets)."""

    def __init__(self, rt, entry_index: np.ndarray, group_of: np.ndarray):
        self.path_offsets = np.ascontiguousarray(rt.path_offsets, dtype=np.int64)
        self.n_groups = int(group_of.max(initial=-1)) + 1
        listed = np.flatnonzero(~rt.is_fallback)
        elem = self.path_offsets[rt.entry_type[listed]] + rt.hop[listed]
        order = np.argsort(elem, kind="stable")  # per element, its entries in the lists' order
        elem, free = elem[order], np.asarray(entry_index)[listed][order]
        n_elem = rt.path_nodes.size
        bounds = np.searchsorted(elem, np.arange(n_elem + 1))
        sets: dict[tuple, int] = {}
        self.elem_set = np.full(n_elem, -1, dtype=np.int32)
        for j in np.flatnonzero(bounds[1:] > bounds[:-1]):
            self.elem_set[j] = sets.setdefault(tuple(free[bounds[j] : bounds[j + 1]].tolist()), len(sets))
        self.set_offsets = np.zeros(len(sets) + 1, dtype=np.int64)
        self.set_offsets[1:] = np.cumsum([len(k) for k in sets])
        self.set_index = np.fromiter((i for k in sets for i in k), dtype=np.int32, count=int(self.set_offsets[-1]))
        elem_type = np.repeat(np.arange(rt.n_types), np.diff(self.path_offsets))
        group = group_of[rt.path_nodes, rt.task[elem_type]]
        self.elem_group = np.where(self.elem_set >= 0, group, -1).astype(np.int32)


def group_offsets(layout: PathLayout, y_t: np.ndarray, active: np.ndarray) -> np.ndarray:
    """The offset O of every group (NaN where no active type lists it), for
    the whole network. Each set's sum runs over its coordinates in the
    lists' order, as :func:`offsets_above` adds a type's entries at one hop,
    so the numbers are a live node's to the bit."""
    out = np.full(layout.n_groups, np.nan)
    if out.size == 0:
        return out
    set_sum = np.empty(layout.set_offsets.size - 1)
    _group_offsets(layout.path_offsets, layout.elem_set, layout.elem_group, layout.set_offsets, layout.set_index,
                   np.ascontiguousarray(y_t, dtype=float), np.asarray(active, np.bool_), set_sum, out)  # fmt: skip
    return out


@njit(cache=True, nogil=True)
def _group_offsets(path_offsets, elem_set, elem_group, set_offsets, set_index, y, active, set_sum, out):  # pragma: no cover - numba
    for i in range(set_sum.size):
        acc = 0.0
        for k in range(set_offsets[i], set_offsets[i + 1]):
            v = y[set_index[k]]
            if v > _SNAP and v < 1.0 - _SNAP:
                acc += v
        set_sum[i] = acc
    for t in range(path_offsets.size - 1):
        if not active[t]:
            continue
        a, e = path_offsets[t], path_offsets[t + 1]
        above = 0.0  # offsets_above's recurrence: O[h] = O[h + 1] + S[h + 1], from the top
        for j in range(e - 1, a - 1, -1):
            g = elem_group[j]
            if g >= 0 and np.isnan(out[g]):
                out[g] = above
            if elem_set[j] >= 0:  # an element with nothing listed adds 0.0 there: nothing to add here
                above = above + set_sum[elem_set[j]]


def rows_in_list_order(down_rho: dict, where: dict) -> list[list]:
    """The rows of one type's downward list, (node, model, hop, cost, share,
    y), in the order of its candidate entries (``where``: (node, model) ->
    entry), those not in the list left out: the order in which the
    simulator's kernels add them."""
    rows = sorted((where[(int(c[0]), int(c[1]))], c) for c in down_rho.get("entries", []) if (int(c[0]), int(c[1])) in where)
    return [c for _, c in rows]


def offsets_from_lists(down: dict, entry_of: dict, position: np.ndarray, task_of_type: np.ndarray,
                       group_of_task: dict[int, int], n_groups: int) -> np.ndarray:  # fmt: skip
    """Node v's group offsets (its slice's group order) from the lists its
    downward messages carried: ``down[rho]["entries"]`` rows (node, model,
    hop, cost, share, y); ``entry_of[rho]`` (node, model) -> entry;
    ``position[rho]`` v's hop on rho's path; ``group_of_task`` task -> v's group."""
    out = np.full(n_groups, np.nan)
    types = sorted(down)
    if not types:
        return out
    type_of, hop, y = [], [], []
    listed = [False] * len(types)  # whether v has an entry in the type's list
    for i, rho in enumerate(types):
        for c in rows_in_list_order(down[rho], entry_of[rho]):
            listed[i] = listed[i] or int(c[2]) == int(position[rho])
            type_of.append(i)
            hop.append(int(c[2]))
            y.append(float(c[5]))
    depth = int(max(hop, default=0)) + 2
    o = offsets_above(np.asarray(type_of, np.int64), np.asarray(hop, np.int64), fractional(np.asarray(y)), len(types), depth)
    for i, rho in enumerate(types):
        g = group_of_task.get(int(task_of_type[rho]))
        if g is not None and np.isnan(out[g]) and listed[i]:
            out[g] = o[i, int(position[rho])]
    return out
