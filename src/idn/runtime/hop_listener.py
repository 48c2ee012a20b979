"""The node-to-node door: forwarded inference requests served without
aiohttp's server, on the node's own port.

A node's :class:`~.forwarding.HopPool` opens each connection with
:data:`PREFACE`. The node's listening socket (:class:`HopSite`) looks at the
first bytes of every connection it accepts: a connection that opens with the
preface is a hop connection, served here (:class:`HopConnection`); any other
is handed, bytes and all, to aiohttp's server, which serves it as before. So
no node has a second address to advertise, and a node the Ray backend
restarts elsewhere is followed as before (the peers map holds one URL).

A hop connection carries only what a HopPool writes: HTTP/1.1 ``POST``s of
``/v2/models/{task}/infer`` with a Content-Length body and an
``IDN-Forwarded`` header, one at a time, kept alive. Its requests go through
the same :meth:`~.dataplane.DataPlane.infer` as aiohttp's handler, which
checks the header's MAC (:func:`~.forwarding.verify`). Anything else (no
header, a proof that fails, a malformed or oversized request, garbage) gets
a 4xx answer and the connection is closed, as is a connection after any
error answer: hop connections are cheap to reopen and errors rare.

Why: one sequential request through aiohttp's server costs 170-220 us of
CPU here; a hop crosses a server twice (benchmarks/README.md, per-hop).
"""

from __future__ import annotations

import asyncio
import socket
import time
from http import HTTPStatus
from urllib.parse import unquote

from aiohttp import web

from .forwarding import PREFACE
from .oip import JSON, error_body

MAX_HEAD = 16384  # bytes of request line and headers (a HopPool writes about 250)
PREFIX = "/v2/models/"
REASONS = {s.value: s.phrase for s in HTTPStatus}


class HopSite(web.SockSite):
    """aiohttp's site on a bound socket, with the door in front of aiohttp's
    server; :meth:`stop` also ends the hop connections (those in the middle
    of a request after its answer)."""

    def __init__(self, runner: web.AppRunner, sock, node, max_body: int, shutdown_timeout: float = 5.0):
        super().__init__(runner, sock, shutdown_timeout=shutdown_timeout)
        self.node, self.max_body, self.wait_s = node, max_body, shutdown_timeout
        self.unix = sock.family == socket.AF_UNIX  # the node's Unix socket (launcher.py): hops from nodes of this host
        self.conns: set = set()  # open connections still at the door, or served here

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner (SockSite.start would also listen)
        server = self._runner.server
        self._server = await asyncio.get_running_loop().create_server(lambda: _Door(self, server), sock=self._sock, backlog=self._backlog)

    async def stop(self) -> None:
        await super().stop()  # no new connections
        for c in list(self.conns):
            c.shut()
        deadline = time.monotonic() + self.wait_s
        while any(getattr(c, "busy", False) for c in self.conns) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


class _Door(asyncio.Protocol):
    """A new connection, until its first bytes say whose it is."""

    def __init__(self, site: HopSite, server):
        self.site, self.server = site, server
        self.transport = None
        self.buf = b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.site.conns.add(self)

    def connection_lost(self, exc) -> None:
        self.site.conns.discard(self)

    def shut(self) -> None:
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        if len(buf) < len(PREFACE) and PREFACE.startswith(buf):
            self.buf = buf  # too short to tell yet
            return
        self.site.conns.discard(self)
        if buf.startswith(PREFACE):
            proto, buf = HopConnection(self.site), buf[len(PREFACE) :]
            self.site.conns.add(proto)
        else:
            proto = self.server()  # aiohttp's own handler for the connection, as its server would make it
        self.transport.set_protocol(proto)
        proto.connection_made(self.transport)
        if buf:
            proto.data_received(buf)


class HopConnection(asyncio.Protocol):
    """One kept-alive hop connection: a request at a time, answered in order."""

    def __init__(self, site: HopSite):
        self.site, self.node = site, site.node
        self.transport = None
        self.buf = bytearray()
        self.busy = self.closing = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closing = True
        self.site.conns.discard(self)

    def shut(self) -> None:
        self.closing = True
        if not self.busy:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy and not self.closing:
            self._next()
        elif len(self.buf) > MAX_HEAD + self.site.max_body:  # more than one request ahead: let the sender wait
            self.transport.pause_reading()

    def _next(self) -> None:
        """Start the request whole in the buffer, if any; refuse one that cannot be."""
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0 or end > MAX_HEAD:
            if end > MAX_HEAD or len(buf) > MAX_HEAD:
                self._refuse(431, f"request head over {MAX_HEAD} bytes")
            return
        try:
            lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                k, colon, v = line.partition(":")
                if not colon:
                    raise ValueError(f"malformed header line {line[:60]!r}")
                headers[k.strip().lower()] = v.strip()
        except ValueError as exc:
            self._refuse(400, f"malformed request: {str(exc)[:100]}")
            return
        n = headers.get("content-length", "")
        if method != "POST" or version != "HTTP/1.1" or "transfer-encoding" in headers or not (n.isdigit() and len(n) < 16):
            self._refuse(400, "a hop connection takes HTTP/1.1 POSTs with a Content-Length body only")
            return
        if int(n) > self.site.max_body:
            self._refuse(413, f"request body too large: {n} bytes, at most {self.site.max_body}")
            return
        start = end + 4
        if len(buf) < start + int(n):
            return  # the body is still coming
        body = bytes(buf[start : start + int(n)])
        del buf[: start + int(n)]
        task, ver = _task_of(target)
        fwd = headers.get("idn-forwarded")
        if task is None or fwd is None:
            self._refuse(404 if task is None else 403, "a hop connection takes forwarded inference requests only "
                         "(POST /v2/models/{task}/infer with IDN-Forwarded)")  # fmt: skip
            return
        t0 = time.perf_counter()
        self.node.counters["hop_requests"] += 1
        if self.site.unix:
            self.node.counters["hop_requests_unix"] += 1
        err = self.node.infer_received(task, ver)
        if err is not None:
            self._answer(err)
            return
        self.busy = True
        coro = self.node.infer(task, body, headers.get("inference-header-content-length"), fwd, t0)
        asyncio.get_running_loop().create_task(coro).add_done_callback(self._done)

    def _done(self, fut: asyncio.Task) -> None:
        self.busy = False
        if fut.cancelled():  # the loop is shutting down
            self.transport.close()
            return
        if not self.closing and not self.transport.is_reading():
            self.transport.resume_reading()
        try:
            answer = fut.result()
        except Exception as exc:  # noqa: BLE001 - the request's error (as aiohttp would answer 500); the node goes on
            answer = (500, error_body(f"{type(exc).__name__}: {str(exc)[:200]}"), JSON, {})
        self._answer(answer)
        if self.buf and not self.closing:
            self._next()  # a request that arrived meanwhile

    def _answer(self, answer) -> None:
        status, body, ctype, extra = answer
        if self.transport.is_closing():
            return  # the forwarding node gave up (its timeout): nobody to answer
        # an error ends the connection: after a refused request its bytes cannot be trusted to frame the next
        close = status >= 400 or self.closing
        head = f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
        if close:
            head += "Connection: close\r\n"
        self.transport.write(f"{head}\r\n".encode("latin-1") + body)
        if close:
            self.closing = True
            self.transport.close()

    def _refuse(self, status: int, msg: str) -> None:
        self.node.counters["errors"] += 1
        self.node.metrics.errors.inc()
        self.closing = True
        self._answer((status, error_body(msg), JSON, {}))


def _task_of(target: str) -> tuple[str | None, str | None]:
    """(task, version or None) of an infer route, (None, None) for any other."""
    if not target.startswith(PREFIX) or not target.endswith("/infer"):
        return None, None
    parts = target[len(PREFIX) : -len("/infer")].split("/")
    if len(parts) == 1:
        return unquote(parts[0]), None
    if len(parts) == 3 and parts[1] == "versions":
        return unquote(parts[0]), unquote(parts[2])
    return None, None
