"""A node's side of the slot: its endpoints and loops for the control plane
(mixed into :class:`.node.Node`; the round itself is :mod:`.control`).

Two ways a slot ends:
- **wall clock** (default): slot t ends at the shared clock's boundary; a
  short grace later the node sends its counts up (static allocation) or runs
  INFIDA's round for t (live policy);
- **deterministic** (``idn serve --deterministic``): a driver (``idn load``)
  ends slot t with ``POST /v1/slot {"end": t}`` at every node once all of
  t's requests are answered; the call returns when the node's round is done
  and its new allocation is swapped in and announced.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import numpy as np
from aiohttp import web

from .node_parts import bad_request, check_token


class ControlEndpoints:
    control = None  # a ControlPlane when a live policy runs here

    # ---- the allocation -------------------------------------------------------------
    async def apply_allocation(self, models: set[int]) -> int:
        """Load, swap, unload, announce (a no-op when nothing changes); the number of models loaded."""
        if set(np.flatnonzero(self.hosts[self.v]).tolist()) == models:
            return 0
        loaded, _ = await self.store.apply(models, self.pool, self.metrics.loaded)
        row = np.zeros(self.idn.n_models, bool)
        row[list(models)] = True
        self.hosts[self.v] = row | self.idn.permanent[self.v]
        self.version += 1
        await self.announce()
        return len(loaded)

    async def control_call(self, w: int, route: str, body: bytes, timeout_s: float) -> bool:
        target = self.idn.nodes[w].id
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        try:
            async with self.client.put(f"{self.peers[target]}{route}", data=body, headers=headers,
                                       timeout=aiohttp.ClientTimeout(total=timeout_s)) as r:  # fmt: skip
                return r.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError, KeyError):
            return False

    async def refresh_allocations(self) -> None:
        """After a restart: ask the nodes this one routes through what they host now."""
        ups = sorted({int(u) for rho in np.flatnonzero(self.router.position >= 0) for u in self.router.path(rho)[self.router.position[rho] + 1:]})  # fmt: skip
        for u in ups:
            if self.idn.repository[u]:
                continue
            try:
                async with self.client.get(f"{self.peers[self.idn.nodes[u].id]}/v1/state") as r:
                    alloc = (await r.json())["allocation"]
                self.hosts[u] = self.idn.allocation_from_ids({self.idn.nodes[u].id: alloc})[u] > 0.5
            except (aiohttp.ClientError, asyncio.TimeoutError, KeyError, ValueError, TypeError):
                pass  # it will announce its next change

    # ---- ending a slot --------------------------------------------------------------
    def _take_arrivals(self, t: int) -> np.ndarray:
        counts = self.arrivals.pop(t, None)
        for old in [s for s in self.arrivals if s < t]:
            del self.arrivals[old]
        return np.zeros(self.rt.n_types) if counts is None else counts

    async def end_slot(self, t: int, start: float) -> dict:
        """Slot t is over: run the live policy's round, or send the counts up."""
        counts = self._take_arrivals(t)
        if self.control is not None:
            return await self.control.run_round(t, counts, start)
        await self._send_counts(t, counts)
        return {"slot": t, "requests": float(counts.sum()), "model_loads": 0, "messages_sent": 0,
                "messages_received": 0, "messages_missed": 0, "bytes_sent": 0}  # fmt: skip

    async def _send_counts(self, t: int, counts: np.ndarray) -> None:
        """The finished slot's arrival counts to the nodes up the paths: their
        capacity shares for the next slot depend on them."""
        mine = np.flatnonzero(counts)
        if mine.size == 0:
            return
        self.capacity.add_counts(t, mine, counts[mine])
        calls = []
        for u, types in self._count_targets.items():
            rows = [[self.id, self.idn.tasks[self.rt.task[r]], float(counts[r])] for r in types if counts[r] > 0]
            if rows:
                self.counters["counts_sent"] += 1
                calls.append(self._control(u, "/v1/counts", {"from": self.id, "slot": t, "counts": rows}))
        await asyncio.gather(*calls)

    async def _slot_loop(self) -> None:
        """Wall clock: end each slot at its boundary plus a small grace for requests in flight."""
        self._count_targets = self.router.upstream_of_types()
        t = self.clock.now()
        while True:
            boundary = self.clock.start(t + 1) + 0.02 * self.clock.seconds
            await asyncio.sleep(max(0.0, boundary - time.time()))
            try:
                await self.end_slot(t, boundary)
            except Exception as exc:  # a round that fails must not stop the node's clock
                print(f"node {self.id}: slot {t}: {type(exc).__name__}: {exc}", flush=True)
            t = max(t + 1, self.clock.now() - 1)  # a round that overran skips the slots it missed

    # ---- endpoints ------------------------------------------------------------------
    async def put_control(self, request: web.Request) -> web.Response:
        denied = check_token(request, self.token)
        if denied:
            return denied
        if not hasattr(self.control, "receive"):
            return bad_request(409, f"node {self.id!r} runs no policy that exchanges control messages")
        try:
            body = await request.json()
        except (ValueError, RecursionError) as exc:
            return bad_request(400, f"malformed JSON: {exc}")
        err = self.control.receive(body)
        return bad_request(400, err) if err else web.json_response({"ok": True})

    async def post_slot(self, request: web.Request) -> web.Response:
        """Deterministic mode: ``{"end": t}`` ends slot t (t = the current slot)."""
        denied = check_token(request, self.token)
        if denied:
            return denied
        if not self.cfg.get("deterministic"):
            return bad_request(409, "slots follow the wall clock here (start 'idn serve' with --deterministic to drive them)")
        try:
            body = await request.json()
        except (ValueError, RecursionError) as exc:
            return bad_request(400, f"malformed JSON: {exc}")
        t = body.get("end") if isinstance(body, dict) else None
        async with self._slot_lock:  # checked under the lock: a repeated call must not run the round twice
            if isinstance(t, bool) or not isinstance(t, int) or t != self.clock.slot:
                return bad_request(400, f"'end' must be the current slot, {self.clock.slot}")
            rec = await self.end_slot(t, time.time())
            self.clock.slot = t + 1
        return web.json_response(rec)

    async def get_history(self, request: web.Request) -> web.Response:
        """The rounds' records; ``?since=t``: those of slots >= t only (the dashboard polls with it)."""
        since = request.query.get("since", "0")
        if not since.isdigit() or len(since) > 15:
            return bad_request(400, f"'since' must be a slot (an integer >= 0), got {since!r}")
        records = self.control.history if self.control is not None else []
        return web.json_response([r for r in records if r["slot"] >= int(since)])

    def control_state(self) -> dict:
        return self.control.state() if self.control is not None else {}
