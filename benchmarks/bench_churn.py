"""The low-churn (coupled) rounding against fresh rounding, and INFIDA's
steady-state churn against local-greedy's, on the tuning scenarios: model
loads per cache node per slot and gain over the second half of a run
(docs/model.md, sections 12.3 and 12.5).

    python benchmarks/bench_churn.py [--scenario tune-tree-tight] [--slots 300] [--seeds 0 1 2]
        [--period P]   # popularity reshuffled every P slots instead of stationary
        [--budget-scale 0.15]

Every policy sees the same trace and seed: INFIDA's default rule (tracking)
with fresh and coupled rounding, the static rule (``learning: static``)
coupled, and local-greedy; the gain ratios are against fresh rounding's,
measured in the same run.
"""

from __future__ import annotations

import argparse
import os

from idn.model.scenario import load_scenario
from idn.policies.registry import make_policy
from idn.sim.inputs import count_matrix, default_trace, request_types_for
from idn.sim.loop import run_policy

HERE = os.path.dirname(os.path.abspath(__file__))
POLICIES = {
    "fresh": ("infida", {}),
    "coupled": ("infida", {"rounding": "coupled"}),
    "static coupled": ("infida", {"rounding": "coupled", "learning": "static"}),
    "local-greedy": ("local-greedy", {}),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="tune-tree-tight", help="a file in benchmarks/tuning/ (without .yaml) or a path")
    ap.add_argument("--slots", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--zipf", type=float, default=1.4)
    ap.add_argument("--period", type=int, default=None, help="reshuffle the popularity every PERIOD slots")
    ap.add_argument("--budget-scale", type=float, default=None)
    args = ap.parse_args()
    path = args.scenario if args.scenario.endswith(".yaml") else os.path.join(HERE, "tuning", f"{args.scenario}.yaml")
    idn = load_scenario(path)
    if args.budget_scale is not None:
        idn = idn.with_changes(budget_scale=args.budget_scale)
    caches = int((~idn.repository & (idn.budget_mb > 0)).sum())
    spec = {"kind": "stationary", "rate": 100, "zipf": args.zipf}
    if args.period:
        spec = {**spec, "kind": "shifting", "period": args.period, "mode": "reshuffle"}
    print(f"{idn.name}: {caches} cache nodes, {spec}, second half of {args.slots} slots")
    print("| seed | " + " | ".join(f"{k}: loads / cache node / slot, gain / fresh" for k in POLICIES) + " |")
    print("|---|" + "---|" * len(POLICIES))
    for seed in args.seeds:
        trace = default_trace(idn, args.slots, seed, spec)
        rt = request_types_for(idn, trace)
        counts = count_matrix(rt, trace)
        out = {}
        for label, (name, params) in POLICIES.items():
            half = run_policy(rt, make_policy(name, **params), counts, seed=seed).slots.iloc[args.slots // 2 :]
            out[label] = (float(half["gain"].sum()), float(half["model_loads"].sum()) / caches / len(half))
        fresh = out["fresh"][0]
        cells = [f"{loads:.4f}, {gain / fresh:.4f}" for gain, loads in out.values()]
        print(f"| {seed} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
