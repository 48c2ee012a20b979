"""The node-to-node door (runtime/hop_listener.py) of a running ``idn serve``,
over real sockets: forwarded requests on a hop connection are served as
through aiohttp's server; without a valid proof, or malformed, oversized,
nested 100,000 deep or plain garbage, they are refused (4xx or a closed
connection) and change nothing; a hop connection stays alive for many
requests; and nodes forward to each other through it, by their Unix
sockets when started on one host, answered as over TCP."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import stat
import time
import urllib.request

import pytest
from runtime_helpers import infer, models_dir, serving, where  # noqa: F401

from idn.runtime import forwarding

ALLOCATION = {"ap-1": ["digits/digits-logreg"], "ap-2": [], "edge-1": ["wine/wine-mlp-small"],
              "regional-1": ["breast_cancer/breast_cancer-forest"]}  # fmt: skip
TIMINGS = ("idn_service_ms", "idn_queue_ms", "idn_batch_size")  # what may differ between two servings of one request


@pytest.fixture(scope="module")
def cluster(models_dir, tmp_path_factory):  # noqa: F811
    run_dir = tmp_path_factory.mktemp("hop") / "run"
    with serving(models_dir / "live-demo.yaml", models_dir, run_dir, ALLOCATION, extra=["--no-emulation"]) as (nodes, _):
        ids = [n["id"] for n in json.loads((run_dir / "nodes.json").read_text())]
        yield {"key": (run_dir / "token").read_text().strip().encode(), "nodes": nodes, "index": {n: i for i, n in enumerate(ids)},
               "run_dir": run_dir}  # fmt: skip


def _body(n: int, v: float = 0.5, **extra) -> bytes:
    return json.dumps({"inputs": [{"name": "X", "shape": [1, n], "datatype": "FP32", "data": [v] * n}], **extra}).encode()


def _port(c, node: str) -> int:
    return int(c["nodes"][node]["url"].rsplit(":", 1)[1])


def _request(body: bytes, headers: dict, task: str = "wine") -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"POST /v2/models/{task}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body


def _signed(c, body: bytes, task: str = "wine", slot: int = 0) -> bytes:
    return _request(body, {forwarding.FORWARD_HEADER: forwarding.sign(c["key"], task, None, slot, (c["index"]["ap-1"],), body)}, task)


def _read(sock: socket.socket, buf: bytearray):
    """(status, headers, body) of the next answer on sock, or None if it closes first."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None
        buf += data
    end = buf.find(b"\r\n\r\n")
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    n = int(headers["content-length"])
    while len(buf) < end + 4 + n:
        data = sock.recv(65536)
        if not data:
            return None
        buf += data
    body = bytes(buf[end + 4 : end + 4 + n])
    del buf[: end + 4 + n]
    return int(lines[0].split(" ")[1]), headers, body


def _hop(port: int, data: bytes, answers: int = 1):
    """Open a hop connection, send data, read answers; then whether the node closed it."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(forwarding.PREFACE + data)
        buf = bytearray()
        got = [_read(s, buf) for _ in range(answers)]
        return got, _closed(s, 0.5)


def _closed(s: socket.socket, wait: float) -> bool:
    """Whether the node closes s within wait seconds (a reset: closed with our bytes unread)."""
    s.settimeout(wait)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _state(c, node: str) -> dict:
    with urllib.request.urlopen(c["nodes"][node]["url"] + "/v1/state", timeout=10) as r:
        return json.loads(r.read())["counters"]


def _same(a: dict, b: dict) -> bool:
    strip = {k: v for k, v in a["parameters"].items() if k not in TIMINGS}
    return {**a, "parameters": strip} == {**b, "parameters": {k: v for k, v in b["parameters"].items() if k not in TIMINGS}}


def test_a_forwarded_request_is_answered_as_through_aiohttp(cluster):
    c = cluster
    body = _body(13, 0.25, id="same")
    sig = forwarding.sign(c["key"], "wine", None, 0, (c["index"]["ap-1"],), body)
    req = urllib.request.Request(c["nodes"]["edge-1"]["url"] + "/v2/models/wine/infer", data=body, method="POST",
                                 headers={"Content-Type": "application/json", forwarding.FORWARD_HEADER: sig})  # fmt: skip
    with urllib.request.urlopen(req, timeout=20) as r:
        via_aiohttp, served_header = json.loads(r.read()), r.headers[forwarding.SERVED_HEADER]
    before = _state(c, "edge-1")
    (got,), closed = _hop(_port(c, "edge-1"), _signed(c, body))
    status, headers, raw = got
    assert status == 200 and not closed and headers["content-type"] == "application/json"
    assert headers["idn-served"] == served_header
    via_hop = json.loads(raw)
    assert _same(via_hop, via_aiohttp) and via_hop["id"] == "same", (via_hop, via_aiohttp)
    assert where(via_hop) == ("edge-1", "wine/wine-mlp-small", ["ap-1", "edge-1"])
    after = _state(c, "edge-1")
    assert after["hop_requests"] == before["hop_requests"] + 1 and after["served"] == before["served"] + 1
    assert after["entered"] == before["entered"]


def test_nodes_forward_to_each_other_through_it(cluster):
    c = cluster
    before = {n: _state(c, n) for n in ("edge-1", "regional-1")}
    for task, n, node in (("wine", 13, "edge-1"), ("breast_cancer", 30, "regional-1")):
        for i in range(5):
            status, out = infer(c["nodes"]["ap-1"]["url"], task, [0.1 * i] * n)
            assert status == 200 and where(out)[0] == node and where(out)[2][0] == "ap-1"
    after = {n: _state(c, n) for n in ("edge-1", "regional-1")}
    # wine: 5 hop requests at the edge; breast cancer: 5 at the edge (passed on) and 5 at the regional node
    assert after["edge-1"]["hop_requests"] - before["edge-1"]["hop_requests"] == 10
    assert after["regional-1"]["hop_requests"] - before["regional-1"]["hop_requests"] == 5
    assert after["regional-1"]["served"] - before["regional-1"]["served"] == 5


def test_a_hop_connection_stays_alive_for_many_requests_answered_in_order(cluster):
    c = cluster
    values = [i / 200 for i in range(200)]
    with socket.create_connection(("127.0.0.1", _port(c, "edge-1")), timeout=20) as s:
        s.sendall(forwarding.PREFACE)
        buf = bytearray()
        for i, v in enumerate(values):
            s.sendall(_signed(c, _body(13, v, id=f"r{i}")))
            status, _, raw = _read(s, buf)
            assert status == 200 and json.loads(raw)["id"] == f"r{i}"
        # two requests in one write (pipelined): two answers, in order
        s.sendall(_signed(c, _body(13, id="a")) + _signed(c, _body(13, id="b")))
        assert [json.loads(_read(s, buf)[2])["id"] for _ in range(2)] == ["a", "b"]


def test_requests_without_a_valid_proof_are_refused_and_change_nothing(cluster):
    c = cluster
    body = _body(13)
    good = forwarding.sign(c["key"], "wine", None, 0, (c["index"]["ap-1"],), body)
    before = _state(c, "edge-1")
    for headers in ({}, {forwarding.FORWARD_HEADER: "0;3;" + "0" * 64}, {forwarding.FORWARD_HEADER: "garbage"},
                    {forwarding.FORWARD_HEADER: good, "Inference-Header-Content-Length": "3"}):  # fmt: skip
        (got,), closed = _hop(_port(c, "edge-1"), _request(body, headers) + _signed(c, body))
        # refused, and the connection closed: the valid request written after it is never served
        assert got[0] == 403 and json.loads(got[2])["error"] and closed, (headers, got)
    # a valid proof for another body, or another task
    for data in (_request(_body(13, id="x"), {forwarding.FORWARD_HEADER: good}), _request(body, {forwarding.FORWARD_HEADER: good}, "digits")):
        (got,), closed = _hop(_port(c, "edge-1"), data)
        assert got[0] == 403 and closed
    after = _state(c, "edge-1")
    assert {k: after[k] - before[k] for k in ("served", "entered", "forwarded")} == {"served": 0, "entered": 0, "forwarded": 0}
    assert after["errors"] - before["errors"] == 6


def test_bad_bytes_get_a_4xx_or_a_closed_connection_and_the_node_stays_up(cluster):
    c = cluster
    deep = [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000]
    rng = random.Random(19)
    cases = [
        *(_signed(c, d) for d in deep),  # with a valid proof: the parse refuses it
        *(_request(d, {}) for d in deep),  # without one
        _request(b"x" * (2 << 20), {}),  # over the node's 1 MiB
        b"POST /v2/models/wine/infer HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"POST /v2/models/wine/infer HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n",
        _request(_body(13), {}, "nope") + b"",
        b"POST /v1/allocation HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /v2/models/wine/infer HTTP/1.0 extra\r\n\r\n",
        b"POST /v2/models/wine/infer HTTP/1.1\r\nno colon here\r\n\r\n",
        b"X" * 40_000,  # a head that never ends
        *(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))) + b"\r\n\r\n" for _ in range(20)),
    ]
    before = _state(c, "edge-1")
    for data in cases:
        with socket.create_connection(("127.0.0.1", _port(c, "edge-1")), timeout=20) as s:
            try:
                s.sendall(forwarding.PREFACE + data)
                got = _read(s, bytearray())
            except (ConnectionResetError, BrokenPipeError):  # closed before all was sent: refused too
                got = None
            assert got is None or 400 <= got[0] < 500, (data[:80], got)
            if got is not None:
                assert json.loads(got[2])["error"]
                assert _closed(s, 5.0)
    after = _state(c, "edge-1")
    assert after["served"] == before["served"] and after["entered"] == before["entered"]
    # bytes that are not a hop connection's go to aiohttp's server, which answers them as ever
    with socket.create_connection(("127.0.0.1", _port(c, "edge-1")), timeout=20) as s:
        s.sendall(b"IDN-HOX/1\r\n\r\n")
        got = _read(s, bytearray())
        assert got is None or got[0] == 400
    status, out = infer(c["nodes"]["edge-1"]["url"], "wine", [0.0] * 13)
    assert status == 200 and where(out)[0] == "edge-1"
    (got,), _ = _hop(_port(c, "edge-1"), _signed(c, _body(13)))
    assert got[0] == 200


# ---- the Unix sockets of the nodes of one host (launcher.py, forwarding.HopPool) ----------------


def _unix_path(run_dir, node: str) -> str:
    return json.loads((run_dir / "serve.json").read_text())["hop_sockets"][node]["path"]


def _hop_unix(path: str, data: bytes):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(path)
        s.sendall(forwarding.PREFACE + data)
        got = _read(s, bytearray())
        return got, _closed(s, 5.0)


def test_nodes_of_one_host_forward_through_their_unix_sockets(cluster):
    c = cluster
    sockets = json.loads((c["run_dir"] / "serve.json").read_text())["hop_sockets"]
    assert set(sockets) == set(c["nodes"])
    for node, s in sockets.items():
        assert s["url"] == c["nodes"][node]["url"] and stat.S_ISSOCK(os.stat(s["path"]).st_mode)
        assert stat.S_IMODE(os.stat(os.path.dirname(s["path"])).st_mode) == 0o700  # this user's only
    before = _state(c, "edge-1")
    for i in range(6):
        status, out = infer(c["nodes"]["ap-1"]["url"], "wine", [0.05 * i] * 13)
        assert status == 200 and where(out)[:2] == ("edge-1", "wine/wine-mlp-small")
    after = _state(c, "edge-1")
    # every one came in by the edge's Unix socket, none by TCP
    assert after["hop_requests_unix"] - before["hop_requests_unix"] == 6
    assert after["hop_requests"] - before["hop_requests"] == 6


def test_a_request_on_the_unix_socket_is_answered_as_over_tcp(cluster):
    c = cluster
    path = _unix_path(c["run_dir"], "edge-1")
    for body in (_body(13, 0.75, id="u"), _body(13, -2.0)):
        before = _state(c, "edge-1")
        (tcp,), tcp_closed = _hop(_port(c, "edge-1"), _signed(c, body))
        unix, unix_closed = _hop_unix(path, _signed(c, body))
        assert tcp[0] == unix[0] == 200 and not tcp_closed and not unix_closed
        assert tcp[1]["idn-served"] == unix[1]["idn-served"]
        assert _same(json.loads(tcp[2]), json.loads(unix[2])), (tcp[2], unix[2])
        after = _state(c, "edge-1")
        assert after["hop_requests_unix"] - before["hop_requests_unix"] == 1 and after["served"] - before["served"] == 2


def test_bad_bytes_on_the_unix_socket_are_refused_and_the_node_stays_up(cluster):
    c = cluster
    path = _unix_path(c["run_dir"], "edge-1")
    before = _state(c, "edge-1")
    for data, status in ((_request(_body(13), {}), 403), (_signed(c, b"[" * 100_000 + b"]" * 100_000), 400),
                         (_request(_body(13), {forwarding.FORWARD_HEADER: "0;3;" + "0" * 64}), 403),
                         (b"POST /v2/models/wine/infer HTTP/1.1\r\nno colon here\r\n\r\n", 400)):  # fmt: skip
        got, closed = _hop_unix(path, data)
        assert got[0] == status and json.loads(got[2])["error"] and closed, (data[:60], got)
    after = _state(c, "edge-1")
    assert after["served"] == before["served"] and after["errors"] - before["errors"] == 4
    # bytes that are not a hop connection's: aiohttp's server answers them there too
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(path)
        s.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
        got = _read(s, bytearray())
        assert got[0] == 200 and json.loads(got[2]) == {"ready": True}
    got, closed = _hop_unix(path, _signed(c, _body(13)))
    assert got[0] == 200 and not closed


def test_a_next_hop_without_its_unix_socket_is_reached_by_tcp(cluster):
    c = cluster

    async def post():
        pool = forwarding.HopPool("127.0.0.1", _port(c, "edge-1"), str(c["run_dir"] / "no-such.sock"))
        body = _body(13, 0.3)
        sig = forwarding.sign(c["key"], "wine", None, 0, (c["index"]["ap-1"],), body)
        try:
            return await pool.post("/v2/models/wine/infer", body, {forwarding.FORWARD_HEADER: sig}, 20.0)
        finally:
            pool.close()

    before = _state(c, "edge-1")
    status, headers, raw = asyncio.run(post())
    assert status == 200 and where(json.loads(raw))[0] == "edge-1"
    after = _state(c, "edge-1")
    assert after["hop_requests"] - before["hop_requests"] == 1 and after["hop_requests_unix"] == before["hop_requests_unix"]


def test_socket_files_are_removed_when_nodes_stop(models_dir, tmp_path):  # noqa: F811
    run_dir = tmp_path / "run"
    with serving(models_dir / "live-demo.yaml", models_dir, run_dir, ALLOCATION, extra=["--no-emulation"]) as (nodes, _):
        sockets = json.loads((run_dir / "serve.json").read_text())["hop_sockets"]
        hop_dir = os.path.dirname(sockets["ap-1"]["path"])
        assert sorted(os.listdir(hop_dir)) == sorted(os.path.basename(s["path"]) for s in sockets.values())
        os.kill(nodes["cloud"]["pid"], signal.SIGTERM)  # one node stops: it removes its own socket file
        deadline = time.time() + 60
        while os.path.exists(sockets["cloud"]["path"]) and time.time() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(sockets["cloud"]["path"]) and os.path.exists(sockets["ap-1"]["path"])
    assert not os.path.exists(hop_dir)  # and the launcher its directory
