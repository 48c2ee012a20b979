"""The low-churn (coupled) rounding against fresh rounding on the tuning
scenarios: model loads per cache node per slot and gain, over the second
half of a stationary run (docs/model.md, section 12.3).

    python benchmarks/bench_churn.py [--scenario tune-tree-tight] [--slots 300] [--seeds 0 1 2]

Both roundings see the same trace and seed; the ratio is coupled's gain
over fresh rounding's, measured in the same run.
"""

from __future__ import annotations

import argparse
import os

from idn.model.scenario import load_scenario
from idn.policies.registry import make_policy
from idn.sim.inputs import count_matrix, default_trace, request_types_for
from idn.sim.loop import run_policy

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="tune-tree-tight", help="a file in benchmarks/tuning/ (without .yaml) or a path")
    ap.add_argument("--slots", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--zipf", type=float, default=1.4)
    args = ap.parse_args()
    path = args.scenario if args.scenario.endswith(".yaml") else os.path.join(HERE, "tuning", f"{args.scenario}.yaml")
    idn = load_scenario(path)
    caches = int((~idn.repository & (idn.budget_mb > 0)).sum())
    print(f"{idn.name}: {caches} cache nodes, stationary Zipf {args.zipf}, second half of {args.slots} slots")
    print("| seed | coupled loads / cache node / slot | fresh loads | coupled gain / fresh gain |")
    print("|---|---|---|---|")
    for seed in args.seeds:
        trace = default_trace(idn, args.slots, seed, {"kind": "stationary", "rate": 100, "zipf": args.zipf})
        rt = request_types_for(idn, trace)
        counts = count_matrix(rt, trace)
        out = {}
        for rounding in ("fresh", "coupled"):
            half = run_policy(rt, make_policy("infida", rounding=rounding), counts, seed=seed).slots.iloc[args.slots // 2 :]
            out[rounding] = (float(half["gain"].sum()), float(half["model_loads"].sum()) / caches / len(half))
        ratio = out["coupled"][0] / out["fresh"][0]
        print(f"| {seed} | {out['coupled'][1]:.4f} | {out['fresh'][1]:.3f} | {ratio:.4f} ({100 * (ratio - 1):+.2f}%) |", flush=True)


if __name__ == "__main__":
    main()
