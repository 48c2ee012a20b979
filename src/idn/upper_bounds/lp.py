"""The LP upper bounds of design page section 9 (HiGHS, exact LP values):
the static bound (max over one fractional y of sum_t G_t(y)) and the
per-slot bound (sum_t max_y G_t(y), which bounds every policy). The program
is :mod:`idn.problem.program`'s."""

from __future__ import annotations

import numpy as np

from ..model.request_types import RequestTypes
from ..problem.objective import build_rows, check_trace, layout, slot_shares
from ..problem.program import STATIC_LP_MAX_VARIABLES, build_program, dense_allocation, exact_rows, merge_rows, solve


def static_lp(rt: RequestTypes, trace: np.ndarray, max_variables: int = STATIC_LP_MAX_VARIABLES):
    """(bound, maximizer y (V, M), group): see :func:`static_lp_bound`; group
    1 means the value is the exact LP optimum, more means a looser bound."""
    trace = check_trace(rt, trace, "static LP bound")
    rows = exact_rows(rt, trace)
    need = lambda r: int(np.diff(r.offsets).sum() - r.n_rows)  # noqa: E731  u variables
    group = 1
    if need(rows) > max_variables:
        # fewest merges that fit: the row count per type shrinks about as 1/group
        group = max(2, int(np.ceil(need(rows) / max_variables)))
        while True:  # ends at one row per type at the latest
            merged = merge_rows(rows, rt.list_length, group)
            if need(merged) <= max_variables or group >= rows.n_rows:
                break
            group = min(rows.n_rows, int(np.ceil(group * 1.25)))
        rows = merged
    prog = build_program(rt, rows)
    value, x_vals = solve(prog, integral=False, who="static LP bound")
    return value, dense_allocation(rt, prog, x_vals), group


def static_lp_bound(
    rt: RequestTypes, trace: np.ndarray, max_variables: int = STATIC_LP_MAX_VARIABLES
) -> tuple[float, np.ndarray]:
    """An upper bound on the total gain of any static allocation over the
    (T, R) trace: max over y in [0,1] within budgets of sum_t G_t(y), and its
    maximizer y (V, M). Exact (rows with equal shares per request merged)
    while the LP has at most max_variables continuous variables; past that,
    runs of similar rows are merged too (:func:`merge_rows`), which keeps a
    valid but looser bound, and y maximizes the merged program."""
    value, y, _ = static_lp(rt, trace, max_variables)
    return value, y


def per_slot_lp_bound(rt: RequestTypes, trace: np.ndarray) -> float:
    """sum_t max_y G_t(y): an upper bound on the total gain of any policy,
    dynamic ones included. Each slot is its own LP (slots with equal counts
    are solved once)."""
    trace = check_trace(rt, trace, "per-slot LP bound")
    lay = layout(rt, "type")
    solved: dict[bytes, float] = {}
    total = 0.0
    for t in range(trace.shape[0]):
        key = trace[t].tobytes()
        if key not in solved:
            counts = trace[t : t + 1]
            prog = build_program(rt, build_rows(rt, counts, slot_shares(rt, counts), lay))
            solved[key] = solve(prog, integral=False, who=f"per-slot LP bound, slot {t}")[0]
        total += solved[key]
    return total
