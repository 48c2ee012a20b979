"""Task-grouped rounding (docs/model.md, section 12.2): per node, the models
of one task are drawn together, so that a node whose state holds "one model
of this task, split between three" draws one of them, not two or none.

Why. A request type's gain is concave in the y of its candidates: the
relaxation serves a task's requests with 0.4 of a large model and 0.6 of a
small one, but the pooled dependent rounding (:mod:`.rounding`) pairs
models by size across tasks, so the two are drawn nearly independently:
both (one wasted) or neither (requests sent further up). On the 1111-node
tree this is most of INFIDA's rounding loss (benchmarks/bench_rounding_loss.py).

The draw, per node:
1. per task, systematic (Madow) sampling on the task's fractional models in
   a fixed order with one uniform u: model j is drawn when an integer falls
   in [c_j - u, c_{j+1} - u), c the running sum of y. E[x_j] = y_j exactly,
   and the task gets floor or ceil of sum_j y_j models: the draws of one task
   are as exclusive as their marginals allow; models at 1 are always drawn;
2. the draw can exceed the budget (sizes differ; the relaxation's budget
   is on s.y): while it does, the drawn model of least y that the state is
   not sure of (y < 1) is dropped.
What it gives up: step 2 lowers the marginals of the models it drops, so
E[x] <= y, not = y, and the rounding step of the (1 - 1/e) argument holds
only approximately; the fill that follows (``fill``) adds models back in
decreasing y. tests/test_guarantee.py measures the guarantee with it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_SNAP = 1e-12


@njit(cache=True, nogil=True)
def _grouped(y, s, offsets, budgets, group_start, coins, x):  # pragma: no cover - numba
    """x (uint8, zeroed) for every node. group_start: for each position of
    the flat layout, whether a new (node, task) group starts there (the
    layout is sorted by node then task). One coin per group, in group order."""
    g = -1
    c = 0.0
    u = 0.0
    for r in range(y.size):
        if group_start[r]:
            g += 1
            c = 0.0
            u = coins[g]
        v = y[r]
        if v >= 1.0 - _SNAP:
            x[r] = 1
            continue
        if v <= _SNAP:
            continue
        lo = c
        c += v
        if np.floor(c - u) > np.floor(lo - u):
            x[r] = 1
    for n in range(offsets.size - 1):
        a, e = offsets[n], offsets[n + 1]
        used = 0.0
        for r in range(a, e):
            if x[r]:
                used += s[r]
        tol = 1e-9 * max(1.0, budgets[n])
        while used > budgets[n] + tol:
            worst = -1
            for r in range(a, e):  # the drawn model of least y, sure ones last
                if x[r] and (worst < 0 or (y[r] < 1.0 - _SNAP and (y[worst] >= 1.0 - _SNAP or y[r] < y[worst]))):
                    worst = r
            x[worst] = 0
            used -= s[worst]


@njit(cache=True, nogil=True)
def _coordinated(coins, task_coins, group_task, offsets, out):  # pragma: no cover - numba
    """out[g] = (U_task - offset) mod 1, or the group's own coin where its offset is NaN (:mod:`.coordination`)."""
    for g in range(offsets.size):
        o = offsets[g]
        out[g] = coins[g] if np.isnan(o) else (task_coins[group_task[g]] - o) % 1.0


def group_starts(node_of: np.ndarray, task_of: np.ndarray) -> np.ndarray:
    """(n,) bool: where a (node, task) group starts in a layout sorted by
    node then task (raises if it is not)."""
    key = node_of.astype(np.int64) * (int(task_of.max(initial=0)) + 1) + task_of.astype(np.int64)
    if np.any(np.diff(key) < 0):
        raise ValueError("the grouped rounding needs each node's coordinates in task order")
    start = np.ones(key.size, dtype=bool)
    start[1:] = key[1:] != key[:-1]
    return start


def slice_groups(fits: np.ndarray, task_of_model: np.ndarray, kept_nodes: np.ndarray) -> tuple[int, np.ndarray]:
    """(number of groups of the whole network, the indices of those of the
    kept nodes): ``fits`` is the (V, M) mask of the free coordinates."""
    node_of, model_of = np.nonzero(fits)
    starts = group_starts(node_of, np.asarray(task_of_model)[model_of])
    group_node = node_of[starts]
    keep = np.zeros(fits.shape[0], dtype=bool)
    keep[np.asarray(kept_nodes, dtype=np.int64)] = True
    return int(starts.sum()), np.flatnonzero(keep[group_node])


class GroupedRounding:
    """Task-grouped rounding for many nodes (flat layout, CSR ``node_offsets``,
    coordinates of a node in task order). ``coupled``: the uniforms are drawn
    once and kept (a fixed function of y, low churn), else fresh each call."""

    def __init__(self, sizes, budgets, node_offsets, node_of, task_of, coupled: bool = False, draw_groups=None,
                 n_tasks: int | None = None):  # fmt: skip
        self.sizes = np.ascontiguousarray(sizes, dtype=float)
        self.budgets = np.ascontiguousarray(budgets, dtype=float)
        self.node_offsets = np.ascontiguousarray(node_offsets, dtype=np.int64)
        self.starts = group_starts(np.asarray(node_of), np.asarray(task_of))
        self.n_groups = int(self.starts.sum())
        self.group_task = np.asarray(task_of, dtype=np.int64)[self.starts]
        self.n_tasks = int(n_tasks) if n_tasks is not None else int(self.group_task.max(initial=-1)) + 1
        self.coupled = coupled
        self.name = "coupled" if coupled else "fresh"
        self._coins = None
        self._task_coins = None  # one uniform per task, shared by the nodes of a path (:mod:`.coordination`)
        # (n, index): draw n uniforms and keep these: a live node's slice
        # draws what the whole-network rounding gives its groups
        self._draw_groups = draw_groups

    def round(self, y, rng: np.random.Generator, group_offsets: np.ndarray | None = None) -> np.ndarray:
        """A draw from y. ``group_offsets`` (one per group, NaN for none):
        the path-coordinated draw of :mod:`.coordination`, where group g's
        uniform is (U_task - offset) mod 1; the task uniforms U are drawn
        after the groups' own (so the independent coins stay those without)."""
        y = np.ascontiguousarray(y, dtype=float)
        if self._coins is None or not self.coupled:
            if self._draw_groups is None:
                self._coins = rng.random(self.n_groups)
            else:
                n, index = self._draw_groups
                self._coins = rng.random(n)[index]
        coins = self._coins
        if group_offsets is not None:
            if self._task_coins is None or not self.coupled:
                self._task_coins = rng.random(self.n_tasks)
            out = np.empty(self.n_groups)
            _coordinated(coins, self._task_coins, self.group_task, np.ascontiguousarray(group_offsets, dtype=float), out)
            coins = out
        x = np.zeros(y.size, dtype=np.uint8)
        _grouped(y, self.sizes, self.node_offsets, self.budgets, self.starts, np.ascontiguousarray(coins), x)
        return x.view(bool)
