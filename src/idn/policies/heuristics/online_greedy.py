"""Online greedy (design page section 9): a centralized heuristic with more
information than INFIDA. Every slot each node in turn refills its budget
greedily on the requests of a recent window, given the others' current
allocations.

It rests on :func:`idn.problem.greedy.lazy_greedy`: keys start at the
supergradient of the concave relaxation (a valid upper bound of every marginal
gain, computed for all pairs in one kernel pass) and only the top of the queue
is evaluated exactly, F(x + e_p) - F(x) over the rows that list p.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ... import serving
from ...problem.greedy import TOL, lazy_greedy, pair_block_csr
from ...problem.objective import build_rows, layout
from ..base import Policy
from ..registry import register
from ..params import integer
from ..state import check_array


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
    (node, task) block each (see :mod:`idn.problem.objective`)."""

    name = "online-greedy"
    knows = "centralized"
    summary = "node after node refills greedily on the whole network's requests of the last window slots"
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
