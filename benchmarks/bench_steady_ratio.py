"""INFIDA (default, fresh rounding) against static greedy at steady state on
the 1111-node tree: normalized gain over the second half of a long run, per
seed, and the ratio, with its mean and 95% interval over seeds.

    python benchmarks/bench_steady_ratio.py [--slots 600] [--seeds 0 1 2 3 4] [--policy infida:rounding=coupled]

Static greedy is solved on each seed's whole trace (it knows it in advance)
and scored on the same second half. About 40 s per seed on an idle core.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convergence import parse_policy  # noqa: E402

from idn.model.scenario import load_scenario  # noqa: E402
from idn.policies.registry import make_policy  # noqa: E402
from idn.sim.inputs import count_matrix, default_trace, request_types_for  # noqa: E402
from idn.sim.loop import run_policy  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def second_half(slots) -> tuple[float, float]:
    s = slots.iloc[len(slots) // 2 :]
    return float(s["gain"].sum() / s["gain_max"].sum()), float(s["model_loads"].mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default=os.path.join(HERE, "..", "examples", "big-tree.yaml"))
    ap.add_argument("--slots", type=int, default=600)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--policy", default="infida")
    args = ap.parse_args()
    idn = load_scenario(args.scenario)
    caches = int((~idn.repository).sum())
    label, name, params = parse_policy(args.policy)
    ratios = []
    print(f"| seed | {label} | static greedy | ratio | loads / cache node / slot |")
    print("|---|---|---|---|---|")
    for seed in args.seeds:
        trace = default_trace(idn, args.slots, seed)
        rt = request_types_for(idn, trace)
        counts = count_matrix(rt, trace, args.slots)
        gain, loads = second_half(run_policy(rt, make_policy(name, **params), counts, seed=seed).slots)
        ref, _ = second_half(run_policy(rt, make_policy("static-greedy"), counts, seed=seed).slots)
        ratios.append(gain / ref)
        print(f"| {seed} | {gain:.4f} | {ref:.4f} | {gain / ref:.4f} | {loads / caches:.4f} |", flush=True)
    r = np.array(ratios)
    half = stats.t.ppf(0.975, r.size - 1) * r.std(ddof=1) / np.sqrt(r.size) if r.size > 1 else float("nan")
    print(f"ratio over {r.size} seeds: mean {r.mean():.4f} ± {half:.4f} (95%), min {r.min():.4f}, max {r.max():.4f}")


if __name__ == "__main__":
    main()
