"""Static greedy (design page section 9): offline, it knows the whole trace
and keeps one greedy allocation for F(x) = sum_t G_t(x), the classic greedy
for a submodular function under knapsacks (:func:`static_greedy`).
"""

from __future__ import annotations

import numpy as np

from ...problem.greedy import TOL, lazy_greedy, listed_candidates, pair_block_csr, rows_gain_max
from ...problem.objective import Rows, build_rows, check_trace, layout, slot_shares
from ...problem.static_rows import MAX_STATIC_ENTRIES, static_rows
from ..base import Policy
from ..registry import register


def static_greedy(rows: Rows, idn) -> tuple[np.ndarray, dict[str, float]]:
    """The best of four greedy allocations for max F(x) under the node budgets.

    - "ratio": greedy by marginal gain per MB;
    - "gain": greedy by marginal gain (its first pick is the best single pair);
    - "fit-part" / "overflow-part": the analysis' run, greedy by gain per MB
      where the best pair is taken even when it overflows its node, which then
      closes; its fitting pairs S and its overflow pairs O (at most one per
      node) are each feasible, and each is completed by ratio greedy.

    Guarantee, from the overflow run S' = S + O: every pair it took at a closed
    node v had a gain per MB at least rho_v (the ratio when v closed) and they
    fill more than b_v, so they gained more than rho_v b_v, which bounds what
    OPT's pairs at v add to S'; at open nodes OPT's pairs add nothing. Hence
    F(S') >= OPT / 2, and max(F(S), F(O)) >= OPT / 4 by submodularity. With a
    single cache node this is Khuller-Moss-Naor's (1 - 1/e) / 2. Returns the
    best allocation (V, M) and the value of each variant."""
    V, M = idn.n_nodes, idn.n_models
    size = np.tile(idn.size_mb, V)
    base = idn.permanent.astype(float).reshape(-1)
    cand = listed_candidates(rows, idn.fits)
    tol = TOL * rows_gain_max(rows)
    upper0 = rows.supergradient(base)
    pair_csr = pair_block_csr(rows.pair_blocks)

    def run(start, ratio=True, overflow=False, upper=None):
        used = (start.reshape(V, M) * (~idn.permanent)) @ idn.size_mb
        todo = cand[start[cand] < 0.5]
        upper = rows.supergradient(start) if upper is None else upper
        return lazy_greedy(rows, start, todo, size, idn.budget_mb - used, M, ratio, overflow, upper, tol, False, pair_csr)

    variants = {"ratio": run(base, upper=upper0).x, "gain": run(base, ratio=False, upper=upper0).x}
    probe = run(base, overflow=True, upper=upper0)
    if probe.overflow:
        fit, over = base.copy(), base.copy()
        fit[probe.added] = 1.0
        over[probe.overflow] = 1.0
        variants["fit-part"] = run(fit).x
        variants["overflow-part"] = run(over).x
    values = {name: rows.gain(x) for name, x in variants.items()}
    best = max(values, key=lambda k: values[k])  # ties: the first listed
    return variants[best].reshape(V, M), values


def static_objective(rt, trace: np.ndarray, max_entries: int | None = None) -> Rows:
    """F(x) = sum_t G_t(x) as rows by type: exact (one row per type and slot)
    up to max_entries stacked entries (default: the fast bound's), past it
    the slots of a type merged by request count (:mod:`idn.problem.static_rows`): an
    upper bound of F that is tight when shares per request move little,
    accumulated slot by slot (no (T, E) arrays: a long trace of a large
    network fits in memory). The greedy then maximizes that surrogate; its
    allocation is evaluated exactly by the simulator like any other."""
    lay = layout(rt, "type")
    limit = MAX_STATIC_ENTRIES if max_entries is None else max_entries
    if int((trace > 0).sum(axis=0) @ rt.list_length) <= limit:
        return build_rows(rt, trace, slot_shares(rt, trace), lay)
    merged, _ = static_rows(rt, trace, rt.pair, 0, None)
    return Rows(
        offsets=merged.offsets, pair=merged.index, cost=merged.cost, share=merged.share, counts=merged.counts,
        row_type=merged.row_type, block_rows=np.searchsorted(merged.row_type, np.arange(rt.n_types + 1)),
        pair_blocks=lay.pair_blocks, n_pairs=rt.idn.n_nodes * rt.idn.n_models,
    )  # fmt: skip


@register
class StaticGreedy(Policy):
    """Offline: knows the whole trace and keeps the greedy allocation of
    :func:`static_greedy` for F(x) = sum_t G_t(x) (design page section 9).
    ``variants`` holds each greedy variant's total gain after start()."""

    name = "static-greedy"
    knows = "offline"
    summary = "the greedy static allocation for the whole trace"
    offline = True
    state_attrs = ("_x",)

    def _start(self, trace):
        trace = check_trace(self.rt, trace, self.name)
        self._x, self.variants = static_greedy(static_objective(self.rt, trace), self.rt.idn)

    def propose(self) -> np.ndarray:
        return self._x.copy()
