"""The fast (Lagrangian) bounds of a whole trace, static and per slot, with
no LP solver (docs/model.md, "The fast bound"; the machinery is
:mod:`.lagrange`).

Static: max over one y of sum_t G_t(y). Its rows are (type, slot); past
``max_entries`` stacked entries the slots of a type are merged by request
count: a merged row has r = sum r_t and l = sum l_t, and since
sum_t min(a_t, b_t) <= min(sum a_t, sum b_t) its G bounds the sum of the
merged rows' G from above for every y, so the bound stays valid. Slots with
the same count and the same capacity shares per request merge exactly, and
shares per request move little between slots of one count (they are capped
at 1 and split by a demand that aggregates many types), so the merge is tight.
The rows are accumulated slot by slot: no (T, E) array.

Per slot: each slot's own Lagrangian, warm-started from the previous slot's
multipliers and fractional state (one row per request type, the same layout
every slot). The sum bounds every policy, dynamic ones included.

Both also give a feasible gain to measure the bound against: the fractional
point rounded down to the budgets (pairs by decreasing y, each taken when it
fits), evaluated exactly on the trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from .. import serving
from ..model.request_types import RequestTypes
from ..problem.static_rows import MAX_STATIC_ENTRIES, Progress, RowSet, static_rows
from .lagrange import Lagrangian



@dataclass
class FastBounds:
    static: float
    per_slot: float
    static_feasible: float  # total gain of the rounded static point
    per_slot_feasible: float  # total gain of the per-slot rounded points (a dynamic allocation)
    static_y: np.ndarray  # (V, M) the static fractional point
    rows: int  # static rows after merging
    merged: bool
    iterations: dict = field(default_factory=dict)


@njit(cache=True, nogil=True)
def _round_down(y, sizes, offsets, budgets, x):  # pragma: no cover - numba
    for v in range(len(offsets) - 1):
        a, e = offsets[v], offsets[v + 1]
        left = budgets[v]
        for i in np.argsort(-y[a:e]):
            if y[a + i] > 0.0 and sizes[a + i] <= left + 1e-9:
                x[a + i] = 1.0
                left -= sizes[a + i]


def round_down(lag: Lagrangian, y: np.ndarray) -> np.ndarray:
    """A feasible 0/1 point from a fractional one: per node, pairs by
    decreasing y, each taken when it still fits (free layout)."""
    n = lag.nodes
    x = np.zeros_like(y)
    _round_down(y, n.sizes, n.offsets, n.budgets, x)
    return x


def fast_bounds(
    rt: RequestTypes,
    trace: np.ndarray,
    tol: float = 2e-3,
    max_iter: int = 400,
    slot_tol: float = 5e-3,
    slot_iter: int = 20,
    max_entries: int = MAX_STATIC_ENTRIES,
    progress: Progress | None = None,
) -> FastBounds:
    """Static and per-slot fast bounds of a (T, R) count trace, and the
    feasible gains they are measured against (module docstring)."""
    lag = Lagrangian(rt.idn)
    index = lag.entry_index(rt)
    T = trace.shape[0]
    rows, merged = static_rows(rt, trace, index, max_entries, progress)
    static = lag.solve(rows, tol=tol, max_iter=max_iter)
    if progress:
        progress("static bound", 1, 1)
    x_static = lag.nodes.dense(round_down(lag, static.y)).reshape(-1)

    per_slot = static_feasible = per_slot_feasible = 0.0
    y, lam, iters = static.y, None, 0
    for t in range(T):
        counts = trace[t]
        share = serving.capacity_share(rt, counts)
        static_feasible += serving._gain_kernel(rt.offsets, rt.pair, rt.cost, share, counts, x_static, False, np.empty(0))
        if counts.sum() > 0:
            slot = RowSet(rt.offsets, index, rt.cost, share, counts)
            sol = lag.solve(slot, y0=y, lam0=lam, tol=slot_tol, max_iter=slot_iter)
            per_slot += sol.upper
            y, lam, iters = sol.y, sol.lam, iters + sol.iterations
            x_t = round_down(lag, sol.y)
            per_slot_feasible += serving._gain_kernel(rt.offsets, index, rt.cost, share, counts, x_t, False, np.empty(0))
        if progress and (t % 10 == 9 or t == T - 1):
            progress("per-slot bound", t + 1, T)
    return FastBounds(
        static=min(static.upper, per_slot),  # a static allocation is a policy too
        per_slot=per_slot,
        static_feasible=float(static_feasible),
        per_slot_feasible=float(per_slot_feasible),
        static_y=lag.nodes.dense(static.y),
        rows=rows.n_rows,
        merged=merged,
        iterations={"static": static.iterations, "per_slot_mean": iters / max(1, T)},
    )
