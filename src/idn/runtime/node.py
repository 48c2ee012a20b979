"""One IDN node: an aiohttp server in its own OS process (live-idn.md).

Data plane: ``POST /v1/infer`` serves a request here or forwards it one hop
up its path (:mod:`idn.runtime.routing` decides); inference runs in a thread
pool, so the event loop never blocks. Control: ``PUT /v1/allocation``
(Bearer token) swaps the allocation (:mod:`idn.runtime.store`) and announces
it to the nodes below; ``PUT /v1/announce`` and ``PUT /v1/counts`` take
other nodes' allocations and per-slot request counts. ``GET /v1/state``,
``GET /metrics`` (Prometheus), ``GET /healthz``.

Started by ``idn serve`` as ``python -m idn.runtime.node RUN NODE_ID FD``:
the launcher binds the listening socket and passes its descriptor, so ports
are known before any node starts and never raced for.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import numpy as np
from aiohttp import web

from .. import serving
from .live_policies import LIVE_POLICIES, make_control_plane
from .models import predict, read_catalog_files
from .node_control import ControlEndpoints
from .node_parts import DrivenClock, NodeMetrics, SlotClock, bad_request, check_token
from .routing import Router, SlotCapacity, live_request_types
from .store import ModelStore


class Node(ControlEndpoints):
    def __init__(self, cfg: dict, node_id: str, idn, token: str):
        self.cfg, self.idn, self.id, self.token = cfg, idn, node_id, token
        self.rt = live_request_types(idn)
        self.router = Router(self.rt, node_id)
        self.v = self.router.v
        self.node = idn.nodes[self.v]
        self.clock = DrivenClock(idn.slot_seconds) if cfg.get("deterministic") else SlotClock(float(cfg["epoch"]), idn.slot_seconds)
        self._slot_lock = asyncio.Lock()
        self.capacity = SlotCapacity(self.router)
        self.peers: dict[str, str] = cfg["peers"]
        self.hop_timeout = float(cfg.get("hop_timeout_s", 2.0))
        self.latency_scale = float(cfg.get("latency_scale", 1.0))  # 0: no emulated link latency (benchmarks)
        files = read_catalog_files(cfg["models"])
        self.n_features = {}
        model_files = {}
        for m, model in enumerate(idn.models):
            name = model.id.split("/", 1)[1]
            if name not in files:
                raise ValueError(f"model {model.id!r}: no file for {name!r} in {cfg['models']}/catalog.csv")
            model_files[m] = files[name]["file"]
            self.n_features[model.task] = files[name]["n_features"]
        self.store = ModelStore(model_files, [m.id for m in idn.models])
        # what this node believes every node hosts; its own row is the truth
        self.hosts = idn.allocation_from_ids(cfg.get("allocation") or {}) > 0.5
        self.version = 0
        self.pool = ThreadPoolExecutor(max_workers=min(4, self.node.workers), thread_name_prefix=f"infer-{node_id}")
        self.metrics = NodeMetrics(node_id)
        self.counters = {k: 0 for k in ("received", "served", "forwarded", "errors", "skipped_hops", "announcements", "counts_sent")}
        self.arrivals: dict[int, np.ndarray] = {}  # slot -> (R,) requests that entered here
        self.client: aiohttp.ClientSession | None = None
        self._count_targets = self.router.upstream_of_types()
        policy = cfg.get("policy") or {}
        if policy.get("name") in LIVE_POLICIES:  # INFIDA at the repository too: it finds the cut-offs
            self.control = make_control_plane(self, policy, Path(cfg["run_dir"]) / "state" / f"{node_id}.npz")
        self.resumed = False

    # ---- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        self.client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.hop_timeout))
        if self.control is not None:
            self.resumed = self.control.restore()
            self.hosts[self.v] = self.control.held() | self.idn.permanent[self.v]
            if self.resumed:
                self.metrics.resumed(self.control.resumed_from)
                await self.refresh_allocations()
        await self.store.apply(set(np.flatnonzero(self.hosts[self.v])), self.pool, self.metrics.loaded)
        # warm up before the first request: the share kernel (numba loads its compiled code on
        # first call, ~1 s that would stall the loop at the first slot) and each session
        serving.capacity_share(self.rt, np.ones(self.rt.n_types))
        for m, sess in self.store.sessions.items():
            predict(sess, np.zeros((1, self.n_features[self.idn.models[m].task]), dtype=np.float32))
        self._tasks = [] if self.cfg.get("deterministic") else [asyncio.create_task(self._slot_loop())]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await self.client.close()
        self.pool.shutdown(wait=True)

    # ---- data plane ----------------------------------------------------------------
    async def infer(self, request: web.Request) -> web.Response:
        t0 = time.perf_counter()
        self.counters["received"] += 1
        self.metrics.received.inc()
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return self._error(400, f"malformed JSON: {exc}")
        if not isinstance(body, dict):
            return self._error(400, "the body must be a JSON object with 'task' and 'input'")
        task = body.get("task")
        if not isinstance(task, str) or task not in self.idn.task_index:  # a list or a dict is unhashable
            return self._error(400, f"unknown task {task!r} (tasks: {', '.join(self.idn.tasks)})")
        x = body.get("input")
        n = self.n_features[task]
        try:
            arr = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.shape != (n,) or not np.isfinite(arr).all():
            shape = "not a list of numbers" if arr is None else f"shape {list(arr.shape)}"
            return self._error(400, f"input for task {task!r} must be a list of {n} finite numbers, got {shape}")
        entering = "source" not in body
        source = self.id if entering else str(body["source"])
        if source not in self.idn.node_index:
            return self._error(400, f"unknown source node {source!r}")
        rho = self.router.request_type(source, task)
        if self.router.position[rho] < 0:
            return self._error(400, f"this node is not on the path of requests from {source!r}")
        slot, hops = body.get("slot", self.clock.now()), body.get("hops", [])
        if entering:
            slot = self.clock.now()
            self.arrivals.setdefault(slot, np.zeros(self.rt.n_types))[rho] += 1
        elif not (isinstance(slot, int) and slot >= 0 and isinstance(hops, list) and all(isinstance(h, str) for h in hops)):
            return self._error(400, "a forwarded request needs 'slot' (an integer >= 0) and 'hops' (node ids)")
        hops = [*hops, self.id]
        d = self.router.decide(rho, self.hosts, lambda e: self.capacity.has_capacity(e, slot))
        if d.serve:
            out = await self._serve(d.entry, arr, slot, hops)
        else:
            out = await self._forward(rho, d.next_hop, {**body, "source": source, "slot": slot, "hops": hops})
        if isinstance(out, web.Response):
            return out
        if hasattr(self.control, "observe"):  # a cache learns from where its requests were served
            where, model = self.idn.node_index.get(out.get("node")), self.idn.model_index.get(out.get("model"))
            if where is not None and model is not None:
                self.control.observe(rho, where, model)
        if entering:
            out["timings_ms"]["total"] = (time.perf_counter() - t0) * 1000.0
        return web.json_response(out)

    async def _serve(self, e: int, x: np.ndarray, slot: int, hops: list[str]) -> dict:
        m = int(self.rt.model[e])
        self.capacity.take(e, slot)  # before the await: a concurrent request must see the slot taken
        session = self.store.session(m)
        t0 = time.perf_counter()
        label = await asyncio.get_running_loop().run_in_executor(self.pool, predict, session, x[None, :])
        ms = (time.perf_counter() - t0) * 1000.0
        # the scenario's service time tau (the node's hardware, docs/model.md section 2) is
        # emulated as links are: the answer waits out what the real model did not take
        extra = max(0.0, self.latency_scale * float(self.idn.service_time_ms[self.v, m]) - ms)
        if extra > 0:
            await asyncio.sleep(extra / 1000.0)
        self.counters["served"] += 1
        self.metrics.served(self.idn.models[m].id, ms)
        pred = label[0].item()
        return {"prediction": pred, "node": self.id, "model": self.idn.models[m].id, "hops": hops, "slot": slot,
                "timings_ms": {"service": ms, "emulated_service": extra,
                               "emulated_link": 0.0}}  # fmt: skip

    async def _forward(self, rho: int, k: int, body: dict):
        """Send one hop up; a node that does not answer in time is skipped (the
        next one up gets the request). The emulated link latency is waited out
        here, on the sending side, once each way."""
        path = self.router.path(rho)
        here = int(self.router.position[rho])
        reasons = []
        while k < len(path):
            target = self.idn.nodes[path[k]].id
            wait = self.latency_scale * self.router.link_ms(rho, here, k) / 1000.0
            try:
                if wait > 0:
                    await asyncio.sleep(wait)
                # the answer may come from further up: allow each remaining hop its timeout and links
                limit = self.hop_timeout * (len(path) - k) + 2.0 * self.router.link_ms(rho, k, len(path) - 1) / 1000.0
                timeout = aiohttp.ClientTimeout(total=limit)
                async with self.client.post(f"{self.peers[target]}/v1/infer", json=body, timeout=timeout) as resp:
                    out = await resp.json()
                    status = resp.status
                if wait > 0:
                    await asyncio.sleep(wait)
            except (aiohttp.ClientError, asyncio.TimeoutError, KeyError, json.JSONDecodeError) as exc:
                reasons.append(f"{target}: {type(exc).__name__}")
                self.counters["skipped_hops"] += 1
                self.metrics.skipped.inc()
                k += 1
                continue
            self.counters["forwarded"] += 1
            self.metrics.forwarded.inc()
            if status != 200:
                return web.json_response(out, status=status)
            out.setdefault("timings_ms", {})
            out["timings_ms"]["emulated_link"] = out["timings_ms"].get("emulated_link", 0.0) + 2000.0 * wait
            return out
        return self._error(503, f"no node up the path answered ({'; '.join(reasons)})")

    def _error(self, status: int, msg: str) -> web.Response:
        self.counters["errors"] += 1
        self.metrics.errors.inc()
        return bad_request(status, msg)

    # ---- control plane ---------------------------------------------------------------
    async def put_allocation(self, request: web.Request) -> web.Response:
        denied = check_token(request, self.token)
        if denied:
            return denied
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return bad_request(400, f"malformed JSON: {exc}")
        models = body.get("models") if isinstance(body, dict) else None
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            return bad_request(400, "the body must be {\"models\": [model id, ...]}")
        if self.node.repository:
            return bad_request(400, f"node {self.id!r} is a repository: it always hosts every model")
        try:
            row = self.idn.allocation_from_ids({self.id: models})[self.v] > 0.5
        except ValueError as exc:
            return bad_request(400, str(exc))
        t0 = time.perf_counter()
        loaded, unloaded = await self.store.apply(set(np.flatnonzero(row)), self.pool, self.metrics.loaded)
        self.hosts[self.v] = row  # the routing view follows the store's swap
        self.version += 1
        await self.announce()
        return web.json_response({"node": self.id, "version": self.version, "loaded": [self.idn.models[m].id for m in loaded],
                                  "unloaded": [self.idn.models[m].id for m in unloaded],
                                  "seconds": time.perf_counter() - t0})  # fmt: skip

    async def announce(self) -> None:
        """Tell the nodes that route through this one what it now hosts."""
        body = {"from": self.id, "version": self.version,
                "models": [self.idn.models[m].id for m in np.flatnonzero(self.hosts[self.v])]}  # fmt: skip
        await asyncio.gather(*(self._control(u, "/v1/announce", body) for u in self.router.downstream()))

    async def _control(self, u: int, route: str, body: dict) -> bool:
        target = self.idn.nodes[u].id
        try:
            async with self.client.put(f"{self.peers[target]}{route}", json=body, headers={"Authorization": f"Bearer {self.token}"}) as r:
                return r.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError, KeyError):
            return False

    async def put_announce(self, request: web.Request) -> web.Response:
        denied = check_token(request, self.token)
        if denied:
            return denied
        body = await _json_object(request)
        if body is None:
            return bad_request(400, "the body must be a JSON object")
        sender, models, version = body.get("from"), body.get("models", []), body.get("version", 0)
        u = self.idn.node_index.get(sender) if isinstance(sender, str) else None
        if u is None or u == self.v:
            return bad_request(400, f"announcement from unknown node {sender!r}")
        if not (isinstance(models, list) and all(isinstance(m, str) for m in models)) or not _count(version):
            return bad_request(400, "the body must be {\"from\": node id, \"version\": n, \"models\": [model id, ...]}")
        try:
            self.hosts[u] = self.idn.allocation_from_ids({sender: models})[u] > 0.5
        except (TypeError, ValueError) as exc:
            return bad_request(400, str(exc))
        self.counters["announcements"] += 1
        return web.json_response({"ok": True})

    async def put_counts(self, request: web.Request) -> web.Response:
        denied = check_token(request, self.token)
        if denied:
            return denied
        body = await _json_object(request)
        try:
            keys = self.rt.key_index
            counts, slot = body["counts"], body["slot"]
            if not _count(slot) or not all(isinstance(s, str) and isinstance(t, str) and _count(n, number=True) for s, t, n in counts):
                raise ValueError  # nan, inf or negative counts would poison the capacity shares
            rows = [(keys[(s, t)], float(n)) for s, t, n in counts if (s, t) in keys]
        except (TypeError, KeyError, ValueError):
            return bad_request(400, "the body must be {\"slot\": t, \"counts\": [[source, task, n], ...]} with counts >= 0")
        if rows:
            rho, n = np.array(rows, dtype=float).T
            self.capacity.add_counts(slot, rho.astype(np.int64), n)
        return web.json_response({"ok": True})

    # ---- reads ------------------------------------------------------------------
    async def state(self, request: web.Request) -> web.Response:
        t = self.clock.now()
        left = self.capacity.left(t)
        st = self.store.stats
        return web.json_response({
            "node": self.id, "tier": self.node.tier, "repository": self.node.repository, "slot": t,
            "version": self.version,
            "allocation": [self.idn.models[m].id for m in np.flatnonzero(self.hosts[self.v])] if not self.node.repository else "all",
            "capacity_left": {self.idn.models[m].id: v for m, v in left.items()},
            "counters": dict(self.counters),
            "models_loaded": len(self.store.sessions), "loads": st.loads, "unloads": st.unloads,
            "load_seconds": st.load_seconds, **self.control_state(),
        })  # fmt: skip

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "node": self.id})

    async def prometheus(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), content_type="text/plain")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.add_routes([
            web.post("/v1/infer", self.infer), web.get("/v1/state", self.state),
            web.put("/v1/allocation", self.put_allocation), web.put("/v1/announce", self.put_announce),
            web.put("/v1/counts", self.put_counts), web.get("/metrics", self.prometheus), web.get("/healthz", self.healthz),
            web.put("/v1/control", self.put_control), web.post("/v1/slot", self.post_slot), web.get("/v1/history", self.get_history),
        ])  # fmt: skip
        return app


def _count(x, number: bool = False) -> bool:
    """An integer >= 0 (not a bool), or with number, any finite number >= 0 of sane size."""
    if isinstance(x, bool) or not isinstance(x, (int, float) if number else int):
        return False
    return 0 <= x <= 1e15


async def _json_object(request: web.Request) -> dict | None:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


async def open_site(node: Node, sock: socket.socket) -> web.AppRunner:
    """Serve a started node on a bound listening socket (here, and in a Ray actor: runtime/ray_node.py)."""
    runner = web.AppRunner(node.app(), access_log=None, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


async def _main(run_dir: Path, node_id: str, fd: int | None) -> None:
    from ..model.scenario import load_scenario

    t0 = time.perf_counter()
    cfg = json.loads((run_dir / "serve.json").read_text())
    token = (run_dir / "token").read_text().strip()
    node = Node(cfg, node_id, load_scenario(cfg["scenario"]), token)
    print(f"node {node_id}: scenario loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    await node.start()
    if node.resumed:
        print(f"node {node_id}: resumed from checkpoint {node.control.checkpoint} at slot {node.control.resumed_from}", flush=True)
    print(f"node {node_id}: {len(node.store.sessions)} models loaded, warm, in {time.perf_counter() - t0:.1f} s", flush=True)
    if fd is None:  # restarted by hand (python -m idn.runtime.node RUN NODE): bind the address the run gave it
        from urllib.parse import urlparse

        from .launcher import bind

        url = urlparse(node.peers[node_id])
        sock = bind(url.hostname, url.port)
    else:
        sock = socket.socket(fileno=fd)
    runner = await open_site(node, sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()

    async def orphan_watch():  # the launcher died without stopping us: stop too
        while os.getppid() == parent:
            await asyncio.sleep(0.5)
        stop.set()

    watch = asyncio.create_task(orphan_watch())
    print(f"node {node_id}: serving on {node.peers[node_id]}", flush=True)
    await stop.wait()
    t0 = time.perf_counter()
    watch.cancel()
    await runner.cleanup()  # finishes the requests in flight
    t1 = time.perf_counter()
    await node.stop()
    print(f"node {node_id}: stopped (server {t1 - t0:.2f} s, node {time.perf_counter() - t1:.2f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = (argv or sys.argv[1:])[:3]
    if len(args) < 2:
        print("usage: python -m idn.runtime.node RUN_DIR NODE_ID [LISTEN_FD]", file=sys.stderr)
        return 2
    asyncio.run(_main(Path(args[0]), args[1], int(args[2]) if len(args) > 2 else None))
    # everything is closed and flushed: skip the interpreter's teardown (numba and
    # onnxruntime make it take seconds on a busy machine, and a stop should be prompt)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
