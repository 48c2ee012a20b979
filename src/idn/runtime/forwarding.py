"""Node-to-node forwarding: the proof a forwarded request carries, and one
kept-alive connection pool per next hop.

**The proof.** A node forwards a request as it came (body and headers the
protocol reads) and adds one header::

    IDN-Forwarded: SLOT;HOPS;MAC

SLOT is the slot the request was stamped with where it entered, HOPS the
indices (in the scenario's node order) of the nodes it passed, the entry
first, and MAC the HMAC-SHA256, keyed with the run's token, of the task, the
``Inference-Header-Content-Length``, SLOT, HOPS and the body. The token
never travels on the data plane, and a MAC binds the fields to that body. A
request without a valid header is an entering request; one that carries the
header with a MAC that does not check out is refused (403).

**The client.** :class:`HopPool` keeps idle HTTP/1.1 connections to one next
hop and sends a request in one write. It opens each connection with
:data:`PREFACE`, which makes the next node serve it without aiohttp's server
(:mod:`.hop_listener`). A next hop started by the same launcher (so on the
same host: ``serve.json``'s ``hop_sockets``) is reached through its Unix
socket, any other by TCP, as is a same-host one whose Unix socket does not
answer (a node restarted by hand elsewhere). It speaks only to the IDN's own nodes,
whose answers always carry a Content-Length (chunked answers are refused), and
it exists because it is cheaper: aiohttp's client spent 210-340 us of CPU
per request on this machine, this one 50-100 us (benchmarks/README.md).
A Unix socket's round trip between two processes here is 10-30% shorter
than loopback TCP's (benchmarks/README.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time


FORWARD_HEADER = "IDN-Forwarded"
SERVED_HEADER = "IDN-Served"  # "NODE;MODEL" (indices): where an answer was served, read by caches below
PREFACE = b"IDN-HOP/1\r\n"  # the first bytes of a hop connection (hop_listener.py)
IDLE_S = 20.0  # an idle connection older than this is dropped, not trusted to be still open


def _mac(key: bytes, task: str, header_length: str | None, slot: int, hops: str, body: bytes) -> str:
    msg = f"{task};{header_length or ''};{slot};{hops}\n".encode() + body
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def sign(key: bytes, task: str, header_length: str | None, slot: int, hops: tuple[int, ...], body: bytes) -> str:
    """The IDN-Forwarded header value for a request forwarded with these fields."""
    h = ",".join(map(str, hops))
    return f"{slot};{h};{_mac(key, task, header_length, slot, h, body)}"


def verify(key: bytes, value: str, task: str, header_length: str | None, body: bytes, n_nodes: int) -> tuple[int, tuple[int, ...]] | str:
    """(slot, hops) of a forwarded request whose proof checks out, else the reason it does not."""
    parts = value.split(";")
    if len(parts) != 3:
        return "malformed IDN-Forwarded header"
    slot, hops, mac = parts
    t = _int(slot)
    if not hmac.compare_digest(mac.encode(), _mac(key, task, header_length, t, hops, body).encode()):
        return "forwarded request without a valid proof (IDN-Forwarded MAC)"
    seq = tuple(map(_int, hops.split(",")))
    if t < 0 or min(seq) < 0 or max(seq) >= n_nodes or len(set(seq)) != len(seq):
        return "malformed IDN-Forwarded fields"
    return t, seq


def _int(s: str) -> int:
    return int(s) if s.isdigit() and len(s) < 16 else -1


class HopError(Exception):
    """The next hop did not answer well: refused, reset, closed or garbled."""


class _Conn(asyncio.Protocol):
    def __init__(self):
        self.transport = None
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.last_used = time.monotonic()
        self.opening = PREFACE  # written with the first request: one segment, one wakeup at the next hop

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HopError(f"connection closed ({type(exc).__name__ if exc else 'by the peer'})"))

    def data_received(self, data: bytes):
        self.buf += data
        if self.waiter is None or self.waiter.done():
            return
        try:
            res = _response(self.buf)
        except HopError as exc:
            self.waiter.set_exception(exc)
            return
        if res is not None:
            self.waiter.set_result(res)


def _response(buf: bytearray):
    """(status, headers (lower-case names), body, keep-alive) once a whole answer is in buf, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        raise HopError(f"bad status line {lines[0][:60]!r}") from None
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        raise HopError("chunked answer (nodes always send a Content-Length)")
    n = int(headers.get("content-length", "0"))
    if len(buf) < end + 4 + n:
        return None
    body = bytes(buf[end + 4 : end + 4 + n])
    del buf[: end + 4 + n]
    return status, headers, body, headers.get("connection", "").lower() != "close"


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())


class HopPool:
    """Kept-alive connections to one next hop (host, port)."""

    def __init__(self, host: str, port: int, unix_path: str | None = None):
        self.host, self.port, self.unix_path = host, port, unix_path
        self.url = f"http://{host}:{port}"  # the peer address it was made for
        self.idle: list[_Conn] = []

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        if self.unix_path is not None:
            try:
                _, conn = await loop.create_unix_connection(_Conn, self.unix_path)
                return conn
            except OSError:  # no socket there (a node restarted by hand, elsewhere): its TCP address
                pass
        _, conn = await loop.create_connection(_Conn, self.host, self.port)
        return conn

    async def post(self, path: str, body: bytes, headers: dict[str, str], timeout: float):
        """(status, headers, body) of one POST; HopError, OSError or TimeoutError when the hop fails."""
        head = [f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"]
        head += [f"{k}: {v}\r\n" for k, v in headers.items()]
        data = "".join(head).encode("latin-1") + b"\r\n" + body
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.last_used < IDLE_S:
                try:
                    return await self._send(conn, data, timeout)
                except HopError:
                    if conn.buf:  # it had started to answer: the request may have been served
                        raise
                    # a kept-alive connection the server had just closed: the request never arrived; retry
            elif not conn.closed:
                conn.transport.close()
        return await self._send(await asyncio.wait_for(self._connect(), timeout), data, timeout)

    async def _send(self, conn: _Conn, data: bytes, timeout: float):
        loop = asyncio.get_running_loop()
        conn.buf.clear()
        if conn.closed or conn.transport.is_closing():
            raise HopError("connection closed before the request was sent")
        try:
            conn.transport.write(conn.opening + data if conn.opening else data)
            conn.opening = b""
        except RuntimeError as exc:  # uvloop: the peer went away between connect and write
            raise HopError(f"connection closed before the request was sent ({exc})") from None
        waiter = conn.waiter = loop.create_future()  # after the write: answers arrive in a later pass of the loop
        timer = loop.call_later(timeout, _expire, waiter)  # cheaper than asyncio.wait_for's wrapper
        try:
            status, headers, body, keep = await waiter
        except BaseException:
            conn.transport.close()  # a timed-out or broken connection is never reused
            raise
        finally:
            timer.cancel()
        conn.waiter = None
        conn.last_used = time.monotonic()
        if keep and not conn.closed and not conn.buf:
            self.idle.append(conn)
        else:
            conn.transport.close()
        return status, headers, body

    def close(self) -> None:
        for conn in self.idle:
            conn.transport.close()
        self.idle.clear()
