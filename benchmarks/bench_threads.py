"""Does numba prange pay for the fast bound's per-slot kernels? The per-node
knapsacks (one sort per node) and the per-row best responses are
independent across nodes / rows; this times them serial (the library's
kernels) and with prange at 1 and 2 threads on one slot of a generated
tiered tree (bench_scale's sizes).

    python benchmarks/bench_threads.py [--size 1e6] [--repeats 20]

Not pinned to one core (unlike common.py): the point is the second core.
"""

from __future__ import annotations

import argparse
import os
import time

import numba
import numpy as np
from numba import njit, prange


# Deliberate copies of the library's kernels (idn.upper_bounds.lagrange._knapsacks and the best response
# of idn.serving._gain_kernel) with range -> prange: they are what this benchmark measures, so they stay
# next to it rather than in the library, which keeps the serial kernels it measured faster.
@njit(cache=True, nogil=True, parallel=True)
def knapsacks_prange(g, y, sizes, offsets, budgets):  # pragma: no cover - numba
    total = 0.0
    dot = 0.0
    for v in prange(len(offsets) - 1):
        a, e = offsets[v], offsets[v + 1]
        left = budgets[v]
        t = 0.0
        d = 0.0
        if e > a:
            ratio = np.empty(e - a)
            for i in range(e - a):
                ratio[i] = -g[a + i] / sizes[a + i]
                d += g[a + i] * y[a + i]
            for i in np.argsort(ratio):
                gi = g[a + i]
                if gi <= 0.0 or left <= 0.0:
                    break
                s = sizes[a + i]
                if s <= left:
                    t += gi
                    left -= s
                else:
                    t += gi * left / s
                    left = 0.0
        total += t
        dot += d
    return total, total - dot


@njit(cache=True, nogil=True, parallel=True)
def best_lambda_prange(offsets, index, cost, share, counts, y, lam):  # pragma: no cover - numba
    for j in prange(len(offsets) - 1):
        r = counts[j]
        last = offsets[j + 1] - 1
        kstar = last
        if r > 0.0:
            cum = 0.0
            for e in range(offsets[j], last):
                cum += share[e] * y[index[e]]
                if cum >= r:
                    kstar = e
                    break
        lam[j] = cost[last] - cost[kstar]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", default="1e6")
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    from bench_scale import scenario

    from idn import serving
    from idn.model.scenario import scenario_from_dict
    from idn.serving import _gain_kernel
    from idn.upper_bounds.lagrange import Lagrangian, _knapsacks
    from idn.sim.inputs import count_matrix, default_trace, request_types_for

    idn = scenario_from_dict(scenario(args.size))
    trace = default_trace(idn, 1, 0)
    rt = request_types_for(idn, trace)
    counts = count_matrix(rt, trace)[0]
    lag = Lagrangian(idn)
    n = lag.nodes
    index = lag.entry_index(rt)
    share = serving.capacity_share(rt, counts)
    y = n.uniform()
    g = np.zeros(y.size)
    lam = np.empty(rt.n_types)
    _gain_kernel(rt.offsets, index, rt.cost, share, counts, y, True, g, lam)

    def med(fn):
        fn()
        ts = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return float(np.median(ts))

    print(f"# {rt.n_entries:,} entries, {y.size:,} free pairs, {idn.n_nodes} nodes; load {os.getloadavg()[0]:.1f}; "
          f"medians of {args.repeats}")  # fmt: skip
    ks = med(lambda: _knapsacks(g, y, n.sizes, n.offsets, n.budgets))
    bl = med(lambda: _gain_kernel(rt.offsets, index, rt.cost, share, counts, y, True, np.zeros(y.size), lam))
    print(f"knapsacks   serial {1e3 * ks:7.2f} ms")
    print(f"primal-dual serial {1e3 * bl:7.2f} ms (gain, supergradient and best responses in one pass)")
    for threads in (1, 2):
        numba.set_num_threads(threads)
        kp = med(lambda: knapsacks_prange(g, y, n.sizes, n.offsets, n.budgets))
        lp = med(lambda: best_lambda_prange(rt.offsets, index, rt.cost, share, counts, y, lam))
        print(f"knapsacks   prange {threads} thread(s) {1e3 * kp:7.2f} ms  ({ks / kp:.2f}x serial)")
        print(f"best lambda prange {threads} thread(s) {1e3 * lp:7.2f} ms  (the serial one-pass kernel also does gain and grad)")


if __name__ == "__main__":
    main()
