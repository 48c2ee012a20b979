"""Live INFIDA: one node's control plane (issue 10; docs/live.md, "Live INFIDA").

At the end of each slot t a node
1. takes the counts of the request types that entered it in t;
2. **upward**: waits for the bundle of each node before it on some path
   (its *predecessors*), appends its own candidate entries (node, model,
   hop, cost, share l, state y) to each request type's message, and sends
   one bundle to each node after it (its *successors*); at the last node of
   a path it finds the cut-off k* and C^{k*} (:func:`..policies.infida.messages.cutoff`);
3. **downward**: waits for the cut-offs from its successors and passes them
   on to its predecessors, one bundle each;
4. adds up its own supergradient terms (:func:`..policies.infida.messages.local_terms`)
   and runs INFIDA's step on its own slice of the state
   (:meth:`..policies.infida.policy.Infida.learn_supergradient`): the simulator's code;
   with ``fill: marginal`` the downward messages carry the lists, from which
   the node computes its fill's terms at its own draw (:func:`fill_terms_from_lists`)
   and, with ``coordination: path``, where its draw's uniforms sit on its paths
   (:func:`..policies.infida.coordination.offsets_from_lists`);
5. loads and unloads models, swaps the allocation and announces it.

Messages are those of :mod:`..policies.infida.messages`, so a type with requests
costs 2(J - 1) of them per slot, as the simulator counts; the messages a node
sends to one neighbour in one phase travel in one HTTP call (a bundle, sent
even when empty: the receiver knows whom it waits for). The predecessor and
successor relation must have no cycle (paths to one repository form a tree);
a scenario whose paths cross both ways is refused at start.

A bundle that has not arrived by the phase's deadline is replaced by the last
one received from that neighbour (its messages then describe an older slot)
and counted as missed. A node checkpoints its policy state after every slot
(write, fsync, rename) and resumes from it when restarted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from pathlib import Path

import networkx as nx
import numpy as np

from .. import serving
from ..policies.infida.coordination import offsets_from_lists, rows_in_list_order
from ..policies.infida.fill import marginal_terms
from ..policies.infida.messages import cutoff, local_terms
from .plane import HISTORY, NodePlane



def fill_terms_from_lists(rt, v: int, down: dict, entry_of: dict, free: dict):
    """INFIDA's ``marginal`` fill at node v from the lists its downward
    messages carried: ``(x, room) -> terms`` in v's slice layout, the
    simulator's kernel (:func:`..policies.infida.fill.marginal_terms`) run on
    those lists alone, with v's entries at its draw and every other at the
    state the list carries. Entries go in the lists' own order (cost, then
    hop, then model) and types in type order, as the simulator adds them."""
    offsets, cost, share, y, own_slot = [0], [], [], [], []
    for rho in sorted(down):
        for c in rows_in_list_order(down[rho], entry_of[rho]):
            own = int(c[0]) == v
            own_slot.append(free[int(c[1])] if own else -1)
            cost.append(float(c[3]))
            share.append(float(c[4]))
            y.append(float(c[5]))
        last = int(rt.offsets[rho + 1]) - 1  # the fallback: every node knows it
        cost.append(float(rt.cost[last]))
        share.append(np.inf)
        y.append(1.0)
        own_slot.append(-1)
        offsets.append(len(cost))
    counts = np.array([float(down[rho]["requests"]) for rho in sorted(down)])
    offsets, cost, share, y = np.asarray(offsets, np.int64), np.asarray(cost), np.asarray(share), np.asarray(y)
    own_slot = np.asarray(own_slot, np.int64)
    entry_node = np.where(own_slot >= 0, 0, -1).astype(np.int64)
    pair = np.arange(cost.size, dtype=np.int64)
    path_offsets = np.arange(counts.size + 1, dtype=np.int64)  # each type's "path" here: this node alone (0)
    path_nodes = np.zeros(counts.size, dtype=np.int64)

    def terms(x, room):
        out = np.zeros(x.size)
        if not room[v]:
            return out
        x_entries = np.where(own_slot >= 0, np.asarray(x, dtype=float)[np.maximum(own_slot, 0)], y)
        per_entry = marginal_terms(offsets, pair, cost, share, counts, y, x_entries, entry_node, path_offsets,
                                   path_nodes, np.ones(1, np.bool_))
        for k in np.flatnonzero(own_slot >= 0):  # entry order: types in order, then the list's order
            out[own_slot[k]] += per_entry[k]
        return out

    return terms


def control_graph(rt) -> nx.DiGraph:
    """u -> w when w follows u on some request type's path."""
    g = nx.DiGraph()
    g.add_nodes_from(range(rt.idn.n_nodes))
    for rho in range(rt.n_types):
        p = rt.path(rho)
        g.add_edges_from(zip(p[:-1].tolist(), p[1:].tolist()))
    return g


def check_control_graph(rt) -> None:
    """One line naming two nodes whose paths cross both ways (no live INFIDA there)."""
    g = control_graph(rt)
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        a, b = (rt.idn.nodes[cycle[0][i]].id for i in (0, 1))
        raise ValueError(f"live INFIDA needs paths that never cross both ways, but paths go {a} -> {b} and back")


class ControlPlane(NodePlane):
    """INFIDA's per-slot round at one node (module docstring)."""

    def __init__(self, node, policy, checkpoint: Path | None, hop_timeout_s: float):
        self.node, self.policy = node, policy
        rt, v = node.rt, node.v
        self.rt, self.v = rt, v
        self.hop_timeout_s = float(hop_timeout_s)
        # deadlines by position in the control graph: a node waits for its predecessors
        # longer than they wait for theirs, so one silent node is missed by its
        # neighbours only, not by every node above it
        graph = control_graph(rt)
        self.height = _longest(graph, v, reverse=True)  # hops of the longest chain of predecessors
        self.depth = _longest(graph, v, reverse=False)  # hops of the longest chain of successors
        self.top = nx.dag_longest_path_length(graph)
        self.checkpoint = checkpoint
        pos = node.router.position
        self.types = np.flatnonzero(pos >= 0)  # request types whose path passes here, in type order
        self.prev, self.next = {}, {}
        for rho in self.types:
            p, j = rt.path(int(rho)), int(pos[rho])
            self.prev[int(rho)] = int(p[j - 1]) if j > 0 else -1
            self.next[int(rho)] = int(p[j + 1]) if j + 1 < len(p) else -1
        self.preds = sorted({u for u in self.prev.values() if u >= 0})
        self.succs = sorted({w for w in self.next.values() if w >= 0})
        self.own = {int(rho): [int(e) for e in range(rt.offsets[rho], rt.offsets[rho + 1]) if rt.node[e] == v] for rho in self.types}
        # INFIDA needs the cut-off of each type; local-greedy the whole list (its marginal gains walk it),
        # and so does INFIDA's marginal fill (its terms at the node's own draw)
        self.view = bool(getattr(policy, "needs_lists", False))  # local-greedy: learns from the lists
        self.lists = self.view or bool(getattr(policy, "fill_from_lists", False))
        self.free = {} if self.view else policy.free_index(v)
        # (node, model) -> candidate entry, per type through here (the lists never change)
        self.entry_of = {
            rho: {(int(rt.node[e]), int(rt.model[e])): e for e in range(rt.offsets[rho], rt.offsets[rho + 1])}
            for rho in (self.types.tolist() if self.lists else [])
        }
        self.inbox = {"up": {}, "down": {}}  # phase -> slot -> sender -> messages
        self.last = {"up": {}, "down": {}}  # phase -> sender -> (slot, messages): the stand-in for a late bundle
        self.arrived = asyncio.Event()
        self.counters = {k: 0 for k in ("messages_sent", "messages_received", "messages_missed", "bundles_sent",
                                        "bundles_missed", "bytes_sent", "late_bundles", "sends_failed")}  # fmt: skip
        self.slot = 0  # the next slot whose round runs here
        self.resumed_from: int | None = None
        self.history: deque = deque(maxlen=HISTORY)

    # ---- receiving --------------------------------------------------------------------
    def receive(self, body) -> str | None:
        """Take a bundle (PUT /v1/control); an error message (nothing stored) if it is not one."""
        if not isinstance(body, dict):
            return "the body must be a JSON object"
        phase, slot, sender, msgs = body.get("phase"), body.get("slot"), body.get("from"), body.get("messages")
        if phase not in ("up", "down"):
            return "'phase' must be 'up' or 'down'"
        if isinstance(slot, bool) or not isinstance(slot, int) or slot < 0:
            return "'slot' must be an integer >= 0"
        u = self.node.idn.node_index.get(sender) if isinstance(sender, str) else None
        expected = self.preds if phase == "up" else self.succs
        if u is None or u not in expected:
            return f"node {sender!r} sends no {phase}ward messages to {self.node.id!r}"
        if not isinstance(msgs, dict):
            return "'messages' must be an object {request type: message}"
        clean = {}
        for key, m in msgs.items():
            rho = int(key) if isinstance(key, str) and key.isdigit() else -1
            link = self.prev.get(rho) if phase == "up" else self.next.get(rho)
            if link != u:
                return f"request type {key!r} does not travel from {sender!r} to {self.node.id!r}"
            err = _check_message(m, phase)
            if err:
                return f"request type {key}: {err}"
            clean[rho] = m
        self.counters["messages_received"] += len(clean)
        if slot < self.slot:  # its round is over: keep it as the newest stand-in only
            self.counters["late_bundles"] += 1
        else:
            self.inbox[phase].setdefault(slot, {})[u] = clean
        if slot >= self.last[phase].get(u, (-1, None))[0]:
            self.last[phase][u] = (slot, clean)
        self.arrived.set()
        return None

    async def _collect(self, phase: str, t: int, senders: list[int], deadline: float) -> dict[int, dict]:
        """sender -> messages for slot t; a bundle missing at the deadline is
        replaced by the sender's last one and counted as missed."""
        box = self.inbox[phase]
        while True:
            got = box.get(t, {})
            if all(u in got for u in senders):
                break
            left = deadline - time.time()
            if left <= 0:
                break
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), timeout=left)
            except asyncio.TimeoutError:
                break
        got = box.pop(t, {})
        for old in [s for s in box if s < t]:
            del box[old]
        out = {}
        for u in senders:
            if u in got:
                out[u] = got[u]
                continue
            stand_in = self.last[phase].get(u, (-1, {}))[1]
            out[u] = stand_in
            self.counters["bundles_missed"] += 1
            self.counters["messages_missed"] += max(1, len(stand_in))
            self.missed_now += 1
        return out

    # ---- the round ----------------------------------------------------------------------
    def deadlines(self, start: float) -> tuple[float, float]:
        """(upward, downward) deadlines of a round started at ``start`` (unix time, the same at every node)."""
        tau = self.hop_timeout_s
        return start + tau * (self.height + 0.5), start + tau * (self.top + 1.0 + self.depth)

    async def run_round(self, t: int, counts_here: np.ndarray, start: float) -> dict:
        """INFIDA's round for slot t (module docstring), started at unix time
        ``start``; returns the slot's record."""
        node, rt, v = self.node, self.rt, self.v
        t0 = time.perf_counter()
        up_deadline, down_deadline = self.deadlines(start)
        sent0 = dict(self.counters)
        self.missed_now = 0
        up_in = await self._collect("up", t, self.preds, up_deadline)
        msgs = {}
        for rho in self.types.tolist():
            if self.prev[rho] < 0:
                if counts_here[rho] > 0:
                    msgs[rho] = {"requests": float(counts_here[rho]), "entries": []}
            else:
                m = up_in[self.prev[rho]].get(rho)
                if m is not None:
                    msgs[rho] = {"requests": float(m["requests"]), "entries": [list(c) for c in m["entries"]]}
        counts = np.zeros(rt.n_types)
        for rho, m in msgs.items():
            counts[rho] = m["requests"]
        share = serving.capacity_share(rt, counts)
        active = np.flatnonzero(counts)
        node.capacity.add_counts(t, active, counts[active])  # the reservations of slot t + 1
        y_row = self.policy.state()[v]
        for rho, m in msgs.items():
            for e in self.own[rho]:
                mdl = int(rt.model[e])
                m["entries"].append([v, mdl, int(rt.hop[e]), float(rt.cost[e]), float(share[e]), float(y_row[mdl])])
        down = {rho: self._top(m) for rho, m in msgs.items() if self.next[rho] < 0}
        await self._send_all("up", t, self.succs, {w: {str(r): m for r, m in msgs.items() if self.next[r] == w} for w in self.succs})
        down_in = await self._collect("down", t, self.succs, down_deadline)
        for rho in msgs:
            w = self.next[rho]
            if w >= 0 and rho in down_in[w]:
                down[rho] = down_in[w][rho]
        await self._send_all("down", t, self.preds,
                             {u: {str(r): d for r, d in down.items() if self.prev[r] == u} for u in self.preds})  # fmt: skip
        round_ms = (time.perf_counter() - t0) * 1000.0
        if self.view:
            self._learn_view(msgs, down)
        else:
            # the supergradient terms of this node's entries, type after type as serving's kernel adds them
            g = np.zeros(self.policy.y.size)
            for rho in sorted(down):
                own = [c for c in msgs[rho]["entries"] if c[0] == v]
                for mdl, term in local_terms(down[rho], own).items():
                    g[self.free[mdl]] += term
            fill = fill_terms_from_lists(rt, v, down, self.entry_of, self.free) if self.lists else None
            offsets = None
            if getattr(self.policy, "coordinates", False):  # INFIDA's path-coordinated draw, from the same lists
                offsets = offsets_from_lists(down, self.entry_of, node.router.position, rt.task,
                                             self.policy.node_groups(v), self.policy.rounding.n_groups)  # fmt: skip
            self.policy.learn_supergradient(g, fill, offsets)
        self.slot = t + 1
        held = np.flatnonzero(self.policy.propose()[v] > 0.5)
        loads = await node.apply_allocation(set(held.tolist()))
        await self.save_async()
        c = self.counters
        rec = {"slot": t, "requests": float(counts_here.sum()), "model_loads": loads,
               "messages_sent": c["messages_sent"] - sent0["messages_sent"],
               "messages_received": c["messages_received"] - sent0["messages_received"],
               "messages_missed": c["messages_missed"] - sent0["messages_missed"],
               "bytes_sent": c["bytes_sent"] - sent0["bytes_sent"], "round_ms": round_ms,
               "step_ms": (time.perf_counter() - t0) * 1000.0 - round_ms,
               "allocation": [node.idn.models[m].id for m in held if not node.idn.permanent[v, m]]}  # fmt: skip
        self.history.append(rec)
        node.metrics.control(rec, self.y_by_model(), t + 1)
        return rec

    def _top(self, m: dict) -> dict:
        """At the last node of a path: the cut-off, and for local-greedy the
        whole list (the fallback's entries aside: their share is infinite
        and every node knows them)."""
        down = cutoff(m["requests"], m["entries"])
        if self.lists:
            down["entries"] = [c for c in m["entries"] if np.isfinite(c[4])]
        return down

    def _learn_view(self, msgs: dict, down: dict) -> None:
        """local-greedy: the counts, shares and allocations of the lists
        through this node, from the messages, into the simulator's policy."""
        rt, n_models = self.rt, self.node.idn.n_models
        counts, share = np.zeros(rt.n_types), np.zeros(rt.n_entries)
        share[rt.is_fallback] = np.inf
        held = {}
        for rho, d in down.items():
            counts[rho] = d["requests"]
            where = self.entry_of[rho]
            for node, model, _, _, l, x in d.get("entries", []):
                e = where.get((int(node), int(model)))
                if e is not None:
                    share[e] = l
                    held[int(node) * n_models + int(model)] = float(x)
        self.policy.learn_view(counts, share, held)

    async def _send_all(self, phase: str, t: int, targets: list[int], bundles: dict[int, dict]) -> None:
        await asyncio.gather(*(self._send(phase, t, w, bundles[w]) for w in targets))

    async def _send(self, phase: str, t: int, w: int, messages: dict) -> None:
        """One bundle; counted as sent once the neighbour took it (else as failed)."""
        body = json.dumps({"phase": phase, "slot": t, "from": self.node.id, "messages": messages}).encode()
        if await self.node.control_call(w, "/v1/control", body, max(2.0, self.hop_timeout_s)):
            self.counters["bundles_sent"] += 1
            self.counters["messages_sent"] += len(messages)
            self.counters["bytes_sent"] += len(body)
        else:
            self.counters["sends_failed"] += 1

    # ---- state ------------------------------------------------------------------------
    def y_by_model(self) -> dict[str, float]:
        row = self.policy.state()[self.v]
        return {self.node.idn.models[m].id: float(row[m]) for m in sorted(self.free)}

    def state(self) -> dict:
        return {"y": self.y_by_model(), **self.counters, "resumed_from_slot": self.resumed_from, "next_round": self.slot,
                "predecessors": [self.node.idn.nodes[u].id for u in self.preds],
                "successors": [self.node.idn.nodes[w].id for w in self.succs]}  # fmt: skip


def _longest(graph: nx.DiGraph, v: int, reverse: bool) -> int:
    """Hops of the longest path ending at v (reverse) or starting at it."""
    best = {}
    order = list(nx.topological_sort(graph))
    for u in order if reverse else order[::-1]:
        near = graph.predecessors(u) if reverse else graph.successors(u)
        best[u] = max((best[w] + 1 for w in near), default=0)
    return best[v]


def _number(x, lo=-1e15) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float)) and np.isfinite(x) and lo <= x <= 1e15


def _check_message(m, phase: str) -> str | None:
    if not isinstance(m, dict):
        return "not an object"
    if phase == "up":
        entries = m.get("entries")
        if not _number(m.get("requests"), 0) or not isinstance(entries, list):
            return "an upward message needs 'requests' (>= 0) and 'entries'"
        for c in entries:
            if not (isinstance(c, list) and len(c) == 6 and all(_number(x) for x in c)):
                return "an entry must be [node, model, hop, cost, share, y] (finite numbers)"
        return None
    key = m.get("cut_key")
    if not (_number(m.get("requests"), 0) and _number(m.get("cut_cost"))
            and isinstance(key, list) and len(key) == 3 and all(_number(x) for x in key)):  # fmt: skip
        return "a downward message needs 'requests', 'cut_key' [cost, hop, model] and 'cut_cost'"
    entries = m.get("entries", [])
    if not isinstance(entries, list) or not all(isinstance(c, list) and len(c) == 6 and all(_number(x) for x in c) for c in entries):
        return "a downward list must hold entries [node, model, hop, cost, share, state] (finite numbers)"
    return None
