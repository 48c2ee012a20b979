"""Convergence, steady-state gain and churn of several policies on one trace.

    python benchmarks/convergence.py SCENARIO --slots 300 [--seed 0] [--kind stationary]
        [--policy infida] [--policy 'infida:rounding=coupled'] ...

Per policy it prints: the normalized gain over the second half of the run;
the plateau (the mean normalized gain of the last half); the first slot from
which the 10-slot running mean stays within 2% of that plateau; model loads
per cache node per slot over the second half; and the median seconds per
slot. The tuning scenarios in benchmarks/tuning/ are where INFIDA's defaults
were chosen (docs/model.md, section 12), apart from the study's scenarios.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from idn.model.scenario import load_scenario
from idn.policies.registry import make_policy
from idn.sim.inputs import count_matrix, default_trace, request_types_for
from idn.sim.loop import run_policy


def parse_policy(text: str) -> tuple[str, str, dict]:
    name, _, rest = text.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        k, v = item.split("=", 1)
        try:
            params[k] = json.loads(v)
        except json.JSONDecodeError:
            params[k] = v
    return text, name, params


def slots_to_plateau(norm: np.ndarray, window: int = 10, tol: float = 0.02) -> int:
    """First slot t such that the running mean of the `window` slots ending at
    t, and every later one, is within tol of the plateau (second-half mean)."""
    plateau = norm[len(norm) // 2 :].mean()
    run = np.convolve(norm, np.ones(window) / window, mode="valid")  # run[i]: slots i..i+window-1
    ok = np.abs(run - plateau) <= tol * abs(plateau)
    bad = np.flatnonzero(~ok)
    return int(bad[-1] + 1 + window) if bad.size else window


def measure(rt, counts, label, name, params, seed) -> dict:
    policy = make_policy(name, **params)
    t0 = time.perf_counter()
    res = run_policy(rt, policy, counts, seed=seed)
    wall = time.perf_counter() - t0
    s = res.slots
    half = len(s) // 2
    second = s.iloc[half:]
    caches = int((~rt.idn.repository).sum())
    return {
        "policy": label,
        "norm_gain_2nd_half": float(second["gain"].sum() / second["gain_max"].sum()),
        "slots_to_plateau": slots_to_plateau(s["normalized_gain"].to_numpy()),
        "loads_per_cache_node_slot": float(second["model_loads"].mean() / caches),
        "s_per_slot": float(s["seconds"].median()),
        "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario")
    ap.add_argument("--slots", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kind", default=None, help="workload kind (default: the scenario's)")
    ap.add_argument("--workload", default=None, help="workload spec as JSON (overrides --kind)")
    ap.add_argument("--policy", action="append", required=True)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    idn = load_scenario(args.scenario)
    spec = json.loads(args.workload) if args.workload else ({**idn.workload, "kind": args.kind} if args.kind else None)
    trace = default_trace(idn, args.slots, args.seed, spec)
    rt = request_types_for(idn, trace)
    counts = count_matrix(rt, trace, args.slots)
    print(f"# {idn.name}: {rt.n_entries} entries, {args.slots} slots, seed {args.seed}, workload {spec or idn.workload}")
    print(f"{'policy':40s} {'gain 2nd half':>13s} {'to plateau':>10s} {'loads/node/slot':>15s} {'s/slot':>8s}")
    for text in args.policy:
        r = measure(rt, counts, *parse_policy(text), args.seed)
        if args.json:
            print(json.dumps(r))
        print(f"{r['policy']:40s} {r['norm_gain_2nd_half']:13.4f} {r['slots_to_plateau']:10d} "
              f"{r['loads_per_cache_node_slot']:15.4f} {r['s_per_slot']:8.4f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
