"""Live INFIDA's control round (issue 10), measured on loopback in one run:

for the live demo (5 nodes) and a 40-node tree (1 cloud, 3 regional, 9 edge,
27 access nodes, every access node a source; the demo's catalog and tiers),
``idn serve --policy infida --deterministic --latency-scale 0`` is driven
for ``--slots`` slots: each slot ``--per`` requests per source and task (every
request type active), all answered, then ``POST /v1/slot`` at every node at
once. The wall time from the first of those calls to the last answer is one
slot's control round (upward bundles, cut-offs back down, each node's step,
checkpoint, model swap and announcements). Reported: its p50 and p99 over
the slots after ``--warmup``, each node's own ``round_ms`` (messages) and
``step_ms`` (step, swap, checkpoint) from its records, control bytes and
messages per slot, and the missed messages (0 expected: no fault here).

Baseline, same run, same trace: the same cluster with INFIDA's allocation
after slot 0 fixed (``--allocation``, ``--deterministic``, no live policy),
whose ``POST /v1/slot`` only sends the slot's request counts up the paths.

Everything (this client, the launcher, every node process) runs pinned to
one core (common.py; children inherit the pinning), so one slot's round of
40 nodes is 40 processes taking turns on that core.

    python benchmarks/bench_live_control.py [--models DIR] [--slots 30] [--per 2] [--only demo|tree]
"""

from __future__ import annotations

import common  # noqa: F401  (first: one core, thread pools at 1)

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from idn.model.scenario import load_scenario
from idn.runtime.oip import json_request
from idn.runtime.routing import live_request_types


def tree_scenario(models: Path, regional: int = 3, fanout: int = 3) -> Path:
    """1 cloud + 3 regional + 9 edge + 27 access nodes with the demo's tiers
    (speed, workers, budget, link latencies), written next to the catalog."""
    demo = yaml.safe_load((models / "live-demo.yaml").read_text())
    tier = {n["tier"]: {k: v for k, v in n.items() if k != "id"} for n in demo["nodes"]}
    tier_of = {n["id"]: n["tier"] for n in demo["nodes"]}
    lat = {frozenset((tier_of[lk["a"]], tier_of[lk["b"]])): lk["latency_ms"] for lk in demo["links"]}
    nodes, links = [{"id": "cloud", **tier["cloud"]}], []

    def add(nid: str, t: str, up: str, up_tier: str) -> None:
        nodes.append({"id": nid, **tier[t]})
        links.append({"a": nid, "b": up, "latency_ms": lat[frozenset((t, up_tier))]})

    for r in range(1, regional + 1):
        add(f"regional-{r}", "regional", "cloud", "cloud")
        for e in range(1, fanout + 1):
            add(f"edge-{r}-{e}", "edge", f"regional-{r}", "regional")
            for a in range(1, fanout + 1):
                add(f"ap-{r}-{e}-{a}", "access", f"edge-{r}-{e}", "edge")
    spec = {k: demo[k] for k in ("slot_seconds", "alpha", "catalog", "tasks", "workload")}
    spec.update(name="tree-40", nodes=nodes, links=links, sources=[n["id"] for n in nodes if n["tier"] == "access"])
    path = models / "tree-40.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


class Serve:
    """``idn serve`` as a subprocess: started, ready, always stopped (SIGTERM
    to the launcher, then SIGKILL to any node it left, by pid)."""

    def __init__(self, scenario: Path, models: Path, run: Path, extra: list[str], timeout: float = 900.0):
        self.run = run
        cmd = [sys.executable, "-m", "idn.cli", "serve", str(scenario), "--models", str(models), "--run-dir", str(run),
               "--deterministic", "--latency-scale", "0", "--no-dashboard", *extra]  # fmt: skip
        t0 = time.perf_counter()
        pipe = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
        self.proc = subprocess.Popen(cmd, start_new_session=True, **pipe)
        self.nodes: list[dict] = []
        try:
            line, out = "", []
            while "ready" not in line:  # the launcher gives up by itself after 300 s without every node answering
                line = self.proc.stdout.readline()
                out.append(line)
                if (not line and self.proc.poll() is not None) or time.perf_counter() - t0 > timeout:
                    raise RuntimeError(f"idn serve did not start: {''.join(out[-5:]).strip()}")
            self.nodes = json.loads((run / "nodes.json").read_text())
        except BaseException:
            self.stop()
            raise
        self.start_s = time.perf_counter() - t0
        self.token = (run / "token").read_text().strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        listed = self.run / "nodes.json"
        for n in self.nodes or (json.loads(listed.read_text()) if listed.exists() else []):
            try:  # a node the launcher left behind (checked by its command line: pids get reused)
                if str(self.run) in Path(f"/proc/{n['pid']}/cmdline").read_bytes().decode(errors="replace"):
                    os.kill(n["pid"], signal.SIGKILL)
            except (OSError, TypeError):
                pass
        self.proc.stdout.close()


def cpu_ms(pids: list[int]) -> np.ndarray:
    """User + system CPU time of each process so far (ms; /proc, 10 ms ticks)."""
    stat = [Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split() for p in pids]
    return np.array([int(f[11]) + int(f[12]) for f in stat], float) * 1000.0 / os.sysconf("SC_CLK_TCK")


async def drive(srv: Serve, sources: list[str], tasks: list[str], inputs: dict, slots: int, per: int):
    """Per slot: the requests (all answered), then the timed concurrent POST
    /v1/slot at every node. Returns (wall ms, node CPU ms summed over the
    nodes, records) per slot."""
    import aiohttp

    urls = {n["id"]: n["url"] for n in srv.nodes}
    headers = {"Authorization": f"Bearer {srv.token}"}
    pids = [n["pid"] for n in srv.nodes]
    walls, cpu, records, k = [], [], [], 0
    conn = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=120)) as s:
        async with s.get(urls[sources[0]] + "/v1/state") as r:
            t0_slot = (await r.json())["slot"]

        async def infer(src, task):
            nonlocal k
            x = inputs[task][k % len(inputs[task])].tolist()
            k += 1
            async with s.post(f"{urls[src]}/v2/models/{task}/infer", data=json_request(x),
                              headers={"Content-Type": "application/json"}) as r:  # fmt: skip
                body = await r.json(content_type=None)
                assert r.status == 200 and "outputs" in body, (src, task, r.status, body)

        async def end(url, t):
            async with s.post(url + "/v1/slot", json={"end": t}, headers=headers) as r:
                body = await r.json(content_type=None)
                assert r.status == 200, (url, body)
                return body

        for i in range(slots):
            await asyncio.gather(*(infer(src, task) for src in sources for task in tasks for _ in range(per)))
            c0, t0 = cpu_ms(pids), time.perf_counter()
            recs = await asyncio.gather(*(end(u, t0_slot + i) for u in urls.values()))
            walls.append((time.perf_counter() - t0) * 1000.0)
            cpu.append(float((cpu_ms(pids) - c0).sum()))
            records.append(dict(zip(urls, recs)))
    return np.array(walls), np.array(cpu), records


def measure(name: str, scen: Path, models: Path, tmp: Path, args) -> dict:
    idn = load_scenario(scen)
    rt = live_request_types(idn)
    sources, tasks = list(idn.sources), list(idn.tasks)
    expected = sum(2 * (len(rt.path(rt.key_index[(s, t)])) - 1) for s in sources for t in tasks)
    inputs = {t: np.load(models / "data" / f"{t}.npz")["x"] for t in tasks}
    out = {"name": name, "nodes": idn.n_nodes, "types": len(sources) * len(tasks), "expected_msgs": expected}
    srv = Serve(scen, models, tmp / f"run-{name}-infida", ["--policy", "infida"])
    try:
        out["start_s"] = srv.start_s
        walls, cpu, recs = asyncio.run(drive(srv, sources, tasks, inputs, args.slots, args.per))
    finally:
        srv.stop()
    alloc = {v: r["allocation"] for v, r in recs[0].items() if not idn.repository[idn.node_index[v]]}
    alloc_file = tmp / f"{name}-alloc.json"
    alloc_file.write_text(json.dumps(alloc))
    srv = Serve(scen, models, tmp / f"run-{name}-fixed", ["--allocation", str(alloc_file)])
    try:
        base, base_cpu, _ = asyncio.run(drive(srv, sources, tasks, inputs, args.slots, args.per))
    finally:
        srv.stop()
    w = args.warmup
    kept = recs[w:]
    per_node = lambda key: np.array([[r[v][key] for v in r] for r in kept], float)  # noqa: E731  (slots x nodes)
    out["wall"], out["base"], out["cpu"], out["base_cpu"] = walls[w:], base[w:], cpu[w:], base_cpu[w:]
    out["round_ms"], out["step_ms"] = per_node("round_ms"), per_node("step_ms")
    out["bytes"], out["msgs"] = per_node("bytes_sent"), per_node("messages_sent").sum(axis=1)
    out["missed"] = int(per_node("messages_missed").sum() + sum(r[v]["messages_missed"] for r in recs[:w] for v in r))
    out["loads"] = int(per_node("model_loads").sum())
    out["max_node"] = list(kept[0])[int(out["bytes"].mean(axis=0).argmax())]
    return out


def report(results: list[dict], args) -> None:
    q = lambda a, p: float(np.percentile(a, p))  # noqa: E731
    print(f"\n   {args.slots} slots each, {args.per} request(s) per source and task per slot; the first {args.warmup} "
          f"slots are warm-up (JIT, first loads) and left out")  # fmt: skip
    cols = [r["name"] for r in results]
    rows = [
        ("nodes / request types", lambda r: f"{r['nodes']} / {r['types']}"),
        ("cluster start to ready (s)", lambda r: f"{r['start_s']:.0f}"),
        ("INFIDA round p50 / p99 (ms)", lambda r: f"{q(r['wall'], 50):.1f} / {q(r['wall'], 99):.1f}"),
        ("counts-only round p50 / p99 (ms)", lambda r: f"{q(r['base'], 50):.1f} / {q(r['base'], 99):.1f}"),
        ("ratio INFIDA / counts-only (p50)", lambda r: f"{q(r['wall'], 50) / q(r['base'], 50):.1f}x"),
        ("node CPU / round, all nodes (ms)", lambda r: f"{r['cpu'].mean():.0f} (counts-only {r['base_cpu'].mean():.0f})"),
        ("node round_ms mean / max", lambda r: f"{r['round_ms'].mean():.1f} / {r['round_ms'].max():.1f}"),
        ("node step_ms mean / max", lambda r: f"{r['step_ms'].mean():.1f} / {r['step_ms'].max():.1f}"),
        ("bytes / node / slot, mean", lambda r: f"{r['bytes'].mean():.0f}"),
        ("bytes / slot, busiest node", lambda r: f"{r['bytes'].mean(axis=0).max():.0f} ({r['max_node']})"),
        ("bytes / slot, all nodes", lambda r: f"{r['bytes'].sum(axis=1).mean():.0f}"),
        ("messages / slot (2(J-1) per type)", lambda r: f"{r['msgs'].mean():.0f} ({r['expected_msgs']})"),
        ("messages missed (all slots)", lambda r: f"{r['missed']}"),
        ("model loads (measured slots)", lambda r: f"{r['loads']}"),
    ]
    width = max(len(label) for label, _ in rows)
    print(f"   {'':<{width}}" + "".join(f" {c:>22}" for c in cols))
    for label, f in rows:
        print(f"   {label:<{width}}" + "".join(f" {f(r):>22}" for r in results))
    for r in results:
        if r["missed"]:
            print(f"   NOTE {r['name']}: {r['missed']} control messages missed without a fault")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", help="a directory made by 'idn models build' (default: a quick build here)")
    ap.add_argument("--slots", type=int, default=30)
    ap.add_argument("--per", type=int, default=2, help="requests per source and task per slot")
    ap.add_argument("--warmup", type=int, default=2, help="first slots left out of the figures")
    ap.add_argument("--only", choices=("demo", "tree"))
    args = ap.parse_args()
    if args.slots <= args.warmup:
        ap.error("--slots must exceed --warmup")

    common.header("live INFIDA: one slot's control round on loopback, against a counts-only round")
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-control-"))
    models = common.models_dir(args.models, tmp)
    scenarios = {"demo": models / "live-demo.yaml", "tree": tree_scenario(models)}
    results = [measure(n, p, models, tmp, args) for n, p in scenarios.items() if args.only in (None, n)]
    report(results, args)


if __name__ == "__main__":
    main()
