"""What the dashboard knows: it polls every node's ``GET /v1/state`` a few
times a slot, ``GET /v1/history?since=t`` when a node has run new rounds,
``GET /metrics`` once a slot, and reads ``RUN/load.json`` (written by
``idn load``, :mod:`idn.runtime.load_feed`); it keeps the last slots of
each, by the nodes' slot number, and hands the page one snapshot.

Where each figure comes from:

- topology: the scenario named in ``RUN/serve.json``; each node's models
  and their changes (loaded / evicted) from its ``/v1/state`` ``allocation``;
- a node is *dead* when its port refuses the connection, *silent* when it
  has not answered twice in a row within the timeout;
- per node and slot: the round's record in ``/v1/history`` (control messages
  sent, received, missed; model loads), its state y after the round before
  (``/v1/state`` ``y`` when ``next_round`` is that slot), and the differences
  of its counters (served, errors, skipped hops) and of ``/metrics``'
  ``idn_requests_served_total{model}`` between the last samples of two slots;
- per slot, from ``RUN/load.json`` while ``idn load`` runs: the served share
  per tier, latency p50/p95, accuracy and cost of the requests it sent, and
  the simulator's prediction for them; the share per tier falls back to the
  nodes' served counters for slots no load covers.

The dashboard only reads: it never sends a control call, and needs no token.
"""

from __future__ import annotations

import asyncio
import json
import time
from itertools import pairwise
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from ...model.network import TIERS
from ..load_feed import FILE as FEED_FILE

KEEP_SLOTS = 600  # per-slot data kept in memory
MARK_SLOTS = 3  # a model loaded or evicted stays marked this many slots
COUNTERS = ("served", "errors", "skipped_hops", "received", "forwarded")
ROUND_FIELDS = ("messages_sent", "messages_received", "messages_missed", "model_loads")


def read_run_files(run_dir: str | Path) -> tuple[list[dict], dict]:
    """RUN/nodes.json and RUN/serve.json, or one line saying what is missing."""
    run_dir = Path(run_dir)
    out = []
    for f in ("nodes.json", "serve.json"):
        try:
            out.append(json.loads((run_dir / f).read_text()))
        except FileNotFoundError:
            raise ValueError(f"{run_dir}: no {f} (is 'idn serve ... --run-dir {run_dir}' running?)") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{run_dir / f}: not valid JSON: {exc}") from None
    nodes, cfg = out
    if not isinstance(nodes, list) or not all(isinstance(n, dict) and {"id", "url"} <= n.keys() for n in nodes):
        raise ValueError(f"{run_dir / 'nodes.json'}: expected a list of {{id, tier, url}}")
    return nodes, cfg


class NodeView:
    """What the dashboard has seen of one node."""

    def __init__(self, node_id: str, url: str):
        self.id, self.url = node_id, url
        self.status, self.error, self.dead_since, self.failures = "starting", "", None, 0
        self.state: dict = {}
        self.allocation = None  # list of model ids, "all", or None before the first answer
        self.events: list[tuple[int, str, str]] = []  # (slot, "loaded" | "evicted", model)
        self.rounds: dict[int, dict] = {}  # slot -> /v1/history record
        self.y: dict[int, dict] = {}  # slot -> y in force during that slot (after round slot - 1)
        self.counters: dict[int, dict] = {}  # slot -> counters at the last sample taken in it
        self.served_by_model: dict[int, dict] = {}  # slot -> idn_requests_served_total per model, last sample
        self.next_history = 0  # the first slot not yet fetched from /v1/history
        self.metrics_slot = -1


class Collector:
    def __init__(self, run_dir: str | Path, timeout_s: float = 2.0):
        from ...model.scenario import load_scenario

        self.run_dir = Path(run_dir)
        nodes, self.cfg = read_run_files(self.run_dir)
        self.idn = load_scenario(self.cfg["scenario"])
        self.views = {n["id"]: NodeView(n["id"], n["url"]) for n in nodes}
        self.interval_s = min(1.0, max(0.2, self.idn.slot_seconds / 4))
        self.timeout_s = timeout_s
        self.now = 0  # the nodes' slot (the largest any node reported)
        self.feed: dict = {}  # the last RUN/load.json read, without its slots
        self.feed_slots: dict[int, dict] = {}  # node slot -> that slot's row of a load feed
        self._feed_mtime = None
        self.polls = 0
        self.updated = 0.0
        self.topology = self._topology()

    # ---- polling ------------------------------------------------------------------------
    async def run(self, session: aiohttp.ClientSession) -> None:
        """One loop per node (a silent node, waited for until the timeout, delays no other) and one for the feed."""

        async def every(step):
            while True:
                t0 = time.monotonic()
                await step()
                await asyncio.sleep(max(0.05, self.interval_s - (time.monotonic() - t0)))

        async def feed():
            self._tick()

        await asyncio.gather(*(every(lambda v=v: self._poll_node(session, v)) for v in self.views.values()), every(feed))

    async def poll(self, session: aiohttp.ClientSession) -> None:
        """Every node and the feed once."""
        await asyncio.gather(*(self._poll_node(session, v) for v in self.views.values()))
        self._tick()

    def _tick(self) -> None:
        self._read_feed()
        self.polls += 1
        self.updated = time.time()
        self._trim()

    async def _get(self, session, url: str, text: bool = False):
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as r:
            if r.status != 200:
                raise aiohttp.ClientResponseError(r.request_info, (), status=r.status, message=f"HTTP {r.status}")
            return await r.text() if text else await r.json()

    async def _poll_node(self, session, v: NodeView) -> None:
        try:
            st = await self._get(session, f"{v.url}/v1/state")
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, ConnectionResetError) as exc:
            self._down(v, "dead", f"{type(exc).__name__}: connection refused or reset")
            return
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError, ValueError) as exc:
            v.failures += 1
            if v.failures >= 2:
                self._down(v, "silent", f"no answer within {self.timeout_s:g} s ({type(exc).__name__})")
            return
        v.failures, v.error = 0, ""
        v.status, v.dead_since = "up", None
        v.state = st
        slot = int(st.get("slot", 0))
        self.now = max(self.now, slot)
        self._allocation(v, st.get("allocation"), slot)
        v.counters[slot] = {k: int(st.get("counters", {}).get(k, 0)) for k in COUNTERS}
        if "y" in st and "next_round" in st:
            v.y[int(st["next_round"])] = st["y"]
        nxt = int(st.get("next_round", 0))
        try:
            if nxt > v.next_history:
                for rec in await self._get(session, f"{v.url}/v1/history?since={v.next_history}"):
                    v.rounds[int(rec["slot"])] = rec
                    v.next_history = max(v.next_history, int(rec["slot"]) + 1)
            if slot != v.metrics_slot:
                v.served_by_model[slot] = served_per_model(await self._get(session, f"{v.url}/metrics", text=True))
                v.metrics_slot = slot
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError, ValueError, KeyError, TypeError):
            pass  # the next poll asks again

    def _down(self, v: NodeView, status: str, error: str) -> None:
        if v.status == "starting" and status == "silent":  # its socket is bound, its process still loading
            return
        if v.status != status:
            v.dead_since = self.now
        v.status, v.error = status, error

    def _allocation(self, v: NodeView, alloc, slot: int) -> None:
        if v.allocation is not None and alloc != "all" and v.allocation != "all":
            before, after = set(v.allocation), set(alloc or [])
            v.events += [(slot, "loaded", m) for m in sorted(after - before)]
            v.events += [(slot, "evicted", m) for m in sorted(before - after)]
        v.allocation = alloc if alloc == "all" else list(alloc or [])

    def _read_feed(self) -> None:
        path = self.run_dir / FEED_FILE
        try:
            mtime = path.stat().st_mtime_ns
            if mtime == self._feed_mtime:
                return
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return  # no load yet, or one being replaced: the next poll reads it
        self._feed_mtime = mtime
        for row in doc.pop("slots", []):
            self.feed_slots[int(row["slot"])] = row
        self.feed = doc

    def _trim(self) -> None:
        low = self.now - KEEP_SLOTS
        for v in self.views.values():
            for d in (v.rounds, v.y, v.counters, v.served_by_model):
                for s in [s for s in d if s < low]:
                    del d[s]
            v.events = [e for e in v.events if e[0] >= low]
        for s in [s for s in self.feed_slots if s < low]:
            del self.feed_slots[s]

    # ---- the snapshot ----------------------------------------------------------------------
    def _topology(self) -> dict:
        idn = self.idn
        return {
            "name": idn.name, "tiers": list(TIERS), "alpha": idn.alpha, "slot_seconds": idn.slot_seconds,
            "nodes": [{"id": n.id, "tier": n.tier, "repository": n.repository, "budget_mb": n.budget_mb,
                       "workers": n.workers} for n in idn.nodes],
            "links": [{"a": a, "b": b, "latency_ms": float(d.get("latency_ms", 0.0))} for a, b, d in idn.graph.edges(data=True)],
            "tasks": list(idn.tasks),
            "models": [{"id": m.id, "task": m.task, "size_mb": m.size_mb, "accuracy": m.accuracy} for m in idn.models],
        }  # fmt: skip

    def snapshot(self, window: int = 60) -> dict:
        window = max(1, min(int(window), KEEP_SLOTS))
        # whole slots only: the one in progress has part of its requests, and its round is still to come
        lo = max(self.now - window, self._first_active() - 2)
        slots = list(range(min(lo, self.now - 1), self.now))
        policy = self.cfg.get("policy") or {"name": "fixed"}
        return {
            "run": {"scenario": self.idn.name, "policy": policy.get("name"), "params": policy.get("params") or {},
                    "deterministic": bool(self.cfg.get("deterministic")), "now": self.now, "polls": self.polls,
                    "updated": self.updated, "mark_slots": MARK_SLOTS},
            "topology": self.topology, "slots": slots, "series": self._series(slots),
            "nodes": {v.id: self._node(v, slots) for v in self.views.values()},
            "load": self._load(),
        }  # fmt: skip

    def _first_active(self) -> int:
        """The first slot with requests (a load's, a round's, or a served counter's step), else the first sampled."""
        firsts = [min(self.feed_slots, default=self.now)]
        for v in self.views.values():
            firsts += [s for s, r in sorted(v.rounds.items()) if r.get("requests")][:1]
            samples = sorted(v.counters)
            firsts += [b for a, b in pairwise(samples) if v.counters[b]["served"] > v.counters[a]["served"]][:1]
        sampled = [min(d) for v in self.views.values() for d in (v.counters, v.rounds) if d]
        return min(firsts) if len(firsts) > 1 or self.feed_slots else min(sampled, default=self.now)

    def _node(self, v: NodeView, slots: list[int]) -> dict:
        st = v.state
        out = {"status": v.status, "error": v.error, "dead_since": v.dead_since, "url": v.url,
               "allocation": v.allocation, "counters": st.get("counters", {}),
               "marks": [{"slot": s, "kind": k, "model": m} for s, k, m in v.events if self.now - s < MARK_SLOTS],
               "next_round": st.get("next_round"), "resumed_from_slot": st.get("resumed_from_slot")}  # fmt: skip
        for k in ROUND_FIELDS:
            out[k] = [v.rounds[s].get(k) if s in v.rounds else None for s in slots]
        for k in ("served", "errors", "skipped_hops"):
            out[k] = _deltas(v.counters, slots, k)
        if v.y:
            models = sorted({m for y in v.y.values() for m in y})
            out["y"] = {m: [v.y[s].get(m) if s in v.y else None for s in slots] for m in models}
            out["y_now"] = st.get("y")
        last = max((s for s in v.served_by_model if s < self.now), default=None)
        before = max((s for s in v.served_by_model if last is not None and s < last), default=None)
        if last is not None and before is not None:  # the last whole slot's requests served per model
            a, b = v.served_by_model[last], v.served_by_model[before]
            out["served_by_model"] = {m: n - b.get(m, 0) for m, n in a.items() if n - b.get(m, 0) > 0}
        return out

    def _series(self, slots: list[int]) -> dict:
        tier_of = {n.id: n.tier for n in self.idn.nodes}
        served = {v.id: _deltas(v.counters, slots, "served") for v in self.views.values()}
        out = {k: [] for k in ("requests", "source", "latency_p50", "latency_p95", "latency_predicted", "accuracy",
                               "accuracy_predicted", "cost", "cost_predicted", "load_errors")}  # fmt: skip
        out["share"] = {t: [] for t in TIERS}
        out["share_predicted"] = {t: [] for t in TIERS}
        for i, s in enumerate(slots):
            row = self.feed_slots.get(s, {})
            pred = row.get("predicted") or {}
            measured = row.get("served_per_tier") if row.get("requests") else None
            source = "load" if measured else None
            if measured is None:
                by_tier = dict.fromkeys(TIERS, 0)
                for n, d in served.items():
                    if d[i]:
                        by_tier[tier_of[n]] += d[i]
                total = sum(by_tier.values())
                if total:
                    measured, source = {t: c / total for t, c in by_tier.items()}, "nodes"
            for t in TIERS:
                out["share"][t].append(measured[t] if measured else None)
                out["share_predicted"][t].append(pred["served_per_tier"][t] if pred.get("requests") else None)
            lat = row.get("latency_ms") or {}
            out["source"].append(source)
            out["requests"].append(row.get("requests"))
            out["latency_p50"].append(lat.get("p50"))
            out["latency_p95"].append(lat.get("p95"))
            out["latency_predicted"].append(pred.get("mean_latency_ms"))
            out["accuracy"].append(row.get("accuracy"))
            out["accuracy_predicted"].append(pred.get("accuracy"))
            out["cost"].append(row.get("mean_cost"))
            out["cost_predicted"].append(pred.get("mean_cost"))
            out["load_errors"].append(row.get("errors"))
        for k in ROUND_FIELDS:
            out[k] = _sums([[v.rounds[s].get(k) if s in v.rounds else None for s in slots] for v in self.views.values()])
        for k in ("errors", "skipped_hops"):
            out[k] = _sums([_deltas(v.counters, slots, k) for v in self.views.values()])
        return out

    def _load(self) -> dict | None:
        if not self.feed:
            return None
        doc = dict(self.feed)
        if doc.get("status") == "running" and time.time() - float(doc.get("updated", 0)) > 5.0:
            doc["status"] = "stale"  # the load stopped writing without saying it was done
        return doc


def _deltas(samples: dict[int, dict], slots: list[int], key: str) -> list:
    """Per slot: the counter at the last sample of that slot minus at the last
    sample before it (None where either is missing; a counter that went down
    belongs to a restarted node: its value is the slot's count)."""
    out = []
    have = sorted(samples)
    before = [s for s in have if s < slots[0]] if slots else []
    prev = samples[before[-1]][key] if before else None
    for s in slots:
        cur = samples.get(s, {}).get(key)
        out.append((cur - prev if cur >= prev else cur) if cur is not None and prev is not None else None)
        if cur is not None:
            prev = cur
    return out


def _sums(rows: list[list]) -> list:
    """Element-wise sum over nodes, None where no node has a value."""
    out = []
    for col in zip(*rows) if rows else []:
        vals = [x for x in col if x is not None]
        out.append(sum(vals) if vals else None)
    return out


def served_per_model(text: str) -> dict[str, float]:
    """``idn_requests_served_total`` by model, from a node's /metrics."""
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name == "idn_requests_served":
            for s in fam.samples:
                if s.name.endswith("_total"):
                    out[s.labels["model"]] = out.get(s.labels["model"], 0.0) + s.value
    return out
