"""The live IDN's own costs, measured in one run on this machine:

1. per-hop forwarding overhead: the latency of a request served 0, 1, 2 and
   3 hops up its path, emulated link latency set to zero; overhead per hop =
   (p(k hops) - p(0 hops)) / k, for the median and the 99th percentile;
2. requests/s of one node serving a model locally (HTTP, JSON, thread pool,
   routing, capacity counters) against the same onnxruntime model called
   directly in one process, batch 1.

The whole benchmark (client and node processes) runs pinned to one core
(common.py; node processes inherit the pinning), so the two sides of each
ratio compete for the same core.

    python benchmarks/bench_live.py [--models DIR] [--requests 300] [--seconds 3]
"""

from __future__ import annotations

import common  # noqa: F401  (first: one core, thread pools at 1)

import argparse
import asyncio
import json
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import yaml

from idn.model.scenario import load_scenario
from idn.runtime.launcher import Cluster
from idn.runtime.models import _session, build_models, predict, read_catalog_files

# digits served at ap-1 (0 hops), wine at the edge (1), breast cancer at the
# regional node (2); a digits request entering at ap-2 climbs to the cloud (3)
ALLOCATION = {"ap-1": ["digits/digits-logreg"], "ap-2": [], "edge-1": ["wine/wine-logreg"],
              "regional-1": ["breast_cancer/breast_cancer-logreg"]}  # fmt: skip
ROUTES = [("ap-1", "digits", 0), ("ap-1", "wine", 1), ("ap-1", "breast_cancer", 2), ("ap-2", "digits", 3)]


def bench_scenario(models: Path, out: Path) -> Path:
    """live-demo with every speed at 1 (capacity far above the load: only the
    software is measured) and the catalog path made absolute."""
    spec = yaml.safe_load((models / "live-demo.yaml").read_text())
    spec["catalog"] = str((models / spec["catalog"]).resolve())
    for n in spec["nodes"]:
        n["speed"] = 1.0
    path = out / "bench-live.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def post(url: str, body: bytes) -> dict:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def hop_latencies(urls: dict, inputs: dict, n: int) -> dict:
    out = {}
    for src, task, hops in ROUTES:
        x = inputs[task][0]
        body = json.dumps({"task": task, "input": x[0].tolist()}).encode()
        got = post(urls[src] + "/v1/infer", body)
        assert len(got["hops"]) == hops + 1, (src, task, got["hops"])
        for i in range(20):  # warm-up: connections, caches
            post(urls[src] + "/v1/infer", body)
        ms = np.empty(n)
        for i in range(n):
            b = json.dumps({"task": task, "input": x[i % len(x)].tolist()}).encode()
            t0 = time.perf_counter()
            post(urls[src] + "/v1/infer", b)
            ms[i] = (time.perf_counter() - t0) * 1000.0
        out[hops] = ms
    return out


async def _closed_loop(url: str, bodies: list, seconds: float, concurrency: int) -> int:
    import aiohttp

    done = 0
    stop = time.perf_counter() + seconds

    async def worker(k):
        nonlocal done
        i = k
        while time.perf_counter() < stop:
            async with session.post(url, data=bodies[i % len(bodies)], headers={"Content-Type": "application/json"}) as r:
                await r.read()
                assert r.status == 200
            done += 1
            i += concurrency

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return done


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", help="a directory made by 'idn models build' (default: a quick build here)")
    ap.add_argument("--requests", type=int, default=300, help="sequential requests per route")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each throughput run")
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()

    common.header("live IDN: per-hop forwarding overhead and one node's throughput")
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-"))
    models = Path(args.models) if args.models else tmp / "models"
    if not args.models:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build_models(models, quick=True, runs=30)
    scen = bench_scenario(models, tmp)
    idn = load_scenario(scen)
    inputs = {t: (np.load(models / "data" / f"{t}.npz")["x"], None) for t in idn.tasks}
    cluster = Cluster(scen, idn, models, ALLOCATION, tmp / "run", latency_scale=0.0)
    cluster.start()
    try:
        cluster.wait_ready()
        urls = cluster.urls
        lat = hop_latencies(urls, inputs, args.requests)
        base = {q: float(np.percentile(lat[0], q)) for q in (50, 99)}
        print(f"\n   request latency, sequential, {args.requests} per route, emulated links 0 ms (ms)")
        print(f"   {'hops':>4} {'p50':>8} {'p99':>8} {'per hop p50':>12} {'per hop p99':>12}")
        for k, ms in sorted(lat.items()):
            p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
            per = ("", "") if k == 0 else (f"{(p50 - base[50]) / k:12.2f}", f"{(p99 - base[99]) / k:12.2f}")
            print(f"   {k:>4} {p50:8.2f} {p99:8.2f} {per[0]:>12} {per[1]:>12}")

        x = inputs["digits"][0]
        bodies = [json.dumps({"task": "digits", "input": row.tolist()}).encode() for row in x]
        asyncio.run(_closed_loop(urls["ap-1"] + "/v1/infer", bodies, 0.5, args.concurrency))  # warm-up
        n_live = asyncio.run(_closed_loop(urls["ap-1"] + "/v1/infer", bodies, args.seconds, args.concurrency))
        live_rps = n_live / args.seconds
        state = json.loads(urllib.request.urlopen(urls["ap-1"] + "/v1/state", timeout=10).read())
        session = _session(read_catalog_files(models)["digits-logreg"]["file"])
        rows = [r[None, :] for r in x]
        for r in rows[:50]:
            predict(session, r)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            predict(session, rows[n % len(rows)])
            n += 1
        direct_rps = n / (time.perf_counter() - t0)
        print(f"\n   one node serving digits-logreg locally ({args.concurrency} clients in flight, {args.seconds:g} s)")
        print(f"   node over HTTP: {live_rps:10.0f} requests/s  (node served {state['counters']['served']} in all)")
        print(f"   direct session: {direct_rps:10.0f} requests/s  (same model, batch 1, one thread)")
        print(f"   ratio direct / node: {direct_rps / live_rps:.1f}x  (the node's HTTP, JSON, routing and thread-pool cost)")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
