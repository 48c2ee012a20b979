"""Where INFIDA's steady-state gap to static greedy comes from, on the
1111-node tree: over the second half of a long run, per seed,
- G(y): the relaxed gain of INFIDA's fractional state (what the mirror
  ascent learned),
- G(x): the gain of the allocations its rounding drew,
- static greedy's gain (solved on the whole trace, scored on the same half).

    python benchmarks/bench_rounding_loss.py [--slots 600] [--seeds 0 1] [--param rounding=coupled]

If G(y) is at least static greedy's and G(x) is not, the gap is the
rounding's (per-node draws, made independently), not the learning's.
About 1-2 min per seed on an idle core.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convergence import parse_policy  # noqa: E402

from idn import serving  # noqa: E402
from idn.model.scenario import load_scenario  # noqa: E402
from idn.policies.registry import make_policy  # noqa: E402
from idn.sim.inputs import count_matrix, default_trace, request_types_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default=os.path.join(HERE, "..", "examples", "big-tree.yaml"))
    ap.add_argument("--slots", type=int, default=600)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--param", action="append", default=[], help="an INFIDA parameter, NAME=VALUE")
    args = ap.parse_args()
    _, _, params = parse_policy("infida:" + ",".join(args.param))
    idn = load_scenario(args.scenario)
    print("| seed | G(y) / static greedy | G(x) / static greedy | G(x) / G(y) |")
    print("|---|---|---|---|")
    for seed in args.seeds:
        trace = default_trace(idn, args.slots, seed)
        rt = request_types_for(idn, trace)
        counts = count_matrix(rt, trace, args.slots)
        infida = make_policy("infida", **params).start(rt, seed)
        static = make_policy("static-greedy").start(rt, seed, trace=counts).propose()
        gx = gy = gs = 0.0
        for t in range(args.slots):
            x = infida.propose()
            share = serving.capacity_share(rt, counts[t])
            if t >= args.slots // 2:
                gx += serving.gain(rt, counts[t], x, share)
                gy += serving.gain(rt, counts[t], infida.state(), share)
                gs += serving.gain(rt, counts[t], static, share)
            infida.learn(counts[t], share)
        print(f"| {seed} | {gy / gs:.4f} | {gx / gs:.4f} | {gx / gy:.4f} |", flush=True)


if __name__ == "__main__":
    main()
