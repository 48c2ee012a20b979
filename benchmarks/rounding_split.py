"""Where INFIDA's draws lose on the tuning scenarios (docs/model.md 12.2,
"Filling by what a model would add"): every k-th slot of a run, a number of
draws of the state y, and
- G(E[x]) / G(y): the marginals' part (a knapsack makes some states
  unreachable: the draws hold less than y),
- E[G(x)] / G(E[x]): the rest (which models are drawn together),
- E[G(fill(x))] / G(y): what is kept after the fill of the policy's ``fill``.

    python benchmarks/rounding_split.py [--workloads ttt-s60,wide-s40] [--seeds 0] [--every 5] [--draws 16] [--policy infida]

Workloads are those of tune_tracking.py (none of them a study's).
"""

from __future__ import annotations

import argparse

import numpy as np
from tune_tracking import WORKLOADS, inputs, parse_policy

from idn import serving
from idn.policies.infida.coordination import group_offsets
from idn.policies.infida.fill import fill_leftover, has_room, marginal_terms
from idn.policies.registry import make_policy


def split(workload: str, seed: int, policy: str, every: int, draws: int) -> np.ndarray:
    rt, counts = inputs(workload, seed)
    name, params = parse_policy(policy)
    pol = make_policy(name, **params).start(rt, seed)
    if pol.params["rounding"] != "fresh":
        raise SystemExit("rounding_split measures fresh draws (rounding: fresh)")
    n = pol.nodes
    rng = np.random.default_rng(5)  # the extra draws' own: the policy's run is left as it is
    total = np.zeros(4)  # G(y), G(E[x]), E[G(x)], E[G(filled x)]
    terms = None  # the marginal fill's terms from the last slot, as learn() makes them
    offsets = None  # the coordinated draw's offsets from the last slot (coordination: path), likewise
    for t in range(counts.shape[0]):
        share = serving.capacity_share(rt, counts[t])
        if t % every == every - 1:
            c = counts[t]
            raw = [(pol.rounding.round(pol.y, rng) if offsets is None else pol.rounding.round(pol.y, rng, offsets)).copy()
                   for _ in range(draws)]  # fmt: skip
            filled = []
            for x in raw:
                if pol.params["fill"] == "marginal" and terms is not None:
                    room = has_room(x, n.sizes, n.offsets, n.budgets)
                    key = terms(x, room) / n.sizes if room.any() else np.zeros(x.size)
                    filled.append(fill_leftover(x, key, pol.y, n.sizes, n.offsets, n.budgets))
                elif pol.params["fill"]:
                    filled.append(fill_leftover(x, pol.y, pol._g_per_mb, n.sizes, n.offsets, n.budgets))
                else:
                    filled.append(x)
            total += [serving.gain(rt, c, pol.state(), share),
                      serving.gain(rt, c, n.dense(np.mean(raw, axis=0)), share),
                      np.mean([serving.gain(rt, c, n.dense(x.astype(float)), share) for x in raw]),
                      np.mean([serving.gain(rt, c, n.dense(x.astype(float)), share) for x in filled])]  # fmt: skip
        y_t, c_t = pol.y.copy(), np.ascontiguousarray(counts[t], dtype=float)
        terms = (lambda y_t, c_t, share: lambda x, room: marginal_terms(
            rt.offsets, pol._entry_index, rt.cost, share, c_t, y_t, x, pol._entry_node, rt.path_offsets, rt.path_nodes, room))(y_t, c_t, share)
        if pol.coordinates:
            offsets = group_offsets(pol._path_layout, y_t, c_t > 0)
        pol.learn(counts[t], share)
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", default="ttt-s60,ttt-stat,wide-s40,wide-stat,tz-s30")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--draws", type=int, default=16)
    ap.add_argument("--policy", default="infida")
    args = ap.parse_args()
    print("| workload | seed | G(E[x]) / G(y) | E[G(x)] / G(E[x]) | filled / G(y) |")
    print("|---|---|---|---|---|")
    for w in args.workloads.split(","):
        if w not in WORKLOADS:
            raise SystemExit(f"unknown workload {w!r}; known: {', '.join(WORKLOADS)}")
        for seed in args.seeds:
            g = split(w, seed, args.policy, args.every, args.draws)
            print(f"| {w} | {seed} | {g[1] / g[0]:.4f} | {g[2] / g[1]:.4f} | {g[3] / g[0]:.4f} |", flush=True)


if __name__ == "__main__":
    main()
