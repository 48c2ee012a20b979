"""The Ray backend's costs against the local launcher, in one run on this machine:

1. start: from creating the launcher to every node answering (``ready``),
   for a fixed allocation and for live INFIDA, the local launcher (one
   process per node) against ``--backend ray`` on a Ray cluster that is
   already up (3 raylets on 127.0.0.1, as ``ray start`` would leave them;
   its own start is printed apart). Ray's first start in a cluster session
   is "cold": it uploads the code, and each Ray node unpacks it afresh, so
   numba compiles INFIDA's kernels once there; later starts are "warm".
2. the request path: bench_live.py's sequential requests served at the
   entry node and one hop up, emulation off (``emulate=False``, as ``idn serve
   --no-emulation``: no emulated link latency nor service time), on both
   backends; per-hop overhead = p(1 hop) - p(0 hops) per round, then the
   median over rounds. Nothing of Ray is on a request's path (node to node
   is HTTP, as locally); what differs is where the node's event loop runs
   (a Ray worker) and Ray's own processes on the same cores.

Nothing is pinned (bench_live.py, imported for its request path, lets the
process use both cores again): the client, the local nodes, the raylets and
their actors share the 2 cores, and each side of a ratio is measured in the
same run, one after the other.

    python benchmarks/bench_ray.py [--models DIR] [--requests 1000] [--rounds 3] [--raylets 3]
"""

from __future__ import annotations

import common  # noqa: F401  (first: one core, thread pools at 1)

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_live import ALLOCATION, bench_scenario, hop_round

from idn.model.scenario import load_scenario
from idn.runtime.launcher import Cluster, first_allocation
from idn.runtime.oip import json_request

INFIDA = {"name": "infida", "params": {"rounding": "coupled"}, "seed": 0}


def ray_cluster(raylets: int):
    """``raylets`` raylets on loopback, no CPU offered (the nodes ask for none), small object stores."""
    import ray
    from ray.cluster_utils import Cluster as RayTestCluster

    node = {"num_cpus": 0, "node_ip_address": "127.0.0.1", "object_store_memory": 80 * 2**20}
    cluster = RayTestCluster(initialize_head=True, head_node_args={**node, "include_dashboard": False,
                                                                   "dashboard_agent_listen_port": None})  # fmt: skip
    ray._common.utils.reset_ray_address()  # a bare ray.init() elsewhere on the machine must not join this one (Ray 2.4x+)
    for _ in range(raylets - 1):
        cluster.add_node(**node)
    return cluster


def start(kind: str, scen: Path, idn, models: Path, run_dir: Path, address: str, policy: dict | None):
    """(seconds from nothing to every node answering, the running launcher)."""
    from idn.runtime.ray_backend import RayCluster

    alloc = first_allocation(idn, "infida", params=INFIDA["params"]) if policy else ALLOCATION
    t0 = time.perf_counter()
    if kind == "local":
        c = Cluster(scen, idn, models, alloc, run_dir, latency_scale=0.0, emulate=False, policy=policy)
    else:
        c = RayCluster(scen, idn, models, alloc, run_dir, address=address, latency_scale=0.0, emulate=False, policy=policy)
    c.start()
    c.wait_ready()
    return time.perf_counter() - t0, c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", help="a directory made by 'idn models build' (default: a quick build here)")
    ap.add_argument("--requests", type=int, default=1000, help="sequential requests per route, round and backend")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--raylets", type=int, default=3)
    args = ap.parse_args()

    common.header("Ray backend: start time and hop latency against the local launcher")
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    models = common.models_dir(args.models, tmp)
    scen = bench_scenario(models, tmp)
    idn = load_scenario(scen)
    bodies = [json_request(row) for row in np.load(models / "data" / "digits.npz")["x"]]

    t0 = time.perf_counter()
    cluster = ray_cluster(args.raylets)
    print(f"   a Ray cluster of {args.raylets} raylets on 127.0.0.1 started in {time.perf_counter() - t0:.1f} s (not counted below)")
    starts: dict[tuple, float] = {}
    lat = {}
    try:
        runs = [("fixed allocation", None, "cold"), ("fixed allocation", None, "warm"),
                ("live INFIDA", INFIDA, "cold"), ("live INFIDA", INFIDA, "warm")]  # fmt: skip
        for i, (what, policy, temp) in enumerate(runs):
            for kind in ("local", "ray") if i % 2 == 0 else ("ray", "local"):  # alternate who goes first
                seconds, c = start(kind, scen, idn, models, tmp / f"{kind}-{i}", cluster.address, policy)
                try:
                    starts[(what, temp, kind)] = seconds
                    if policy is None and temp == "warm":
                        lat[kind] = [hop_round(c.urls, bodies, args.requests) for _ in range(args.rounds)]
                finally:
                    c.stop()
    finally:
        cluster.shutdown()

    print(f"\n   start to ready, 5 nodes (s; Ray: the cluster already up){'':8}local      ray   ray/local")
    for what, _, temp in runs:
        loc, ray_s = starts[(what, temp, "local")], starts[(what, temp, "ray")]
        label = f"{what}, {'cold' if temp == 'cold' else 'warm'}"
        print(f"   {label:<56} {loc:8.1f} {ray_s:8.1f} {ray_s / loc:10.1f}x")
    print("   (cold: the first Ray start in the cluster's session uploads the code and, for INFIDA, numba compiles its"
          "\n    kernels on each Ray node; the local launcher's nodes find numba's cache beside the source files)")
    print(f"\n   per-hop overhead, emulation off (ms): bench_live.py's route pair, {args.requests} sequential requests"
          f" per route and round, one kept-alive connection each; served at ap-1 (0 hops) against entering at ap-2"
          f" and served at edge-1 (1 hop)")  # fmt: skip
    print(f"   {'round':>5} {'local p50':>10} {'ray p50':>8} {'ray-local':>10} {'local p99':>10} {'ray p99':>8}")
    per = {k: [(float(np.percentile(b, 50) - np.percentile(a, 50)), float(np.percentile(b, 99) - np.percentile(a, 99)))
               for a, b in lat[k]] for k in lat}  # fmt: skip
    for r in range(args.rounds):
        (l50, l99), (r50, r99) = per["local"][r], per["ray"][r]
        print(f"   {r:>5} {l50:10.3f} {r50:8.3f} {r50 - l50:+10.3f} {l99:10.3f} {r99:8.3f}")
    med = {k: np.median(np.array(per[k]), axis=0) for k in per}
    print(f"   {'med':>5} {med['local'][0]:10.3f} {med['ray'][0]:8.3f} {med['ray'][0] - med['local'][0]:+10.3f} "
          f"{med['local'][1]:10.3f} {med['ray'][1]:8.3f}")  # fmt: skip
    zero = {k: float(np.median([np.percentile(a, 50) for a, _ in lat[k]])) for k in lat}
    print(f"   a request served at its entry node, p50: local {zero['local']:.3f} ms, ray {zero['ray']:.3f} ms")
    print(f"   load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
