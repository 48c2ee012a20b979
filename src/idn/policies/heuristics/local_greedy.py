"""Heuristics of INFIDA's complexity (design page, section 9): every node
decides alone, all nodes at once, from what a node of a live IDN sees.

What a node v sees, and nothing more:
- the requests of the request types whose paths pass through it: their
  counts (carried by INFIDA's control messages up the path) and, for the
  requests that physically reach it, where they were finally served (the
  answer comes back along the path);
- the allocations its path neighbours announce, and the capacity shares of
  the candidate entries on its paths (the messages carry them).

``local-greedy``: every slot each node empties itself and refills its budget
greedily, by marginal gain per MB, on the mean counts and shares of the last
``window`` slots, taking every other node's allocation as it was announced
for the slot just served (a Jacobi step: no node waits for another). A
model's value is the cost it saves its requests against what they get
further along their lists. Per slot and node: one pass over the entries at
the node to bound every marginal gain, then exact evaluations (a walk of the
request type's list) of the queue's top only (lazy greedy).

The caches of the same family (``lfu``, ``lru``) are in :mod:`.caching`.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from numba import njit

from ..base import Policy
from ..registry import register
from ..params import integer, number
from ..state import check_array


def _node_pairs(rt):
    """CSR by node of the candidate entries that may be set (non-fallback,
    pair fits its node, node not a repository): (entry order, offsets)."""
    idn = rt.idn
    ok = ~rt.is_fallback & idn.fits.reshape(-1)[rt.pair] & ~idn.repository[rt.node]
    entries = np.flatnonzero(ok)
    entries = entries[np.argsort(rt.pair[entries], kind="stable")]  # grouped by node, then model
    offsets = np.searchsorted(rt.node[entries], np.arange(idn.n_nodes + 1)).astype(np.int64)
    return entries.astype(np.int64), offsets


@njit(cache=True, nogil=True)
def _type_gain(start, last, pair, cost, share, r, x, extra):  # pragma: no cover - numba
    """G_rho(x) with pair ``extra`` set to 1 as well (extra = -1: none).

    The same telescoped sum as serving._gain_kernel's inner loop, for one
    type. Not shared with it on purpose: moving that loop into a called numba
    function (even inline="always") made the per-slot supergradient 3-4x
    slower on 152k entries (0.05 -> 0.15-0.2 ms), and it is INFIDA's hot path.
    tests/test_local_policies.py checks this one against serving.gain."""
    total = 0.0
    cum = 0.0
    kstar = last
    for e in range(start, last):
        p = pair[e]
        cum += share[e] * (1.0 if p == extra else x[p])
        if cum >= r:
            kstar = e
            break
        total += (cost[e + 1] - cost[e]) * cum
    return total + r * (cost[last] - cost[kstar])


@njit(cache=True, nogil=True)
def _local_greedy(offsets, entry_type, pair, cost, share, counts, x_prev, node_entries, node_offsets,
                  size_of_pair, budgets, tol, updating, x_new):  # pragma: no cover - numba
    """Every updating node's greedy refill against x_prev (the others'
    announced allocations); x_new must enter as a copy of x_prev and leaves
    with those nodes' own pairs replaced by their refill."""
    x = x_prev.copy()
    for v in range(node_offsets.size - 1):
        a, b = node_offsets[v], node_offsets[v + 1]
        if a == b or not updating[v]:
            continue
        # the node's distinct pairs (entries are grouped by pair)
        n_pairs = 0
        for k in range(a, b):
            if k == a or pair[node_entries[k]] != pair[node_entries[k - 1]]:
                n_pairs += 1
        first = np.empty(n_pairs + 1, np.int64)
        j = 0
        for k in range(a, b):
            if k == a or pair[node_entries[k]] != pair[node_entries[k - 1]]:
                first[j] = k
                j += 1
        first[n_pairs] = b
        saved = np.empty(n_pairs)
        for j in range(n_pairs):
            p = pair[node_entries[first[j]]]
            saved[j] = x[p]
            x[p] = 0.0
        # upper bounds: each pair's marginal gain alone on the emptied node
        ub = np.zeros(n_pairs)
        for j in range(n_pairs):
            p = pair[node_entries[first[j]]]
            ub[j] = _pair_marginal(first[j], first[j + 1], node_entries, offsets, entry_type, pair, cost, share,
                                   counts, x, p)
        chosen = np.zeros(n_pairs, np.bool_)
        left = budgets[v]
        while True:
            best, best_ratio, second_ratio = -1, 0.0, 0.0
            for j in range(n_pairs):
                if chosen[j] or ub[j] <= tol:
                    continue
                s = size_of_pair[pair[node_entries[first[j]]]]
                if s > left * (1.0 + 1e-12):
                    continue
                ratio = ub[j] / s
                if ratio > best_ratio:
                    second_ratio = best_ratio
                    best, best_ratio = j, ratio
                elif ratio > second_ratio:
                    second_ratio = ratio
            if best < 0:
                break
            p = pair[node_entries[first[best]]]
            gain = _pair_marginal(first[best], first[best + 1], node_entries, offsets, entry_type, pair, cost, share,
                                  counts, x, p)
            s = size_of_pair[p]
            ub[best] = gain
            if gain <= tol:
                continue
            if gain / s >= second_ratio:  # still on top: take it
                chosen[best] = True
                x[p] = 1.0
                left -= s
        for j in range(n_pairs):
            p = pair[node_entries[first[j]]]
            x_new[p] = 1.0 if chosen[j] else 0.0
            x[p] = saved[j]  # the other nodes see v as it was announced
    return x_new


@njit(cache=True, nogil=True)
def _pair_marginal(k0, k1, node_entries, offsets, entry_type, pair, cost, share, counts, x, p):  # pragma: no cover
    """Marginal gain of setting pair p, over the types that list it."""
    total = 0.0
    for k in range(k0, k1):
        t = entry_type[node_entries[k]]
        r = counts[t]
        if r <= 0.0:
            continue
        start, last = offsets[t], offsets[t + 1] - 1
        total += _type_gain(start, last, pair, cost, share, r, x, p) - _type_gain(start, last, pair, cost, share, r, x, -1)
    return total


@register
class LocalGreedy(Policy):
    """Each node refills its budget greedily on its own observed marginal
    gains, all nodes at once (module docstring)."""

    name = "local-greedy"
    knows = "online"
    summary = "each node refills greedily on its own observed marginal gains of the last window slots"
    defaults = {"window": 10, "update_prob": 1.0}
    checks = {"window": integer(ge=1, le=10**6), "update_prob": number(gt=0, le=1)}

    needs_lists = True  # live, a node needs the whole list of each type through it (runtime/control.py)

    def _start(self, trace):
        idn = self.rt.idn
        self._counts: deque = deque(maxlen=int(self.params["window"]))
        self._shares: deque = deque(maxlen=int(self.params["window"]))
        self._entries, self._node_offsets = _node_pairs(self.rt)
        self._size_of_pair = np.tile(idn.size_mb, idn.n_nodes)
        self._x = idn.permanent.astype(float).reshape(-1)
        self._only = None

    def start_nodes(self, idn, nodes, seed: int = 0) -> LocalGreedy:
        """The live runtime's form: request types for every node as a source
        (as the live nodes build them), and only ``nodes`` refill; each slot
        :meth:`learn_view` gives what the node saw. With the same seed, a
        node's refills are the simulator's (the same uniforms decide whether
        it refills)."""
        from ...model.request_types import build_request_types

        self.start(build_request_types(idn, [n.id for n in idn.nodes]), seed)
        self._only = np.zeros(idn.n_nodes, bool)
        self._only[np.asarray(nodes, dtype=np.int64)] = True
        return self

    def state(self) -> np.ndarray:
        """The allocation held, (V, M): what a node announces in its control messages."""
        return self._x.reshape(self.rt.idn.n_nodes, self.rt.idn.n_models).copy()

    def learn_view(self, counts: np.ndarray, share: np.ndarray, held: dict[int, float]) -> None:
        """A live node's slot: the counts and shares of the request types
        through it (zero elsewhere) and the allocation every node on their
        lists held ({flat pair: 0/1}, from the messages)."""
        pairs = np.fromiter(held.keys(), dtype=np.int64, count=len(held))
        self._x[pairs] = np.fromiter(held.values(), dtype=float, count=len(held))
        self.learn(counts, share)

    def propose(self) -> np.ndarray:
        idn = self.rt.idn
        if self._counts:
            counts = np.mean(self._counts, axis=0)
            share = np.mean(self._shares, axis=0)
            tol = 1e-12 * float(counts @ (self.rt.fallback_cost - self.rt.best_cost))
            rt = self.rt
            # nodes that refill this slot: all, or a random part of them (update_prob < 1 damps the
            # oscillation of simultaneous refills: two nodes on a path dropping or taking the same model)
            updating = self.rng.random(idn.n_nodes) < float(self.params["update_prob"])
            if self._only is not None:
                updating &= self._only
            self._x = _local_greedy(rt.offsets, rt.entry_type, rt.pair, rt.cost, share, counts, self._x,
                                    self._entries, self._node_offsets, self._size_of_pair, idn.budget_mb, tol,
                                    updating, self._x.copy())  # fmt: skip
        return self._x.reshape(idn.n_nodes, idn.n_models).copy()

    def learn(self, counts: np.ndarray, share: np.ndarray) -> None:
        self._counts.append(np.asarray(counts, dtype=float))
        self._shares.append(np.asarray(share, dtype=float))

    state_attrs = ("_x",)

    def state_dict(self) -> dict:
        """The allocation, the rng and the window of counts and shares (as (n, R) and (n, E) arrays)."""
        st = super().state_dict()
        st["window_counts"] = np.array(self._counts).reshape(len(self._counts), self.rt.n_types)
        st["window_shares"] = np.array(self._shares).reshape(len(self._shares), self.rt.n_entries)
        return st

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        counts = check_array("window_counts", state.pop("window_counts", None), None)
        shares = check_array("window_shares", state.pop("window_shares", None), None, allow_inf=True)
        n = len(counts)
        if counts.shape != (n, self.rt.n_types) or shares.shape != (n, self.rt.n_entries) or n > self._counts.maxlen:
            raise ValueError(f"state 'window_counts': shapes {counts.shape} and {shares.shape} do not fit the window")
        super().load_state_dict(state)
        self._counts.clear()
        self._shares.clear()
        self._counts.extend(counts)
        self._shares.extend(shares)
