"""What every benchmark shares: one-core setup, the large scenario, timing,
and the bridge from the fast flat arrays to tests/reference.py's plain lists.

Import this module first: it pins the process to one core and limits every
thread pool to one thread before numpy is imported (the machine has 2 shared
cores, and a multithreaded BLAS call competing with another process is what
made some dot products 50x slower than usual).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

_cpus = sorted(os.sched_getaffinity(0))
CPU = int(os.environ.get("BENCH_CPU", _cpus[-1]))
os.sched_setaffinity(0, {CPU})

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))  # reference.py

from idn import workloads  # noqa: E402
from idn.model.request_types import RequestTypes, build_request_types  # noqa: E402
from idn.model.scenario import scenario_from_dict  # noqa: E402

# The large scenario: the TataNld backbone (143 ISP nodes + the cloud, the
# largest Topology Zoo graph topohub ships; paths of 3-16 nodes, 11 on average), half of the
# nodes access (72 sources), 40 tasks of 6-8 catalog models each; a
# stationary Zipf(0.8) load heavy enough that requests spill past the access
# nodes (about 3% reach the cloud).
LARGE = {
    "name": "bench-tatanld",
    "alpha": 1.5,
    "topology": {"topozoo": "TataNld", "access_fraction": 0.5},
    "tasks": {"generate": {"count": 40, "models_per_task": [6, 8], "seed": 1}},
}
LARGE_RATE = 2000.0  # mean requests per source and slot: ~50 per request type


def large_scenario() -> tuple[RequestTypes, np.ndarray]:
    """(request types, a (T=64, R) stationary count matrix) of the large scenario."""
    idn = scenario_from_dict(LARGE)
    rt = build_request_types(idn)
    trace = workloads.stationary(idn.sources, idn.tasks, 64, seed=0, rate=LARGE_RATE)
    return rt, workloads.to_matrix(trace, rt.key_index, rt.n_types, 64)


def reference_lists(rt: RequestTypes, types=None) -> list:
    """The candidate lists in tests/reference.py's shape,
    [(source, task, [(node, model, cost, capacity, permanent), ...])], read off
    the flat arrays (reference.candidate_lists enumerates every simple path,
    hopeless on a 144-node graph; the lists themselves are not what is timed)."""
    perm = rt.idn.permanent
    out = []
    for rho in range(rt.n_types) if types is None else types:
        sl = rt.entries(int(rho))
        cands = [
            (int(v), int(m), float(c), float(cap), bool(perm[v, m]))
            for v, m, c, cap in zip(rt.node[sl], rt.model[sl], rt.cost[sl], rt.capacity[sl])
        ]
        out.append((int(rt.source[rho]), int(rt.task[rho]), cands))
    return out


def sample_types(rt: RequestTypes, fraction: float, seed: int = 0) -> np.ndarray:
    """A seeded uniform sample of request types (sorted), for timing the plain
    reference on part of the scenario and scaling by entries."""
    rng = np.random.default_rng(seed)
    n = max(1, int(round(fraction * rt.n_types)))
    return np.sort(rng.choice(rt.n_types, size=n, replace=False))


def timeit(fn, repeats: int, warmup: int = 2) -> np.ndarray:
    """Seconds of each of ``repeats`` calls, after ``warmup`` calls (JIT, caches)."""
    for _ in range(warmup):
        fn()
    out = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out


def once(fn):
    """(result, seconds) of one call."""
    t0 = time.perf_counter()
    res = fn()
    return res, time.perf_counter() - t0


def header(title: str) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"== {title}")
    cpus = os.sched_getaffinity(0)  # a benchmark may have let itself use every core again
    where = f"one core: pinned to cpu {CPU} of {len(_cpus)}" if cpus == {CPU} else f"nothing pinned ({len(cpus)} cores)"
    print(f"   {where}, thread pools at 1; load average {load}")


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def models_dir(given: str | None, tmp: Path) -> Path:
    """The live benchmarks' models: the directory given (made by ``idn models
    build``), or a quick build in ``tmp``."""
    import warnings

    from idn.runtime.models import build_models

    if given:
        return Path(given)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's convergence chatter on the quick build
        build_models(tmp / "models", quick=True, runs=30)
    return tmp / "models"
