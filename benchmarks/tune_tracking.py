"""The tracking rule's tuning table (docs/model.md, section 12.5): INFIDA's
variants against local-greedy and the static rule on the tuning scenarios'
shifting, stationary, diurnal and noisy workloads (none of them the study's).

    python benchmarks/tune_tracking.py [--seeds 0 1] [--only ttt-s20,wide-s40] \
        'infida' 'infida:hint="none"' 'infida:horizons=[4,16,64,256]' ...

Per workload: the policy's total normalized gain (gain / G_max over the
run), then, paired by seed, minus local-greedy's and minus the static
rule's (``infida:learning="static"``), means over the seeds. A policy is
NAME or NAME:key=JSON;key=JSON.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from idn.model.scenario import load_scenario
from idn.policies.registry import make_policy
from idn.sim.inputs import count_matrix, default_trace, request_types_for
from idn.sim.loop import run_policy

TUNING = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tuning")


def shifting(period, zipf=1.4):
    return {"kind": "shifting", "rate": 100, "zipf": zipf, "period": period, "mode": "reshuffle"}


# name: (scenario, budget scale or None, workload (None: the scenario's), slots, burstiness (0: Poisson only))
WORKLOADS = {
    "ttt-s20": ("tune-tree-tight", None, None, 200, 0),
    "ttt-s60": ("tune-tree-tight", None, shifting(60), 240, 0),
    "ttt-s150": ("tune-tree-tight", None, shifting(150), 300, 0),
    "ttt-stat": ("tune-tree-tight", None, {"kind": "stationary", "rate": 100, "zipf": 1.4}, 200, 0),
    "ttt-day": ("tune-tree-tight", None, {"kind": "diurnal", "rate": 100, "zipf": 1.4, "day_slots": 120, "phases": 6}, 360, 0),
    "tt-stat": ("tune-tree", None, None, 200, 0),
    "tt-noisy": ("tune-tree", None, {"kind": "stationary", "rate": 3, "zipf": 0.8}, 200, 0.5),
    "ttt-noisy": ("tune-tree-tight", None, {"kind": "stationary", "rate": 5, "zipf": 1.4}, 200, 0.5),
    "tz-stat": ("tune-zoo", None, None, 200, 0),
    "tz-s30": ("tune-zoo", 0.5, shifting(30, 1.2), 240, 0),
    "wide-s40": ("tune-tree-wide", None, None, 200, 0),
    "wide-s150": ("tune-tree-wide", None, shifting(150), 300, 0),
    "wide-stat": ("tune-tree-wide", None, {"kind": "stationary", "rate": 100, "zipf": 1.4}, 200, 0),
    "wide-day": ("tune-tree-wide", None, {"kind": "diurnal", "rate": 100, "zipf": 1.4, "day_slots": 160, "phases": 5}, 320, 0),
}


def inputs(name: str, seed: int):
    """(request types, counts). Noisy workloads: each (slot, task)'s counts
    drawn again from Poisson(count x Gamma(k, 1/k)), k the burstiness (0.5:
    a bursty, sparse demand whose mean is the stationary one)."""
    scenario, scale, spec, slots, burst = WORKLOADS[name]
    idn = load_scenario(os.path.join(TUNING, f"{scenario}.yaml"))
    if scale is not None:
        idn = idn.with_changes(budget_scale=scale)
    trace = default_trace(idn, slots, seed, spec)
    rt = request_types_for(idn, trace)
    counts = count_matrix(rt, trace, slots)
    if burst:
        rng = np.random.default_rng(1000 + seed)
        factor = rng.gamma(burst, 1.0 / burst, size=(slots, int(rt.task.max()) + 1))
        counts = rng.poisson(counts * factor[:, rt.task]).astype(float)
    return rt, counts


def parse_policy(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition(":")
    return name, {k: json.loads(v) for k, v in (item.split("=", 1) for item in filter(None, rest.split(";")))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("policies", nargs="*", default=["infida"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--only", default=None, help="comma-separated workloads (default: all)")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(WORKLOADS)
    baselines = ["local-greedy", 'infida:learning="static"']
    policies = baselines + [p for p in args.policies if p not in baselines]
    gain = {}
    for workload in names:
        for seed in args.seeds:
            rt, counts = inputs(workload, seed)
            for p in policies:
                policy, params = parse_policy(p)
                s = run_policy(rt, make_policy(policy, **params), counts, seed=seed).slots
                gain[workload, seed, p] = float(s["gain"].sum() / s["gain_max"].sum())
    print(f"seeds {args.seeds}; per workload: gain, minus local-greedy, minus the static rule (paired by seed)")
    print("| policy | " + " | ".join(names) + " | mean minus LG | mean minus static |")
    print("|---|" + "---|" * (len(names) + 2))
    for p in policies:
        cells, d_lg, d_st = [], [], []
        for name in names:
            g = np.array([gain[name, s, p] for s in args.seeds])
            lg = g - np.array([gain[name, s, baselines[0]] for s in args.seeds])
            st = g - np.array([gain[name, s, baselines[1]] for s in args.seeds])
            cells.append(f"{g.mean():.3f} ({lg.mean():+.3f}, {st.mean():+.3f})")
            d_lg.append(lg.mean())
            d_st.append(st.mean())
        print(f"| {p} | " + " | ".join(cells) + f" | {np.mean(d_lg):+.4f} | {np.mean(d_st):+.4f} |", flush=True)


if __name__ == "__main__":
    main()
