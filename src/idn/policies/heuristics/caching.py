"""Model caching with eviction, as a model server does it: heuristics of
INFIDA's complexity (design page, section 9), each node deciding alone from
the requests that reach it (what a node sees: :mod:`.local_greedy`).

``lfu`` / ``lru``: model caching with eviction, as a model server does it.
After each slot, node v looks at the requests that reached it: if the
cheapest entry of a request's list at v is a model v does not host and it
beats the entry that actually served the request, that is a miss for the
model. Missed models are loaded, most-missed first, evicting hosted models
in least-frequently (lfu: exponentially decayed count of hits and misses,
``window`` slots half-life) or least-recently (lru: last slot with a hit or
a miss) used order until the newcomer fits. LFU loads a model only when it
is used more than every model it would evict (frequency-based admission,
which keeps one unlucky slot from flushing the cache); LRU always loads.
Per slot: one pass over the entries of every type with requests.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ... import serving
from ..base import Policy
from ..registry import register
from ..params import number


@njit(cache=True, nogil=True)
def _observe(offsets, path_offsets, path_nodes, node, hop, pair, cost, served, counts, x, settable, hits, misses):  # pragma: no cover
    """Hits (requests served by a cached pair) and misses (requests that
    reached a node whose best entry for them is a pair it does not host and
    that beats where they were served) of one slot."""
    for t in range(offsets.size - 1):
        if counts[t] <= 0.0:
            continue
        start, last = offsets[t], offsets[t + 1] - 1
        for e in range(start, last):
            if served[e] > 0.0 and settable[pair[e]]:
                hits[pair[e]] += served[e]
        for j in range(path_offsets[t + 1] - path_offsets[t] - 1):  # the repository never misses
            best = -1
            for e in range(start, last):  # sorted by cost: the first entry at hop j is the node's best
                if hop[e] == j:
                    best = e
                    break
            if best < 0 or x[pair[best]] > 0.5 or not settable[pair[best]]:
                continue
            m = 0.0
            for e in range(start, last + 1):  # requests that reached hop j and were served at a costlier entry
                if hop[e] >= j and cost[e] > cost[best]:
                    m += served[e]
            if m > 0.0:
                misses[pair[best]] += m


@njit(cache=True, nogil=True)
def _admit(x, n_models, size, budgets, settable, misses, score, lfu):  # pragma: no cover - numba
    """Load missed models node by node, most-missed first, evicting the
    lowest-score hosted models (score: frequency or last use)."""
    n_nodes = budgets.size
    for v in range(n_nodes):
        base = v * n_models
        used = 0.0
        for m in range(n_models):
            if x[base + m] > 0.5 and settable[base + m]:
                used += size[m]
        fresh = np.zeros(n_models, np.bool_)
        while True:
            c, most = -1, 0.0
            for m in range(n_models):
                p = base + m
                if misses[p] > most and x[p] < 0.5 and not fresh[m]:
                    c, most = m, misses[p]
            if c < 0:
                break
            fresh[c] = True  # considered once per slot, loaded or not
            need = used + size[c] - budgets[v]
            victims = np.zeros(n_models, np.bool_)
            top = -np.inf
            while need > 1e-9 * max(1.0, budgets[v]):
                w, low = -1, np.inf
                for m in range(n_models):
                    p = base + m
                    if x[p] > 0.5 and settable[p] and not victims[m] and not fresh[m] and score[p] < low:
                        w, low = m, score[p]
                if w < 0:
                    break
                victims[w] = True
                top = max(top, low)
                need -= size[w]
            if need > 1e-9 * max(1.0, budgets[v]):
                continue  # cannot make room
            if lfu and score[base + c] <= top:
                continue  # used less than what it would evict
            for m in range(n_models):
                if victims[m]:
                    x[base + m] = 0.0
                    used -= size[m]
            x[base + c] = 1.0
            used += size[c]


class _Caching(Policy):
    lfu = True
    defaults = {"window": 10}
    checks = {"window": number(gt=0, le=1e9)}
    state_attrs = ("_x", "_score", "_slot")

    def _start(self, trace):
        self._setup(self.rt.idn)

    def start_nodes(self, idn, nodes, seed: int = 0) -> _Caching:
        """Bind without request types: the live runtime's form, where a node
        counts its own hits and misses from the requests that pass through
        it (idn.runtime.caching) and calls :meth:`update`. Only ``nodes``'
        rows ever change (the others have no hits or misses)."""
        self.rt = None
        self.rng = np.random.default_rng(seed)
        self._setup(idn)
        return self

    def _setup(self, idn):
        self._idn = idn
        self._x = idn.permanent.astype(float).reshape(-1)
        self._settable = (idn.fits & ~idn.permanent).reshape(-1) & ~np.repeat(idn.repository, idn.n_models)
        self._score = np.zeros(self._x.size)
        self._slot = 0

    def propose(self) -> np.ndarray:
        idn = self._idn
        return self._x.reshape(idn.n_nodes, idn.n_models).copy()

    def settable(self, v: int, m: int) -> bool:
        return bool(self._settable[v * self._idn.n_models + m])

    def learn(self, counts: np.ndarray, share: np.ndarray) -> None:
        rt = self.rt
        counts = np.ascontiguousarray(counts, dtype=float)
        served = serving.serve(rt, counts, self._x, share).served  # what the answers tell each node
        hits, misses = np.zeros(self._x.size), np.zeros(self._x.size)
        _observe(rt.offsets, rt.path_offsets, rt.path_nodes, rt.node, rt.hop, rt.pair, rt.cost, served, counts,
                 self._x, self._settable, hits, misses)  # fmt: skip
        self.update(hits, misses)

    def update(self, hits: np.ndarray, misses: np.ndarray) -> None:
        """The slot's hits and misses per (node, model) pair (flat V*M): new
        scores, then the missed models admitted node by node."""
        idn = self._idn
        self._slot += 1
        if self.lfu:
            self._score *= 0.5 ** (1.0 / float(self.params["window"]))
            self._score += hits + misses
        else:
            self._score[(hits + misses) > 0] = self._slot
        _admit(self._x, idn.n_models, idn.size_mb, idn.budget_mb, self._settable, misses, self._score, self.lfu)


@register
class LFU(_Caching):
    """Model caching, least-frequently-used eviction (module docstring)."""

    name = "lfu"
    knows = "online"
    summary = "each node caches the models its requests miss, evicting the least frequently used"
    lfu = True


@register
class LRU(_Caching):
    """Model caching, least-recently-used eviction (module docstring)."""

    name = "lru"
    knows = "online"
    summary = "each node caches the models its requests miss, evicting the least recently used"
    lfu = False
    defaults = {}
    checks = {}
