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


def group_offsets(rt, y_t: np.ndarray, entry_index: np.ndarray, active: np.ndarray, group_of: np.ndarray) -> np.ndarray:
    """The offset O of every group (NaN where no active type lists it), for
    the whole network. ``group_of``: (V, T) group index of (node, task), -1
    where the node has no free model of the task. One pass over the
    candidate entries (numba); the sums are :func:`offsets_above`'s, in the
    same order."""
    out = np.full(int(group_of.max(initial=-1)) + 1, np.nan)
    if out.size == 0:
        return out
    depth = int(np.diff(rt.path_offsets).max())
    _group_offsets(rt.offsets, rt.hop, rt.node, np.asarray(entry_index, np.int64), np.ascontiguousarray(y_t, dtype=float),
                   np.asarray(active, np.bool_), rt.task, np.ascontiguousarray(group_of), depth, out)  # fmt: skip
    return out


@njit(cache=True, nogil=True)
def _group_offsets(offsets, hop, node, entry_index, y, active, task, group_of, depth, out):  # pragma: no cover - numba
    s = np.zeros(depth)
    o = np.zeros(depth)
    for t in range(offsets.size - 1):
        if not active[t]:
            continue
        a, e = offsets[t], offsets[t + 1] - 1  # the fallback (last) aside
        s[:] = 0.0
        for k in range(a, e):
            v = y[entry_index[k]]
            if v > _SNAP and v < 1.0 - _SNAP:
                s[hop[k]] += v
        o[depth - 1] = 0.0
        for h in range(depth - 2, -1, -1):
            o[h] = o[h + 1] + s[h + 1]
        for k in range(a, e):
            g = group_of[node[k], task[t]]
            if g >= 0 and np.isnan(out[g]):
                out[g] = o[hop[k]]


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
        where = entry_of[rho]
        rows = sorted((where[(int(c[0]), int(c[1]))], c) for c in down[rho].get("entries", []) if (int(c[0]), int(c[1])) in where)
        for _, c in rows:
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
