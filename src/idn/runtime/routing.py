"""The serving rule of docs/model.md (sections 4-6), applied live by one node.

Built from the simulator's own pieces: the request types and cost-sorted
candidate lists of :mod:`idn.model.request_types`, and the capacity shares of
:func:`idn.serving.capacity_share`. Nothing here recomputes a cost, a path or
a share; it only walks the lists the simulator walks, one request at a time.

A request of type rho at p_j walks rho's list from the top, skipping entries
at nodes it has already passed (hop < j: requests only travel up), and takes
the first entry whose node is believed to host the model. If that entry is
at p_j and p_j still has capacity for it in the request's slot, p_j serves;
if p_j is full it keeps walking; if the entry is further up, the request is
forwarded one hop. The repository (the fallback, last on every list) always
serves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import serving
from ..model.network import IDN
from ..model.request_types import RequestTypes, build_request_types


def live_request_types(idn: IDN) -> RequestTypes:
    """Request types for every node as an entry point: a live node accepts a
    request wherever it enters. Types without requests change no share and
    no gain, so the simulator's narrower set (the trace's sources) agrees."""
    return build_request_types(idn, [n.id for n in idn.nodes])


@dataclass
class Decision:
    serve: bool
    entry: int  # the candidate entry chosen (serve) or the first one up the path (forward)
    next_hop: int  # path position of the node to forward to (-1 when serving)


class Router:
    """The lists of the request types, from one node's point of view."""

    def __init__(self, rt: RequestTypes, node_id: str):
        self.rt = rt
        self.idn = rt.idn
        self.v = self.idn.node_index[node_id]
        self.is_repository = bool(self.idn.repository[self.v])
        self._paths = [rt.path(r) for r in range(rt.n_types)]
        # this node's position on each type's path (-1: not on it)
        self.position = np.array([int(np.flatnonzero(p == self.v)[0]) if self.v in p else -1 for p in self._paths])
        # a type's list as Python ints, (entry, hop, node, model), made at its first request: a request
        # walks it, and reading numpy scalars costs several times more (a live request's own cost)
        self._lists: dict[int, list] = {}
        self._at: dict[int, int] = {}  # rho -> this node's position on its path
        self._link_ms: dict[tuple, float] = {}

    def request_type(self, source: str, task: str) -> int:
        return self.rt.key_index[(source, task)]

    def path(self, rho: int) -> np.ndarray:
        return self._paths[rho]

    def decide(self, rho: int, hosts: np.ndarray, has_capacity) -> Decision:
        """hosts: (V, M) bool, this node's belief of every allocation (its own
        row is exact); has_capacity(e) -> bool for this node's entries."""
        j = self._at.get(rho)
        if j is None:
            j = self._at[rho] = int(self.position[rho])
            rt, sl = self.rt, self.rt.entries(rho)
            self._lists[rho] = list(zip(range(sl.start, sl.stop), rt.hop[sl].tolist(), rt.node[sl].tolist(), rt.model[sl].tolist()))
        if j < 0:
            raise ValueError(f"node {self.idn.nodes[self.v].id!r} is not on the path of request type {rho}")
        for e, k, u, m in self._lists[rho]:
            if k < j or not hosts[u, m]:
                continue
            if k > j:
                return Decision(False, e, j + 1)
            if has_capacity(e):
                return Decision(True, e, -1)
        # unreachable: the fallback is the repository at the end of the path, and it always serves
        raise AssertionError("candidate list without a fallback")

    def link_ms(self, rho: int, a: int, b: int) -> float:
        """One-way latency from path position a to b (a < b) along rho's path
        (kept: a forwarded request asks for it, and the graph's lookups cost more)."""
        ms = self._link_ms.get((rho, a, b))
        if ms is None:
            p = self._paths[rho]
            g, nodes = self.idn.graph, self.idn.nodes
            ms = self._link_ms[(rho, a, b)] = float(sum(g[nodes[p[k]].id][nodes[p[k + 1]].id]["latency_ms"] for k in range(a, b)))
        return ms

    def downstream(self) -> list[int]:
        """Nodes whose requests may travel through this one: those before it
        on some path. They route on this node's allocation, so they are the
        ones it announces its allocation to."""
        out = set()
        for p, j in zip(self._paths, self.position):
            if j > 0:
                out.update(int(u) for u in p[:j])
        return sorted(out)

    def upstream_of_types(self) -> dict[int, list[int]]:
        """{node: [types entering here that pass through it]}: where this
        node's per-slot request counts must go (their capacity shares depend on them)."""
        out: dict[int, list[int]] = {}
        for rho, (p, j) in enumerate(zip(self._paths, self.position)):
            if j == 0:
                for u in p[1:]:
                    out.setdefault(int(u), []).append(rho)
        return out


class SlotCapacity:
    """Per-slot capacity counters of one node (docs/model.md, section 5).

    Two levels, both per slot:
    - the pair's whole capacity L_v^m is a hard limit: (v, m) serves at most
      ceil(L) requests in a slot, whatever their types;
    - within it, each type holds a reservation: the share l of
      :func:`idn.serving.capacity_share` (the simulator's function, cap at r
      included) computed from the request counts of slot t-1 that the
      sources announced. A request within its type's reservation is admitted;
      one beyond it only if the pair has room left over after the unused
      reservations of the other types.
    Counts of slot t itself cannot be known during slot t. With a steady load
    (last slot's counts = this slot's) this admits exactly the model's shares
    when capacity binds, and everything when it does not; a type that was
    absent last slot still finds the unreserved room. When slot t-1's counts
    are unknown (the first slot, an idle slot, or before they arrive) the
    pair is one pool, first come first served (docs/live.md).
    A share is fractional; a request is admitted while the count is below it.
    """

    KEEP = 4  # slots of counters kept: a request stamped with a recent slot still finds its own

    def __init__(self, router: Router):
        self.router = router
        rt = router.rt
        self.mine = np.flatnonzero(rt.node == router.v)
        # this node's entries, grouped by pair: the reservations a pair's room is shared with
        self._pair_entries: dict[int, np.ndarray] = {}
        for e in self.mine:
            self._pair_entries.setdefault(int(rt.pair[e]), []).append(int(e))
        self._pair_entries = {p: np.asarray(es) for p, es in self._pair_entries.items()}
        self.counts: dict[int, np.ndarray] = {}  # slot -> (R,) announced request counts
        self._slots: dict[int, dict] = {}

    def add_counts(self, slot: int, rho: np.ndarray, n: np.ndarray) -> None:
        c = self.counts.setdefault(slot, np.zeros(self.router.rt.n_types))
        np.add.at(c, rho, n)
        s = self._slots.get(slot + 1)
        if s is not None:
            s["share"] = None  # recompute with the new counts
        for t in sorted(self.counts)[: -self.KEEP]:
            del self.counts[t]

    def _slot(self, t: int) -> dict:
        s = self._slots.get(t)
        if s is None:
            rt = self.router.rt
            s = {"used": np.zeros(rt.n_entries), "pool": {}, "share": None}
            self._slots[t] = s
            for old in sorted(self._slots)[: -self.KEEP]:
                del self._slots[old]
        if s["share"] is None and (t - 1) in self.counts:
            s["share"] = serving.capacity_share(self.router.rt, self.counts[t - 1])
        return s

    def has_capacity(self, e: int, t: int) -> bool:
        rt = self.router.rt
        cap = float(rt.capacity[e])
        if not math.isfinite(cap):
            return True
        s = self._slot(t)
        pair = int(rt.pair[e])
        pooled = s["pool"].get(pair, 0)
        if pooled >= cap:
            return False
        share, used = s["share"], s["used"]
        if share is None or used[e] < share[e]:
            return True
        others = self._pair_entries[pair]
        reserved = float(np.maximum(share[others] - used[others], 0.0).sum())
        return pooled + reserved < cap

    def take(self, e: int, t: int) -> None:
        s = self._slot(t)
        s["used"][e] += 1
        p = int(self.router.rt.pair[e])
        s["pool"][p] = s["pool"].get(p, 0) + 1

    def left(self, t: int) -> dict[int, float]:
        """{model index: requests this node can still serve in slot t} (the pair's pool)."""
        rt = self.router.rt
        s = self._slot(t)
        return {int(rt.model[es[0]]): max(0.0, float(rt.capacity[es[0]] - s["pool"].get(p, 0)))
                for p, es in self._pair_entries.items() if np.isfinite(rt.capacity[es[0]])}  # fmt: skip
