"""Baselines of design page section 9: online greedy and static greedy
(cloud-only lives in :mod:`idn.policies.base`).

Both rest on :func:`idn.policies.greedy.lazy_greedy`: keys start at the
supergradient of the concave relaxation (a valid upper bound of every marginal
gain, computed for all pairs in one kernel pass) and only the top of the queue
is evaluated exactly, F(x + e_p) - F(x) over the rows that list p.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .base import Policy, register
from .. import serving
from .greedy import lazy_greedy, pair_block_csr
from .params import integer
from .objective import Rows, build_rows, check_trace, layout, slot_shares

TOL = 1e-12  # marginal gains below TOL * G_max count as zero (rounding noise)


def listed_candidates(rows: Rows, fits: np.ndarray) -> np.ndarray:
    """Flat pairs that may be set (fit their node) and appear on some list."""
    listed = np.array([len(b) > 0 for b in rows.pair_blocks])
    return np.flatnonzero(fits.reshape(-1) & listed)


def rows_gain_max(rows: Rows) -> float:
    first, last = rows.offsets[:-1], rows.offsets[1:] - 1
    return float(rows.counts @ (rows.cost[last] - rows.cost[first]))


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
    the slots of a type merged by request count (:mod:`.fast_bound`): an
    upper bound of F that is tight when shares per request move little,
    accumulated slot by slot (no (T, E) arrays: a long trace of a large
    network fits in memory). The greedy then maximizes that surrogate; its
    allocation is evaluated exactly by the simulator like any other."""
    from .fast_bound import MAX_STATIC_ENTRIES, static_rows

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
    offline = True
    state_attrs = ("_x",)

    def _start(self, trace):
        trace = check_trace(self.rt, trace, self.name)
        self._x, self.variants = static_greedy(static_objective(self.rt, trace), self.rt.idn)

    def propose(self) -> np.ndarray:
        return self._x.copy()


@register
class OnlineGreedy(Policy):
    """Every slot, each cache node in turn (node order) empties itself and
    refills its budget greedily by marginal gain per MB, on the requests of
    the last ``window`` slots (each slot with its own shares), given the other
    nodes' current allocations (already refilled for earlier nodes). Same
    information as INFIDA, no guarantee. First slot: permanent pairs only.

    Speed: one supergradient pass over the rows of the node's types gives
    upper bounds of all its marginal gains; lazy greedy then evaluates
    exactly only the queue's top, one kernel call on the rows of one
    (node, task) block each (see :mod:`idn.policies.objective`)."""

    name = "online-greedy"
    defaults = {"window": 10}
    checks = {"window": integer(ge=1, le=10**6)}
    state_attrs = ("_x",)  # and the window of recent slots: state_dict below

    def _start(self, trace):
        window = self.params["window"]
        if not isinstance(window, (int, np.integer)) or isinstance(window, bool) or window < 1:
            raise ValueError(f"policy {self.name!r}: window must be an integer >= 1, got {window!r}")
        idn = self.rt.idn
        self._layout = layout(self.rt, "node-task")
        self._counts: deque = deque(maxlen=int(window))
        self._shares: deque = deque(maxlen=int(window))
        self._x = idn.permanent.astype(float).reshape(-1)
        self._size = np.tile(idn.size_mb, idn.n_nodes)
        listed = np.array([len(b) > 0 for b in self._layout.pair_blocks])
        cand = np.flatnonzero(idn.fits.reshape(-1) & listed)
        cuts = np.searchsorted(self._layout.block_node, np.arange(idn.n_nodes + 1))
        self._grad = np.zeros(idn.n_nodes * idn.n_models)
        self._pair_csr = pair_block_csr(self._layout.pair_blocks)
        # per cache node: its candidate pairs and its contiguous block range
        self._nodes = [
            (v, cand[cand // idn.n_models == v], int(cuts[v]), int(cuts[v + 1]))
            for v in range(idn.n_nodes)
            if not idn.repository[v]
        ]

    def propose(self) -> np.ndarray:
        idn = self.rt.idn
        M = idn.n_models
        if self._counts:
            counts, shares = np.array(self._counts), np.array(self._shares)
            rows = build_rows(self.rt, counts, shares, self._layout)
            tol = TOL * float((counts @ (self.rt.fallback_cost - self.rt.best_cost)).sum())
            x, grad = self._x, self._grad
            for v, cand, b0, b1 in self._nodes:
                x[v * M : (v + 1) * M] = 0.0
                if len(cand) == 0 or b0 == b1:
                    continue
                # upper bounds: the supergradient of v's blocks, in a buffer zeroed where it was written
                # (a fresh (V*M) array and a copy of x per node were most of the time on large networks)
                r0, r1 = int(rows.block_rows[b0]), int(rows.block_rows[b1])
                serving._gain_kernel(rows.offsets[r0 : r1 + 1], rows.pair, rows.cost, rows.share, rows.counts[r0:r1],
                                     x, True, grad)  # fmt: skip
                lazy_greedy(rows, x, cand, self._size, idn.budget_mb, M, True, False, grad, tol, True, self._pair_csr)
                grad[rows.pair[rows.offsets[r0] : rows.offsets[r1]]] = 0.0
            self._x = x
        return self._x.reshape(idn.n_nodes, M).copy()

    def learn(self, counts: np.ndarray, share: np.ndarray) -> None:
        self._counts.append(np.array(counts, dtype=float))
        self._shares.append(np.array(share, dtype=float))

    def state_dict(self) -> dict:
        rt = self.rt
        return {
            **super().state_dict(),
            "recent_counts": np.array(self._counts).reshape(len(self._counts), rt.n_types),
            "recent_shares": np.array(self._shares).reshape(len(self._shares), rt.n_entries),
        }

    def load_state_dict(self, state: dict) -> None:
        from .state import check_array

        state = dict(state)
        counts, shares = state.pop("recent_counts", None), state.pop("recent_shares", None)
        if counts is None or shares is None:
            raise ValueError("state: no entry 'recent_counts' or 'recent_shares'")
        k = counts.shape[0] if isinstance(counts, np.ndarray) and counts.ndim == 2 else -1
        if not 0 <= k <= self._counts.maxlen:
            raise ValueError(f"state 'recent_counts': not a window of at most {self._counts.maxlen} slots")
        counts = check_array("recent_counts", counts, None, (k, self.rt.n_types))
        shares = check_array("recent_shares", shares, None, (k, self.rt.n_entries), allow_inf=True)  # unbounded capacity
        super().load_state_dict(state)
        self._counts.clear(), self._shares.clear()
        self._counts.extend(counts.astype(float)), self._shares.extend(shares.astype(float))
