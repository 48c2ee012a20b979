"""Live LFU / LRU: model caching at each node, from the requests that pass
through it (docs/live.md, "Which policies run where").

A node counts, during the slot, what the simulator's ``lfu``/``lru``
observe (:func:`idn.policies.heuristics.caching._observe`), from real requests:
- a **hit** for (v, m) when v serves a request with m;
- a **miss** for (v, m) when a request passes through v, m is the cheapest
  entry of the request's list at v, v does not host m, and the request was
  served at a costlier entry (v sees where: the answer comes back through it).

At the slot's end it sends its counts up the paths (the capacity
reservations need them, as in a static IDN), then runs the policy's own
update (:meth:`idn.policies.heuristics.caching._Caching.update`: scores, admission and
eviction) on its row, swaps the allocation in and announces it. No control
messages: a cache decides alone, as a model server does.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import numpy as np

from .plane import HISTORY, NodePlane


class CachePlane(NodePlane):
    def __init__(self, node, policy, checkpoint: Path | None):
        self.node, self.policy, self.checkpoint = node, policy, checkpoint
        rt, v = node.rt, node.v
        n_models = node.idn.n_models
        self.size = node.idn.n_nodes * n_models
        self.hits, self.misses = np.zeros(self.size), np.zeros(self.size)
        # per request type through v: v's cheapest entry on its list (sorted by cost: the first at v's hop)
        self.best = {}
        for rho in np.flatnonzero(node.router.position >= 0).tolist():
            j = int(node.router.position[rho])
            sl = rt.entries(rho)
            at_v = [e for e in range(sl.start, sl.stop) if rt.hop[e] == j]
            if at_v and not node.idn.repository[v]:
                self.best[rho] = at_v[0]
        self.entry_of = {}  # (type, node, model) -> entry: where an answer says it was served
        for rho in self.best:
            sl = rt.entries(rho)
            for e in range(sl.start, sl.stop):
                self.entry_of[(rho, int(rt.node[e]), int(rt.model[e]))] = e
        self.slot = 0
        self.resumed_from: int | None = None
        self.counters = {"hits": 0, "misses": 0}
        self.history: deque = deque(maxlen=HISTORY)

    def observe(self, rho: int, served_node: int, served_model: int) -> None:
        """One request of type rho that passed through this node and was served at (node, model)."""
        rt, v, n_models = self.node.rt, self.node.v, self.node.idn.n_models
        if served_node == v:
            if self.policy.settable(v, served_model):
                self.hits[v * n_models + served_model] += 1
                self.counters["hits"] += 1
            return
        b = self.best.get(rho)
        if b is None:
            return
        m = int(rt.model[b])
        e = self.entry_of.get((rho, served_node, served_model))
        if self.node.hosts[v, m] or not self.policy.settable(v, m) or e is None or rt.cost[e] <= rt.cost[b]:
            return
        self.misses[v * n_models + m] += 1
        self.counters["misses"] += 1

    async def run_round(self, t: int, counts_here: np.ndarray, start: float) -> dict:
        node, v = self.node, self.node.v
        t0 = time.perf_counter()
        await node._send_counts(t, counts_here)
        self.policy.update(self.hits, self.misses)
        self.hits, self.misses = np.zeros(self.size), np.zeros(self.size)
        self.slot = t + 1
        held = np.flatnonzero(self.policy.propose()[v] > 0.5)
        loads = await node.apply_allocation(set(held.tolist()))
        await self.save_async()
        rec = {"slot": t, "requests": float(counts_here.sum()), "model_loads": loads, "messages_sent": 0,
               "messages_received": 0, "messages_missed": 0, "bytes_sent": 0, "round_ms": 0.0,
               "step_ms": (time.perf_counter() - t0) * 1000.0,
               "allocation": [node.idn.models[m].id for m in held if not node.idn.permanent[v, m]]}  # fmt: skip
        self.history.append(rec)
        node.metrics.control(rec, {}, t + 1)
        return rec

    # ---- state ------------------------------------------------------------------------
    def y_by_model(self) -> dict[str, float]:
        return {}

    def state(self) -> dict:
        return {**self.counters, "next_round": self.slot, "resumed_from_slot": self.resumed_from,
                "messages_sent": 0, "messages_received": 0, "messages_missed": 0}  # fmt: skip
