"""Every policy on the 1111-node tiered tree (examples/big-tree.yaml, 562,000
candidate entries), stationary workload, at 60 and 300 slots: normalized gain
over the second half, slots until the 10-slot mean stays within 2% of the
plateau, model loads per cache node per slot over the second half, seconds
per slot (median).

    python benchmarks/bench_policies_tree.py [--slots 300] [--short 60] [--seed 0] [--only infida,lfu] [--out FILE.json]

Online policies do not know the horizon, so their 60-slot figures are read
off the first 60 slots of the long run (same trace prefix); the offline
static greedy is solved again on the 60-slot prefix.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convergence import slots_to_plateau  # noqa: E402

from idn.model.scenario import load_scenario  # noqa: E402
from idn.policies.registry import make_policy  # noqa: E402
from idn.sim.inputs import count_matrix, default_trace, request_types_for  # noqa: E402
from idn.sim.loop import run_policy  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
POLICIES = [
    ("infida (fresh)", "infida", {}),
    ("infida (coupled)", "infida", {"rounding": "coupled"}),
    ("infida (fresh, grouping=none)", "infida", {"grouping": "none"}),
    ("infida (coupled, grouping=none)", "infida", {"rounding": "coupled", "grouping": "none"}),
    ("local-greedy", "local-greedy", {}),
    ("lfu", "lfu", {}),
    ("lru", "lru", {}),
    ("online-greedy *", "online-greedy", {}),
]


def figures(slots, caches):
    half = len(slots) // 2
    second = slots.iloc[half:]
    return {
        "norm_gain_2nd_half": float(second["gain"].sum() / second["gain_max"].sum()),
        "slots_to_plateau": slots_to_plateau(slots["normalized_gain"].to_numpy()),
        "loads_per_cache_node_slot": float(second["model_loads"].mean() / caches),
        "s_per_slot": float(slots["seconds"].median()),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default=os.path.join(HERE, "..", "examples", "big-tree.yaml"))
    ap.add_argument("--slots", type=int, default=300)
    ap.add_argument("--short", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out")
    ap.add_argument("--only", help="comma-separated policy names to run (e.g. infida,lfu); static greedy always runs")
    args = ap.parse_args()
    idn = load_scenario(args.scenario)
    trace = default_trace(idn, args.slots, args.seed)
    rt = request_types_for(idn, trace)
    counts = count_matrix(rt, trace, args.slots)
    caches = int((~idn.repository).sum())
    print(f"# {idn.name}: {idn.n_nodes} nodes, {rt.n_entries} entries, seed {args.seed}", flush=True)
    rows = []
    only = set(args.only.split(",")) if args.only else None
    for label, name, params in POLICIES:
        if only is not None and name not in only:
            continue
        t0 = time.perf_counter()
        res = run_policy(rt, make_policy(name, **params), counts, seed=args.seed)
        for horizon in (args.short, args.slots):
            rows.append({"policy": label, "slots": horizon, **figures(res.slots.iloc[:horizon], caches)})
        print(f"{label}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    for horizon in (args.short, args.slots):  # offline: solved on exactly the slots it is scored on
        res = run_policy(rt, make_policy("static-greedy"), counts[:horizon], seed=args.seed)
        rows.append({"policy": "static-greedy *", "slots": horizon, **figures(res.slots, caches)})
    rows.sort(key=lambda r: (r["slots"], -r["norm_gain_2nd_half"]))
    print("| policy | slots | normalized gain, 2nd half | slots to plateau | loads / cache node / slot | s / slot |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['policy']} | {r['slots']} | {r['norm_gain_2nd_half']:.4f} | {r['slots_to_plateau']} | "
              f"{r['loads_per_cache_node_slot']:.4f} | {r['s_per_slot']:.3f} |")  # fmt: skip
    for horizon in (args.short, args.slots):
        by = {r["policy"]: r["norm_gain_2nd_half"] for r in rows if r["slots"] == horizon}
        if "infida (fresh)" not in by:
            continue
        print(f"{horizon} slots: infida (fresh) / static-greedy = {by['infida (fresh)'] / by['static-greedy *']:.4f}; "
              f"coupled / fresh = {by['infida (coupled)'] / by['infida (fresh)']:.4f}")  # fmt: skip
    print("* online-greedy is centralized (nodes in sequence on the global objective); static-greedy is offline.")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
