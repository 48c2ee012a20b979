"""How much adapting can be worth on real demand, by grain and by mapping:
the per-slot bound over the static bound (docs/model.md section 9) of the
ServeGen traces imported onto GEANT with 40 tasks at 0.15x budgets, alpha 2
(the real-demand study's scenario), for slot lengths from 1 minute (arrivals
sampled within windows) to an hour, over a day and over 7 days, and for
spills of 0, 0.5 and 1.

    python benchmarks/bench_real_grain.py [--servegen DIR] [--seeds 0 1] [--only day|week|spill] [--bound auto|lp|fast]

Bounds only (no policy runs). `--bound auto` (the study's `bounds: true`)
takes the LP while small and the fast Lagrangian bound past it; the two are
not equally tight, so `--bound fast` compares every grain with one method.
`gap` is the static bound's certified distance to the best static
allocation found: the ratio's own uncertainty is of that order.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import common  # noqa: F401  (one core, one thread)
import numpy as np

from idn.model.scenario import load_scenario
from idn.sim.inputs import count_matrix, request_types_for
from idn.upper_bounds import certified_bounds
from idn.workloads.importers import import_trace

GEANT40 = Path(__file__).resolve().parents[1] / "src" / "idn" / "configs" / "paper" / "geant40.yaml"

# (label, slot seconds, sample, slots): a day and a week at each grain
DAY = [("1 min, sampled", 60, True, 1440), ("5 min, sampled", 300, True, 288), ("10 min, sampled", 600, True, 144),
       ("10 min", 600, False, 144), ("1 h", 3600, False, 24)]  # fmt: skip
WEEK = [("10 min", 600, False, 1008), ("1 h", 3600, False, 168), ("10 min, sampled", 600, True, 1008)]


def ratio(net, root, seed, slot_seconds, sample, slots, spill=0.5, method="auto") -> tuple[float, str, float, float]:
    res = import_trace("servegen", root, net.sources, net.tasks, rate=100, slot_seconds=slot_seconds, sample=sample,
                       slots=slots, seed=seed, spill=spill)  # fmt: skip
    rt = request_types_for(net, res.trace)
    t = time.perf_counter()
    b = certified_bounds(rt, count_matrix(rt, res.trace, slots=slots), method)
    return b["per_slot_lp_bound"] / b["static_lp_bound"], b["method"], time.perf_counter() - t, b["gap"] or float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--servegen", default=os.environ.get("IDN_SERVEGEN", "/work/shared/data/servegen"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--only", choices=["day", "week", "spill"], nargs="+", default=["day", "week", "spill"])
    p.add_argument("--bound", choices=["auto", "lp", "fast"], default="auto")
    args = p.parse_args()
    net = load_scenario(GEANT40).with_changes(alpha=2.0, budget_scale=0.15)
    print(f"GEANT, 40 tasks, 0.15x budgets, 100 requests per source and slot; seeds {args.seeds}; "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    cases = []
    if "day" in args.only:
        cases += [("first day", *c, 0.5) for c in DAY]
    if "week" in args.only:
        cases += [("first 7 days", *c, 0.5) for c in WEEK]
    if "spill" in args.only:
        cases += [("first 7 days", "10 min", 600, False, 1008, s) for s in (0.0, 1.0)]
    print("| span | slots | spill | per-slot / static bound, by seed | mean | bound | static gap | seconds |\n"
          "|---|---|---|---|---|---|---|---|")  # fmt: skip
    for span, label, L, sample, slots, spill in cases:
        got = [ratio(net, args.servegen, s, L, sample, slots, spill, args.bound) for s in args.seeds]
        r = [g[0] for g in got]
        print(f"| {span} | {label} ({slots}) | {spill:g} | {', '.join(f'{x:.4f}' for x in r)} | {np.mean(r):.4f} | "
              f"{got[0][1]} | {max(g[3] for g in got):.3f} | {sum(g[2] for g in got):.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
