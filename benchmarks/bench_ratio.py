"""INFIDA, online greedy and static greedy against the exact static optimum
on 30 small random instances (stationary workload, fixed seeds): the
distribution of each policy's second-half time-averaged gain over the
optimum's, with equal model sizes (b/s integer: the case INFIDA's guarantee
covers) and with random sizes. tests/test_guarantee.py asserts the parts of
this that the guarantee promises.

    python benchmarks/bench_ratio.py [--instances 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from guarantee_instances import PSI, second_half_ratios  # noqa: E402

POLICIES = ("infida", "online-greedy", "static-greedy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=30)
    args = ap.parse_args()
    t0 = time.perf_counter()
    print(f"== second-half gain / exact static optimum, {args.instances} random instances (psi = {PSI:.3f})")
    print(f"   {'sizes':8} {'policy':15} {'min':>6} {'p10':>6} {'mean':>6} {'below psi':>10} worst instance")
    means = {}
    for equal in (True, False):
        rows = [second_half_ratios(seed, equal_sizes=equal, policies=POLICIES) for seed in range(args.instances)]
        for name in POLICIES:
            r = np.array([row[name] for row in rows])
            means[(equal, name)] = r.mean()
            print(
                f"   {'equal' if equal else 'random':8} {name:15} {r.min():6.3f} {np.percentile(r, 10):6.3f} "
                f"{r.mean():6.3f} {int((r < PSI).sum()):>10} {int(r.argmin())}"
            )
    drop = means[(True, "infida")] - means[(False, "infida")]
    print(f"   INFIDA's mean ratio with random sizes is {100 * drop:.1f} points below equal sizes")
    print(f"   ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
