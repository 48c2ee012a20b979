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

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from .. import serving
from ..model.request_types import RequestTypes
from .lagrange import Lagrangian, RowSet

MAX_STATIC_ENTRIES = 4_000_000  # stacked (type, slot) entries kept exactly; past it, rows merge by count
Progress = Callable[[str, int, int], None]  # (phase, done, total)


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
def _accumulate(type_offsets, row_of_type, row_offsets, share, counts, m_share, m_counts):  # pragma: no cover - numba
    """Add one slot's shares and counts into the merged rows (row_of_type[rho] < 0: no requests)."""
    for rho in range(len(type_offsets) - 1):
        j = row_of_type[rho]
        if j < 0:
            continue
        m_counts[j] += counts[rho]
        a, b = type_offsets[rho], row_offsets[j]
        for k in range(type_offsets[rho + 1] - a - 1):  # the fallback's share stays 0: never read
            m_share[b + k] += share[a + k]


def _row_keys(trace: np.ndarray, exact: bool) -> np.ndarray:
    """(T, R) row key per (slot, type) with requests, -1 without: the slot
    itself (exact) or the request count (merged)."""
    T = trace.shape[0]
    key = np.broadcast_to(np.arange(T)[:, None], trace.shape) if exact else np.rint(trace).astype(np.int64)
    return np.where(trace > 0, key, -1)


def static_rows(rt: RequestTypes, trace: np.ndarray, index: np.ndarray, max_entries: int, progress: Progress | None):
    """The static problem's rows (see the module docstring) and whether they
    merge. index maps each entry to the state coordinate its rows read (the
    free layout for the bound, rt.pair for a flat (V*M) allocation)."""
    T, R = trace.shape
    exact = int((trace > 0).sum(axis=0) @ rt.list_length) <= max_entries
    keys = _row_keys(trace, exact)
    # one row per distinct (type, key): type-major, so a type's rows are contiguous
    flat = np.where(keys >= 0, np.arange(R)[None, :] * (keys.max() + 2) + keys, -1)
    uniq, inv = np.unique(flat, return_inverse=True)
    inv = inv.reshape(T, R)
    if uniq.size and uniq[0] == -1:
        inv = inv - 1  # -1 marks (slot, type) without requests
        uniq = uniq[1:]
    row_type = (uniq // (keys.max() + 2)).astype(np.int64)
    lengths = rt.list_length[row_type]
    offsets = np.zeros(len(row_type) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    src = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1] - rt.offsets[row_type], lengths)
    share = np.zeros(offsets[-1])
    counts = np.zeros(len(row_type))
    for t in range(T):
        _accumulate(rt.offsets, inv[t], offsets, serving.capacity_share(rt, trace[t]), trace[t], share, counts)
        if progress and (t % 50 == 49 or t == T - 1):
            progress("static rows", t + 1, T)
    rows = RowSet(offsets, index[src], rt.cost[src], share, counts)
    rows.row_type = row_type  # type-major: a type's rows are contiguous
    return rows, not exact


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
