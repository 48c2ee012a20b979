"""Upper bounds on the total gain of a trace (design page section 9), for
``idn bound`` and the run summaries.

Two methods: ``lp`` (HiGHS, exact LP values, :mod:`.lp`) and ``fast``
(Lagrangian, no solver, O(entries) per iteration, :mod:`.fast`);
``auto`` takes the LP while its per-slot programs are small. Both are
certified upper bounds; :func:`certified_bounds` also reports the best
feasible gain it found and the gap between the two.
"""

from __future__ import annotations

import time

import numpy as np

from .. import serving
from ..model.request_types import RequestTypes
from ..problem.program import STATIC_LP_MAX_VARIABLES, n_continuous
from ..problem.static_rows import Progress
from .fast import fast_bounds, round_down
from .lagrange import Lagrangian
from .lp import per_slot_lp_bound, static_lp


BOUND_METHODS = ("auto", "lp", "fast", "none")
# auto: the LP up to this many continuous variables over the whole trace (the
# demo's 300 slots x 2571 entries, ~9 s of HiGHS), the fast bound past it
AUTO_LP_MAX_VARIABLES = 1_000_000


def bounds(rt: RequestTypes, trace: np.ndarray, max_variables: int = STATIC_LP_MAX_VARIABLES) -> dict[str, float]:
    """static_lp_bound: no static allocation gains more over the trace;
    per_slot_lp_bound: no policy at all does. static_lp_merge is 1 when the
    static bound is the exact LP optimum, else how many distinct rows were
    merged per row to fit max_variables (a valid, looser bound)."""
    static, _, group = static_lp(rt, trace, max_variables)
    per_slot = per_slot_lp_bound(rt, trace)
    return {
        # a static allocation is a policy too: when merging loosened the static bound, the other may be lower
        "static_lp_bound": min(static, per_slot),
        "per_slot_lp_bound": per_slot,
        "static_lp_merge": group,
    }


def choose_method(rt: RequestTypes, trace: np.ndarray, method: str = "auto") -> str:
    """The method ``auto`` stands for on this trace (others are returned as given)."""
    if method not in BOUND_METHODS:
        raise ValueError(f"bound method {method!r} is not one of {', '.join(BOUND_METHODS)}")
    if method != "auto":
        return method
    return "lp" if n_continuous(rt, np.asarray(trace)) <= AUTO_LP_MAX_VARIABLES else "fast"


def gap(bound: float, feasible: float) -> float | None:
    """The certified relative distance (bound - feasible) / feasible (None without a feasible gain)."""
    if feasible <= 0:
        return None
    return max(0.0, (bound - feasible) / feasible) if bound >= feasible * (1 - 1e-12) else (bound - feasible) / feasible


def certified_bounds(
    rt: RequestTypes, trace: np.ndarray, method: str = "auto", progress: Progress | None = None
) -> dict:
    """The static and per-slot bounds by ``method`` (lp, fast or auto), with
    method (the one used), seconds, best_feasible (the total gain of a
    static allocation found on the way: the bound's fractional point rounded
    down to the budgets), gap (static bound vs best_feasible),
    per_slot_feasible and per_slot_gap (the same for the per-slot bound and a
    dynamic allocation). Callers that know a better feasible gain (a policy's
    run) recompute the gaps with :func:`gap`."""
    t0 = time.perf_counter()
    trace = np.ascontiguousarray(trace, dtype=float)
    used = choose_method(rt, trace, method)
    if used == "none":
        raise ValueError("certified_bounds: method 'none' computes no bound")
    if used == "lp":
        static, y, group = static_lp(rt, trace)
        per_slot = per_slot_lp_bound(rt, trace)
        out = {"static_lp_bound": min(static, per_slot), "per_slot_lp_bound": per_slot, "static_lp_merge": group}
        lag = Lagrangian(rt.idn)
        x = lag.nodes.dense(round_down(lag, y.reshape(-1)[lag.nodes.flat_index]))
        feasible = sum(serving.gain(rt, trace[t], x) for t in range(trace.shape[0]))
        out["per_slot_feasible"] = float(feasible)  # a static allocation is a policy too
    else:
        fb = fast_bounds(rt, trace, progress=progress)
        out = {"static_lp_bound": fb.static, "per_slot_lp_bound": fb.per_slot, "static_lp_merge": int(fb.merged) + 1}
        feasible = fb.static_feasible
        out["per_slot_feasible"] = max(fb.per_slot_feasible, feasible)
    out["method"] = used
    out["seconds"] = time.perf_counter() - t0
    out["best_feasible"] = float(feasible)
    out["gap"] = gap(out["static_lp_bound"], feasible)
    out["per_slot_gap"] = gap(out["per_slot_lp_bound"], out["per_slot_feasible"])
    return out
