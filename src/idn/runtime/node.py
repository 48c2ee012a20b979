"""One IDN node: an aiohttp server in its own OS process (live-idn.md).

Data plane (:mod:`.dataplane`): the Open Inference Protocol, ``/v2/...``;
``POST /v2/models/{task}/infer`` serves a request here or forwards it one hop
up its path (:mod:`idn.runtime.routing` decides). Control: ``PUT /v1/allocation``
(Bearer token) swaps the allocation (:mod:`idn.runtime.store`) and announces
it to the nodes below; ``PUT /v1/announce`` and ``PUT /v1/counts`` take
other nodes' allocations and per-slot request counts. ``GET /v1/state``,
``GET /metrics`` (Prometheus), ``GET /healthz``.

Started by ``idn serve`` as ``python -m idn.runtime.node RUN NODE_ID FD [UNIX_FD]``:
the launcher binds the listening socket and passes its descriptor, so ports
are known before any node starts and never raced for; UNIX_FD is the node's
Unix socket, through which the nodes of the same host forward to it
(``serve.json``'s ``hop_sockets``, :mod:`.forwarding`).
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
from .dataplane import DataPlane
from .hop_listener import HopSite
from .live_policies import LIVE_POLICIES, make_control_plane
from .models import predict_all, read_catalog_files, task_classes
from .node_control import ControlEndpoints
from .node_parts import DrivenClock, NodeMetrics, SlotClock, bad_request, check_token
from .routing import Router, SlotCapacity, live_request_types
from .store import ModelStore

MAX_BODY = 1 << 20  # bytes of a request body, at either door (hop_listener.py)


class Node(DataPlane, ControlEndpoints):
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
        self.hop_sockets: dict[str, dict] = cfg.get("hop_sockets") or {}  # node -> {"url", "path"}: nodes of this host
        self.hop_timeout = float(cfg.get("hop_timeout_s", 2.0))
        self.latency_scale = float(cfg.get("latency_scale", 1.0))  # 0: no emulated link latency
        self.emulate = bool(cfg.get("emulate", True))  # False (--no-emulation): no emulated links nor service times
        self.max_batch = int(cfg.get("max_batch", 32))
        self.max_wait_s = float(cfg.get("max_batch_wait_us", 0)) / 1e6
        self.inline_ms = float(cfg.get("inline_ms", 0.1))  # models faster than this run in the event loop (batching.py)
        self.key = token.encode()  # the forwarding proof's HMAC key (forwarding.py)
        files = read_catalog_files(cfg["models"])
        self.n_features, self.model_service_ms = {}, {}
        model_files = {}
        for m, model in enumerate(idn.models):
            name = model.id.split("/", 1)[1]
            if name not in files:
                raise ValueError(f"model {model.id!r}: no file for {name!r} in {cfg['models']}/catalog.csv")
            model_files[m] = files[name]["file"]
            self.n_features[model.task] = files[name]["n_features"]
            self.model_service_ms[m] = files[name]["service_ms"]
        self.n_classes = task_classes(cfg["models"])
        self.store = ModelStore(model_files, [m.id for m in idn.models])
        # what this node believes every node hosts; its own row is the truth
        self.hosts = idn.allocation_from_ids(cfg.get("allocation") or {}) > 0.5
        self.version = 0
        self.pool = ThreadPoolExecutor(max_workers=min(4, self.node.workers), thread_name_prefix=f"infer-{node_id}")
        self.metrics = NodeMetrics(node_id, idn.tasks)
        self.batchers: dict = {}  # model index -> MicroBatcher
        self.hop_pools: dict = {}  # next hop (node index) -> HopPool: kept-alive connections
        self.stopping = False
        self.counters = {k: 0 for k in ("received", "entered", "served", "forwarded", "errors", "skipped_hops", "announcements", "counts_sent",
                                         "hop_requests", "hop_requests_unix")}  # on a hop connection (hop_listener.py), by Unix socket
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
            predict_all(sess, np.zeros((1, self.n_features[self.idn.models[m].task]), dtype=np.float32))
        self._tasks = [] if self.cfg.get("deterministic") else [asyncio.create_task(self._slot_loop())]

    async def stop(self) -> None:
        for pool in self.hop_pools.values():
            pool.close()
        for t in self._tasks:
            t.cancel()
        await self.client.close()
        self.pool.shutdown(wait=True)

    # ---- control plane ---------------------------------------------------------------
    async def put_allocation(self, request: web.Request) -> web.Response:
        denied = check_token(request, self.token)
        if denied:
            return denied
        try:
            body = await request.json()
        except (ValueError, RecursionError) as exc:
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
        app = web.Application(client_max_size=MAX_BODY)
        app.add_routes([
            web.get("/v2", self.v2_server), web.get("/v2/health/live", self.v2_live), web.get("/v2/health/ready", self.v2_ready),
            web.get("/v2/models/{task}", self.v2_model), web.get("/v2/models/{task}/versions/{version}", self.v2_model),
            web.get("/v2/models/{task}/ready", self.v2_model_ready),
            web.get("/v2/models/{task}/versions/{version}/ready", self.v2_model_ready),
            web.post("/v2/models/{task}/infer", self.v2_infer), web.post("/v2/models/{task}/versions/{version}/infer", self.v2_infer),
            web.post("/v1/infer", self.v1_infer_gone), web.get("/v1/state", self.state),
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
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


async def open_site(node: Node, sock: socket.socket, unix: socket.socket | None = None) -> web.AppRunner:
    """Serve a started node on a bound listening socket (here, and in a Ray actor:
    runtime/ray_node.py), and on its Unix socket if it has one: the same door on both."""
    runner = web.AppRunner(node.app(), access_log=None, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    for s in (sock, unix) if unix is not None else (sock,):
        await HopSite(runner, s, node, MAX_BODY).start()  # aiohttp's server, and hop connections served beside it
    return runner


async def _main(run_dir: Path, node_id: str, fd: int | None = None, unix_fd: int | None = None) -> None:
    from ..model.scenario import load_scenario

    # the launcher that started us, taken before the long start-up (scenario, models, warm-up): a
    # launcher that dies meanwhile must still stop us, not leave us serving as init's child
    parent = os.getppid()
    t0 = time.perf_counter()
    cfg = json.loads((run_dir / "serve.json").read_text())
    token = (run_dir / "token").read_text().strip()
    node = Node(cfg, node_id, load_scenario(cfg["scenario"]), token)
    print(f"node {node_id}: scenario loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    await node.start()
    if node.resumed:
        print(f"node {node_id}: resumed from checkpoint {node.control.checkpoint} at slot {node.control.resumed_from}", flush=True)
    print(f"node {node_id}: {len(node.store.sessions)} models loaded, warm, in {time.perf_counter() - t0:.1f} s", flush=True)
    own = (cfg.get("hop_sockets") or {}).get(node_id)
    if fd is None:  # restarted by hand (python -m idn.runtime.node RUN NODE): bind the addresses the run gave it
        from urllib.parse import urlparse

        from .launcher import bind, bind_unix

        url = urlparse(node.peers[node_id])
        sock = bind(url.hostname, url.port)
        unix = bind_unix(own["path"]) if own and Path(own["path"]).parent.is_dir() else None
    else:
        sock = socket.socket(fileno=fd)
        unix = socket.socket(fileno=unix_fd) if unix_fd is not None else None
    unix_path = unix.getsockname() if unix is not None else None  # removed at the end
    runner = await open_site(node, sock, unix)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def orphan_watch():  # the launcher died without stopping us: stop too
        while os.getppid() == parent:
            await asyncio.sleep(0.5)
        stop.set()

    watch = asyncio.create_task(orphan_watch())
    print(f"node {node_id}: serving on {node.peers[node_id]}", flush=True)
    await stop.wait()
    node.stopping = True  # /v2/health/ready says so while the requests in flight finish
    t0 = time.perf_counter()
    watch.cancel()
    await runner.cleanup()  # finishes the requests in flight
    if unix_path:
        Path(unix_path).unlink(missing_ok=True)
    t1 = time.perf_counter()
    await node.stop()
    print(f"node {node_id}: stopped (server {t1 - t0:.2f} s, node {time.perf_counter() - t1:.2f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = (argv or sys.argv[1:])[:4]
    if len(args) < 2:
        print("usage: python -m idn.runtime.node RUN_DIR NODE_ID [LISTEN_FD [UNIX_FD]]", file=sys.stderr)
        return 2
    run = asyncio.run
    if os.environ.get("IDN_EVENT_LOOP", "uvloop") == "uvloop":
        try:  # measured: a node's CPU per request falls by a quarter to a half (benchmarks/README.md)
            import uvloop

            run = uvloop.run
        except ImportError:  # not on this platform: the standard loop serves too
            pass
    fds = [int(a) for a in args[2:]]
    run(_main(Path(args[0]), args[1], *fds))
    # everything is closed and flushed: skip the interpreter's teardown (numba and
    # onnxruntime make it take seconds on a busy machine, and a stop should be prompt)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
