"""The live IDN's own costs, measured in one run on this machine, emulation off
(``idn serve --no-emulation``: no emulated link latency nor service time, so
only the software is measured):

1. **per-hop overhead**: the same digits request (same body, same model,
   digits-logreg) entering at ap-1, which serves it, and entering at ap-2,
   which forwards it one hop up to edge-1, which serves it. Sequential
   requests over one kept-alive client connection, the two routes
   interleaved request by request; overhead = p(1 hop) - p(0 hops) at the
   median and the 99th percentile, per round, then the median over rounds;
2. **requests/s of a node serving locally** (ap-1, digits, JSON, Open
   Inference Protocol) at concurrency 32 under ``hey`` (Debian's package;
   without it, the same closed loop in Python, and the output says so),
   beside, under the same tool in the same rounds, a bare aiohttp JSON
   handler (``await request.json()``, ``web.json_response``: aiohttp as its
   docs write it) and the same bare handler on the node's own stack (uvloop,
   orjson), and onnxruntime called directly (batch 1, one thread);
3. the CPU a hop costs: user + system time of every node process per
   request served one hop up, minus per request served at its entry
   (sequential, as 1.): less sensitive to the machine's load than latency;
4. the event loop's share: the same measures with the node on the
   standard asyncio loop (``IDN_EVENT_LOOP=asyncio``).

Nothing is pinned: the node processes and the load tool share the 2 cores
(and with whatever else runs on them; the load average is printed). The
sides of each ratio are measured in the same round, one after the other.

    python benchmarks/bench_live.py [--models DIR] [--rounds 3] [--requests 1000] [--seconds 5] [--hop-only]
"""

from __future__ import annotations

import common  # noqa: F401  (first: thread pools at 1)

import argparse
import asyncio
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import yaml

from idn.model.scenario import load_scenario
from idn.runtime.launcher import Cluster
from idn.runtime.models import _session, predict_all, read_catalog_files
from idn.runtime.oip import json_request

os.sched_setaffinity(0, set(range(os.cpu_count())))  # common.py pins to one core; this benchmark shares both

# digits-logreg at ap-1 (0 hops) and at the edge: a digits request entering at ap-2 is served one hop up
ALLOCATION = {"ap-1": ["digits/digits-logreg"], "ap-2": [], "edge-1": ["digits/digits-logreg"], "regional-1": []}
BARE = '''
import socket, sys
from aiohttp import web

async def plain(request):
    body = await request.json()
    return web.json_response({"ok": True, "n": len(body)})

async def quick(request):
    body = orjson.loads(await request.read())
    return web.Response(body=orjson.dumps({"ok": True, "n": len(body)}), content_type="application/json")

fast = sys.argv[2] == "fast"
if fast:
    import orjson, uvloop
app = web.Application()
app.router.add_post("/", quick if fast else plain)
web.run_app(app, sock=socket.socket(fileno=int(sys.argv[1])), access_log=None, print=None,
            loop=uvloop.new_event_loop() if fast else None)
'''


def bench_scenario(models: Path, out: Path) -> Path:
    """live-demo with every speed at 1 (capacity far above the load) and the catalog path made absolute."""
    spec = yaml.safe_load((models / "live-demo.yaml").read_text())
    spec["catalog"] = str((models / spec["catalog"]).resolve())
    for n in spec["nodes"]:
        n["speed"] = 1.0
        n["workers"] = 64
    path = out / "bench-live.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


class Client:
    """One kept-alive connection (http.client: the cheapest client in the standard library)."""

    def __init__(self, url: str):
        u = urlparse(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)

    def post(self, path: str, body: bytes) -> dict:
        self.conn.request("POST", path, body, {"Content-Type": "application/json"})
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"{path}: {r.status} {data[:200]!r}")
        return json.loads(data)


def hop_round(urls: dict, bodies: list[bytes], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(latencies ms served at entry, latencies ms one hop up), interleaved request by request."""
    a, b = Client(urls["ap-1"]), Client(urls["ap-2"])
    route = "/v2/models/digits/infer"
    assert a.post(route, bodies[0])["parameters"]["idn_path"] == "ap-1"
    assert b.post(route, bodies[0])["parameters"]["idn_path"] == "ap-2,edge-1"
    for i in range(100):  # warm-up: connections, caches
        a.post(route, bodies[i % len(bodies)])
        b.post(route, bodies[i % len(bodies)])
    out = np.empty((2, n))
    for i in range(n):
        body = bodies[i % len(bodies)]
        for k, c in enumerate((a, b) if i % 2 else (b, a)):
            t0 = time.perf_counter()
            c.post(route, body)
            out[k if i % 2 else 1 - k, i] = (time.perf_counter() - t0) * 1000.0
    return out[0], out[1]


def hop_cpu(cluster: Cluster, bodies: list[bytes], n: int) -> float:
    """CPU (user + system, every node process) per request served one hop up,
    minus per request served where it entered: the software's cost of a hop,
    less sensitive to the machine's load than the latency."""
    pids = [p.pid for p in cluster.procs.values()]
    per = {}
    for src in ("ap-1", "ap-2"):
        c = Client(cluster.urls[src])
        c0 = sum(cpu_s(p) for p in pids)
        for i in range(n):
            c.post("/v2/models/digits/infer", bodies[i % len(bodies)])
        per[src] = (sum(cpu_s(p) for p in pids) - c0) / n
    return (per["ap-2"] - per["ap-1"]) * 1e6


def hey_run(url: str, body_file: Path, seconds: float, concurrency: int) -> dict:
    """hey's requests/s, its status codes and errors."""
    cmd = ["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST", "-T", "application/json", "-D", str(body_file), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    errors = re.search(r"Error distribution:(.*)", out, re.S)
    return {"rps": rps, "codes": codes, "errors": errors.group(1).strip() if errors else ""}


def python_run(url: str, body: bytes, seconds: float, concurrency: int) -> dict:
    """The same closed loop as hey, in Python (aiohttp client), when hey is not installed."""
    import aiohttp

    async def go():
        done, codes, errors = 0, {}, []
        stop = time.perf_counter() + seconds
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:

            async def worker():
                nonlocal done
                while time.perf_counter() < stop:
                    try:
                        async with s.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                            await r.read()
                            codes[r.status] = codes.get(r.status, 0) + 1
                    except aiohttp.ClientError as exc:
                        errors.append(str(exc))
                    done += 1

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return {"rps": done / (time.perf_counter() - t0), "codes": codes, "errors": "; ".join(errors[:3])}

    return asyncio.run(go())


def load_run(tool, url: str, body: bytes, body_file: Path, seconds: float, concurrency: int) -> dict:
    tool(url, body_file, 1.0, concurrency) if tool is hey_run else tool(url, body, 1.0, concurrency)  # warm-up
    return tool(url, body_file, seconds, concurrency) if tool is hey_run else tool(url, body, seconds, concurrency)


class Bare:
    """A bare aiohttp JSON handler in its own process."""

    def __init__(self, tmp: Path, fast: bool):
        src = tmp / "bare.py"
        src.write_text(BARE)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(512)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        env = {**os.environ}
        self.proc = subprocess.Popen([sys.executable, str(src), str(sock.fileno()), "fast" if fast else "plain"],
                                     pass_fds=[sock.fileno()], env=env)  # fmt: skip
        sock.close()
        for _ in range(200):
            try:
                Client(self.url.rstrip("/")).post("/", b"[1]")
                return
            except (OSError, RuntimeError):
                time.sleep(0.05)
        raise RuntimeError("the bare handler did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def cpu_s(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def start_cluster(scen: Path, models: Path, run: Path, loop: str) -> Cluster:
    os.environ["IDN_EVENT_LOOP"] = loop  # inherited by the node processes
    cluster = Cluster(scen, load_scenario(scen), models, ALLOCATION, run, emulate=False)
    cluster.start()
    cluster.wait_ready()
    return cluster


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", help="a directory made by 'idn models build' (default: a quick build here)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=1000, help="sequential requests per route and round")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each load run")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--hop-only", action="store_true", help="only the per-hop overhead and CPU of a hop, uvloop (quick iteration)")
    args = ap.parse_args()
    if args.hop_only:
        return hop_only(args)

    print("== live IDN, emulation off: per-hop overhead, one node's requests/s against a bare handler")
    print(f"   load average at the start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-"))
    models = common.models_dir(args.models, tmp)
    scen = bench_scenario(models, tmp)
    x = np.load(models / "data" / "digits.npz")["x"]
    bodies = [json_request(row) for row in x]
    body_file = tmp / "body.json"
    body_file.write_bytes(bodies[0])
    tool = hey_run if shutil.which("hey") else python_run
    print(f"   load tool: {'hey' if tool is hey_run else 'hey not installed: a closed loop in Python (aiohttp client)'}, "
          f"concurrency {args.concurrency}, {args.seconds:g} s per run; {os.cpu_count()} cores, nothing pinned")  # fmt: skip

    results = {}
    for loop in ("uvloop", "asyncio"):
        cluster = start_cluster(scen, models, tmp / f"run-{loop}", loop)
        bare, fast = Bare(tmp, fast=False), Bare(tmp, fast=True)
        try:
            rows = []
            for r in range(args.rounds):
                lat0, lat1 = hop_round(cluster.urls, bodies, args.requests)
                hop_cpu_us = hop_cpu(cluster, bodies, args.requests)
                pid = cluster.procs["ap-1"].pid
                c0 = cpu_s(pid)
                node = load_run(tool, cluster.urls["ap-1"] + "/v2/models/digits/infer", bodies[0], body_file, args.seconds, args.concurrency)
                node_cpu_us = (cpu_s(pid) - c0) / max(1, sum(node["codes"].values())) * 1e6
                b = load_run(tool, bare.url, bodies[0], body_file, args.seconds, args.concurrency)
                f = load_run(tool, fast.url, bodies[0], body_file, args.seconds, args.concurrency)
                rows.append({"p50_0": np.percentile(lat0, 50), "p50_1": np.percentile(lat1, 50),
                             "p99_0": np.percentile(lat0, 99), "p99_1": np.percentile(lat1, 99),
                             "node": node, "bare": b, "fast": f, "node_cpu_us": node_cpu_us, "hop_cpu_us": hop_cpu_us})  # fmt: skip
            state = json.loads(_get(cluster.urls["ap-1"] + "/metrics"))
        finally:
            bare.stop()
            fast.stop()
            cluster.stop()
        results[loop] = (rows, state)
        report(loop, rows, state, args)
    direct = direct_rps(models, x, args.seconds)
    print(f"\n   onnxruntime called directly, digits-logreg, batch 1, one thread: {direct:,.0f} requests/s")
    rows = results["uvloop"][0]
    hop50 = np.median([r["p50_1"] - r["p50_0"] for r in rows])
    ratio = np.median([r["node"]["rps"] / r["bare"]["rps"] for r in rows])
    clean = all(set(r[k]["codes"]) == {200} and not r[k]["errors"] for r in rows for k in ("node", "bare", "fast"))
    print("\n   targets (the node as shipped, uvloop):")
    print(f"   per-hop overhead p50 {hop50:.3f} ms <= 0.4 ms (goal 0.25): {common.verdict(hop50 <= 0.4)}")
    print(f"   node / bare aiohttp handler requests/s {ratio:.2f} >= 0.5: {common.verdict(ratio >= 0.5)}")
    print(f"   every request answered 200, no error: {common.verdict(clean)}")
    la = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"   load average at the end: {la}")


def hop_only(args) -> None:
    """--hop-only: per-hop overhead and CPU of a hop on uvloop, nothing else."""
    print("== live IDN, emulation off: per-hop overhead only (uvloop)")
    import idn

    print(f"   idn from {Path(idn.__file__).parent}; load average at the start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-"))
    models = common.models_dir(args.models, tmp)
    scen = bench_scenario(models, tmp)
    bodies = [json_request(row) for row in np.load(models / "data" / "digits.npz")["x"]]
    cluster = start_cluster(scen, models, tmp / "run-uvloop", "uvloop")
    try:
        rows = []
        for _ in range(args.rounds):
            lat0, lat1 = hop_round(cluster.urls, bodies, args.requests)
            rows.append({"p50_0": np.percentile(lat0, 50), "p50_1": np.percentile(lat1, 50), "p99_0": np.percentile(lat0, 99),
                         "p99_1": np.percentile(lat1, 99), "hop_cpu_us": hop_cpu(cluster, bodies, args.requests)})  # fmt: skip
    finally:
        cluster.stop()
    report_hops(rows, args)
    print(f"   load average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    count = sum(float(v) for v in re.findall(r'^nv_inference_count\{model="digits".*?\} (\S+)$', text, re.M))
    execs = sum(float(v) for v in re.findall(r'^nv_inference_exec_count\{model="digits".*?\} (\S+)$', text, re.M))
    return json.dumps({"count": count, "exec_count": execs})


def report(loop: str, rows: list, state: dict, args) -> None:
    print(f"\n   node event loop: {loop}")
    report_hops(rows, args)
    report_node(rows, state, args)


def report_hops(rows: list, args) -> None:
    print(f"   per-hop overhead, ms ({args.requests} sequential requests per route and round, one kept-alive connection each)")
    print(f"   {'round':>5} {'p50 0 hop':>9} {'p50 1 hop':>9} {'hop p50':>8} {'p99 0 hop':>9} {'p99 1 hop':>9} {'hop p99':>8} {'hop CPU us':>10}")
    for i, r in enumerate(rows):
        print(f"   {i:>5} {r['p50_0']:9.3f} {r['p50_1']:9.3f} {r['p50_1'] - r['p50_0']:8.3f} "
              f"{r['p99_0']:9.3f} {r['p99_1']:9.3f} {r['p99_1'] - r['p99_0']:8.3f} {r['hop_cpu_us']:10.0f}")  # fmt: skip
    med = {k: np.median([r[k] for r in rows]) for k in ("p50_0", "p50_1", "p99_0", "p99_1", "hop_cpu_us")}
    print(f"   {'med':>5} {med['p50_0']:9.3f} {med['p50_1']:9.3f} {np.median([r['p50_1'] - r['p50_0'] for r in rows]):8.3f} "
          f"{med['p99_0']:9.3f} {med['p99_1']:9.3f} {np.median([r['p99_1'] - r['p99_0'] for r in rows]):8.3f} {med['hop_cpu_us']:10.0f}")  # fmt: skip


def report_node(rows: list, state: dict, args) -> None:
    print(f"   requests/s at concurrency {args.concurrency} (node: ap-1 serving digits locally; bare: aiohttp JSON handler)")
    print(f"   {'round':>5} {'node':>8} {'bare':>8} {'node/bare':>9} {'bare uvloop+orjson':>18} {'node/that':>9} {'node CPU us/req':>15}")
    for i, r in enumerate(rows):
        n, b, f = r["node"]["rps"], r["bare"]["rps"], r["fast"]["rps"]
        print(f"   {i:>5} {n:8.0f} {b:8.0f} {n / b:9.2f} {f:18.0f} {n / f:9.2f} {r['node_cpu_us']:15.0f}")
    print(f"   {'med':>5} {np.median([r['node']['rps'] for r in rows]):8.0f} {np.median([r['bare']['rps'] for r in rows]):8.0f} "
          f"{np.median([r['node']['rps'] / r['bare']['rps'] for r in rows]):9.2f} {np.median([r['fast']['rps'] for r in rows]):18.0f} "
          f"{np.median([r['node']['rps'] / r['fast']['rps'] for r in rows]):9.2f} {np.median([r['node_cpu_us'] for r in rows]):15.0f}")  # fmt: skip
    bad = [(k, r[k]["codes"], r[k]["errors"][:200]) for r in rows for k in ("node", "bare", "fast")
           if set(r[k]["codes"]) != {200} or r[k]["errors"]]  # fmt: skip
    print(f"   answers: {'every request 200, no error' if not bad else bad}")
    if state["exec_count"]:
        print(f"   mean micro-batch at ap-1 (nv_inference_count / nv_inference_exec_count): {state['count'] / state['exec_count']:.2f}")


def direct_rps(models: Path, x: np.ndarray, seconds: float) -> float:
    session = _session(read_catalog_files(models)["digits-logreg"]["file"])
    rows = [r[None, :] for r in x]
    for r in rows[:50]:
        predict_all(session, r)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        predict_all(session, rows[n % len(rows)])
        n += 1
    return n / (time.perf_counter() - t0)


if __name__ == "__main__":
    main()
