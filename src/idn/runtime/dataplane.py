"""A node's data plane: the Open Inference Protocol (:mod:`.oip`) at every
node, the serving rule (:mod:`.routing`) behind it (mixed into
:class:`.node.Node`).

``POST /v2/models/{task}/infer``:

- **entering** (no ``IDN-Forwarded`` header): the body is parsed and checked
  here, so that nothing malformed travels or counts; the request is stamped
  with this node's slot and counted as an arrival of its type;
- **forwarded** (the header, with a MAC that checks out, :mod:`.forwarding`):
  slot and hops come from the header; the body is parsed only if the
  request is served here;
- then the serving rule: serve here (micro-batched, :mod:`.batching`), or
  pass the request one hop up, body and protocol headers as they came, and
  its answer back down as it came.

The answer's ``parameters`` say where and by what it was served:
``idn_node``, ``idn_model``, ``idn_hops`` (forwards), ``idn_path`` (the nodes
it passed, comma-separated), ``idn_slot``, and timings in ms.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote, urlparse

import numpy as np
from aiohttp import web

from .._version import __version__
from .batching import MicroBatcher
from .forwarding import FORWARD_HEADER, SERVED_HEADER, HopError, HopPool, sign, verify
from .oip import BINARY, JSON, ProtocolError, encode_response, error_body, model_metadata, parse_infer, server_metadata

HEADER_LENGTH = "Inference-Header-Content-Length"
Answer = tuple[int, bytes, str, dict]  # status, body, content type, further headers: what either door writes


class DataPlane:
    # ---- metadata and health -----------------------------------------------------
    async def v2_server(self, request: web.Request) -> web.Response:
        return web.json_response(server_metadata(self.id, __version__))

    async def v2_live(self, request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def v2_ready(self, request: web.Request) -> web.Response:
        # serving starts only once the models are loaded and warm, and stops before they go
        return web.json_response({"ready": not self.stopping}, status=503 if self.stopping else 200)

    def _task_or_404(self, request: web.Request):
        task = request.match_info["task"]
        err = self._task_error(task, request.match_info.get("version"))
        return (None, _response(err)) if err is not None else (task, None)

    def _task_error(self, task: str, ver: str | None) -> Answer | None:
        if task not in self.idn.task_index:
            return self._error(404, f"unknown model {task[:80]!r} (models: {', '.join(self.idn.tasks)})")
        if ver is not None and ver != "1":
            return self._error(404, f"model {task!r} has one version, '1' (the IDN picks the model behind it), not {ver[:40]!r}", task)
        return None

    async def v2_model(self, request: web.Request) -> web.Response:
        task, err = self._task_or_404(request)
        if err is not None:
            return err
        models = [m.id for m in self.idn.models if m.task == task]
        return web.json_response(model_metadata(task, self.n_features[task], self.n_classes[task], models))

    async def v2_model_ready(self, request: web.Request) -> web.Response:
        task, err = self._task_or_404(request)
        if err is not None:
            return err
        # a task is always servable: the repository at the end of every path holds all its models
        return web.json_response({"name": task, "ready": not self.stopping}, status=503 if self.stopping else 200)

    async def v1_infer_gone(self, request: web.Request) -> web.Response:
        return self._fail(410, "POST /v1/infer is gone: use the Open Inference Protocol, POST /v2/models/{task}/infer (docs/live.md)")

    # ---- inference -----------------------------------------------------------------
    async def v2_infer(self, request: web.Request) -> web.Response:
        t0 = time.perf_counter()
        task = request.match_info["task"]
        err = self.infer_received(task, request.match_info.get("version"))
        if err is None:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge as exc:
                err = self._error(413, f"request body too large: {exc.text}", task)
        if err is None:
            h = request.headers
            err = await self.infer(task, body, h.get(HEADER_LENGTH), h.get(FORWARD_HEADER), t0)
        return _response(err)

    def infer_received(self, task: str, ver: str | None) -> Answer | None:
        """Count an infer request as it arrives (at either door, aiohttp's or
        :mod:`.hop_listener`'s); the error answer if it names no model here."""
        self.counters["received"] += 1
        self.metrics.received.inc()
        return self._task_error(task, ver)

    async def infer(self, task: str, body: bytes, hl: str | None, fwd: str | None, t0: float) -> Answer:
        """An infer request's answer, (status, body, content type, headers),
        from its body and the two headers the protocol and the IDN read; what
        both doors call, so that a forwarded request is served alike through either."""
        req = None
        if fwd is None:  # an entering request: checked here, stamped, counted
            try:
                req = parse_infer(body, hl, task, self.n_features[task])
            except ProtocolError as exc:
                return self._error(exc.status, str(exc), task)
            slot, hops = self.clock.now(), ()
            self.counters["entered"] += 1
            rho = self.router.request_type(self.id, task)
            counts = self.arrivals.get(slot)
            if counts is None:
                counts = self.arrivals[slot] = np.zeros(self.rt.n_types)
            counts[rho] += 1
        else:
            got = verify(self.key, fwd, task, hl, body, self.idn.n_nodes)
            if isinstance(got, str):
                return self._error(403, got, task)
            slot, hops = got
            rho = self.rt.key_index.get((self.idn.nodes[hops[0]].id, task))
            if rho is None or self.router.position[rho] <= 0 or self.v in hops:
                return self._error(400, f"this node is not up the path of requests from {self.idn.nodes[hops[0]].id!r}", task)
        d = self.router.decide(rho, self.hosts, lambda e: self.capacity.has_capacity(e, slot))
        if not d.serve:
            return await self._forward(rho, d.next_hop, task, body, hl, slot, (*hops, self.v))
        if req is None:
            try:
                req = parse_infer(body, hl, task, self.n_features[task])
            except ProtocolError as exc:
                return self._error(exc.status, str(exc), task)
        return await self._serve(rho, d.entry, task, req, slot, (*hops, self.v), t0)

    async def _serve(self, rho: int, e: int, task: str, req, slot: int, path: tuple, t0: float) -> Answer:
        m = int(self.rt.model[e])
        self.capacity.take(e, slot)  # before the await: a concurrent request must see the slot taken
        try:
            label, probs, queued, run_s, batch = await self._batcher(m).run(self.store.session(m), req.x)
        except Exception as exc:  # noqa: BLE001 - the model failed on a valid input: the request's error, the node goes on
            return self._error(500, f"model {self.idn.models[m].id!r} failed: {type(exc).__name__}: {str(exc)[:200]}", task)
        ms = run_s * 1000.0
        # the scenario's service time tau (the node's hardware, docs/model.md section 2) is
        # emulated as links are: the answer waits out what the real model did not take
        extra = max(0.0, self.latency_scale * float(self.idn.service_time_ms[self.v, m]) - ms) if self.emulate else 0.0
        if extra > 0:
            await asyncio.sleep(extra / 1000.0)
        self.counters["served"] += 1
        if hasattr(self.control, "observe"):
            self.control.observe(rho, self.v, m)
        model_id = self.idn.models[m].id
        self.metrics.served(model_id, ms)
        ids = self.idn.nodes
        link = 2.0 * self.latency_scale * self.router.link_ms(rho, 0, int(self.router.position[rho])) if self.emulate else 0.0
        params = {"idn_node": self.id, "idn_model": model_id, "idn_hops": len(path) - 1,
                  "idn_path": ",".join(ids[u].id for u in path), "idn_slot": slot, "idn_service_ms": ms,
                  "idn_queue_ms": queued * 1000.0, "idn_batch_size": batch, "idn_emulated_service_ms": extra,
                  "idn_emulated_link_ms": link}  # fmt: skip
        body, hl = encode_response(task, req, label, probs, params)
        nv = self.metrics.triton.values[task]
        nv["nv_inference_request_success"] += 1
        nv["nv_inference_queue_duration_us"] += queued * 1e6
        nv["nv_inference_request_duration_us"] += (time.perf_counter() - t0) * 1e6
        headers = {SERVED_HEADER: f"{self.v};{m}"}
        if hl is not None:
            headers[HEADER_LENGTH] = str(hl)
        return 200, body, BINARY if hl is not None else JSON, headers

    def _batcher(self, m: int) -> MicroBatcher:
        b = self.batchers.get(m)
        if b is None:
            nv = self.metrics.triton.values[self.idn.models[m].task]

            def on_batch(n: int, seconds: float) -> None:
                nv["nv_inference_count"] += n
                nv["nv_inference_exec_count"] += 1
                nv["nv_inference_compute_infer_duration_us"] += seconds * 1e6

            inline = self.model_service_ms[m] < self.inline_ms
            b = self.batchers[m] = MicroBatcher(self.max_batch, self.max_wait_s, inline, self.pool, on_batch)
        return b

    async def _forward(self, rho: int, k: int, task: str, body: bytes, hl: str | None, slot: int, hops: tuple) -> Answer:
        """Send the request one hop up as it came, with the proof; a node that
        does not answer in time is skipped (the next one up gets it). The
        emulated link latency is waited out here, on the sending side, once each way."""
        path = self.router.path(rho)
        here = int(self.router.position[rho])
        headers = {FORWARD_HEADER: sign(self.key, task, hl, slot, hops, body), "Content-Type": JSON}
        if hl is not None:
            headers[HEADER_LENGTH] = hl
        route = f"/v2/models/{quote(task, safe='')}/infer"
        reasons = []
        while k < len(path):
            target = int(path[k])
            wait = self.latency_scale * self.router.link_ms(rho, here, k) / 1000.0 if self.emulate else 0.0
            try:
                if wait > 0:
                    await asyncio.sleep(wait)
                # the answer may come from further up: allow each remaining hop its timeout and links
                limit = self.hop_timeout * (len(path) - k) + 2.0 * self.router.link_ms(rho, k, len(path) - 1) / 1000.0
                status, rh, rbody = await self._hop(target).post(route, body, headers, limit)
                if wait > 0:
                    await asyncio.sleep(wait)
            except (HopError, OSError, asyncio.TimeoutError, KeyError) as exc:  # KeyError: a node with no address now (lost)
                reasons.append(f"{self.idn.nodes[target].id}: {type(exc).__name__}")
                self.counters["skipped_hops"] += 1
                self.metrics.skipped.inc()
                k += 1
                continue
            self.counters["forwarded"] += 1
            self.metrics.forwarded.inc()
            out = {}
            served = rh.get("idn-served")
            if served is not None:
                out[SERVED_HEADER] = served
                self._observe(rho, served)
            if "inference-header-content-length" in rh:
                out[HEADER_LENGTH] = rh["inference-header-content-length"]
            ctype = rh.get("content-type", JSON).split(";")[0]
            return status, rbody, ctype, out
        return self._error(503, f"no node up the path answered ({'; '.join(reasons)})", task)

    def _hop(self, u: int) -> HopPool:
        """The pool of next hop u, at the address peers gives now (a node restarted
        elsewhere, e.g. by the Ray backend, comes back at a new one)."""
        name = self.idn.nodes[u].id
        url = self.peers[name]
        pool = self.hop_pools.get(u)
        if pool is None or pool.url != url:
            if pool is not None:
                pool.close()
            parsed = urlparse(url)
            # a node of this host (started by the same launcher) at the address it was given: its Unix socket
            unix = self.hop_sockets.get(name)
            path = unix["path"] if unix is not None and unix.get("url") == url else None
            pool = self.hop_pools[u] = HopPool(parsed.hostname, parsed.port, path)
            pool.url = url
        return pool

    def _observe(self, rho: int, served: str) -> None:
        """A cache learns from where its requests were served."""
        if not hasattr(self.control, "observe"):
            return
        try:
            where, model = (int(s) for s in served.split(";"))
        except ValueError:
            return
        if 0 <= where < self.idn.n_nodes and 0 <= model < self.idn.n_models:
            self.control.observe(rho, where, model)

    def _fail(self, status: int, msg: str, task: str | None = None) -> web.Response:
        return _response(self._error(status, msg, task))

    def _error(self, status: int, msg: str, task: str | None = None) -> Answer:
        self.counters["errors"] += 1
        self.metrics.errors.inc()
        if task is not None:
            self.metrics.triton.values[task]["nv_inference_request_failure"] += 1
        return status, error_body(msg), JSON, {}


def _response(a: Answer) -> web.Response:
    status, body, ctype, headers = a
    return web.Response(body=body, status=status, headers=headers, content_type=ctype)
