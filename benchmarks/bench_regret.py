"""Time-averaged psi-regret of INFIDA against the best static allocation in
hindsight, on a small IDN whose task popularity shifts (idn.workloads
``shifting``, rotate mode), for T = 100, 400, 1600:

    psi-regret_T / T = (psi * OPT_T - INFIDA_T) / T,   psi = 1 - 1/e,

OPT_T the exact static optimum of the first T slots (the ``optimal`` MILP),
INFIDA_T its realized total gain (fresh rounding), averaged over seeds.
Beside it: the plain regret (psi = 1), and the regret of INFIDA's fractional
states y^t against the static LP bound (max_y sum_t G_t(y)), the quantity
mirror ascent itself controls, and what the rounding loses per slot,
(sum_t G_t(y^t) - INFIDA_T) / T.

    python benchmarks/bench_regret.py [--seeds 3] [--regimes heavy,light]

Two load regimes of the same instance: ``heavy`` (3000 requests per source
and slot: capacities bind, so G is nearly linear in y) and ``light`` (300: a
fraction of a large model's capacity already covers a type's demand, so the
relaxation saturates). See benchmarks/README.md for what each shows.
"""

from __future__ import annotations

import argparse
import time

import common  # noqa: F401  (one-core setup first)
import numpy as np

from idn import serving, workloads
from idn.model.request_types import build_request_types
from idn.model.scenario import scenario_from_dict
from idn.policies.registry import make_policy
from idn.policies.infida.policy import Infida
from idn.upper_bounds.lp import static_lp_bound
from idn.sim.loop import run_policy

PSI = 1.0 - 1.0 / np.e
HORIZONS = (100, 400, 1600)
# 8 nodes (cloud, 1 regional with 400 MB, 2 edge, 4 access), 4 tasks of 3-4 models
SMALL = {
    "name": "regret-small",
    "alpha": 1.5,
    "topology": {
        "tiered_tree": {"regional": 1, "edge_per_regional": 2, "access_per_edge": 2},
        "budget_mb": {"regional": 400.0},
    },
    "tasks": {"generate": {"count": 4, "models_per_task": [3, 4], "seed": 3}},
}
REGIMES = {"heavy": 3000.0, "light": 300.0}
PERIOD = 100  # slots between popularity rotations


def infida_run(rt, counts, seed):
    """(realized total gain, total gain of the fractional states y^t)."""
    policy = Infida().start(rt, seed=seed)
    realized = fractional = 0.0
    for t in range(counts.shape[0]):
        share = serving.capacity_share(rt, counts[t])
        fractional += serving.gain(rt, counts[t], policy.state(), share)
        realized += serving.serve(rt, counts[t], policy.propose(), share).gain
        policy.learn(counts[t], share)
    return realized, fractional


def regime(rt, rate, seeds):
    idn = rt.idn
    rows = []
    print(f"   {'T':>5}{'OPT/T':>11}{'LP/T':>11}{'INFIDA/T':>11}{'psi-regret/T':>14}{'regret/T':>11}"
          f"{'frac. regret/T':>16}{'G(y)-G(x) /T':>14}{'MILP s':>8}")  # fmt: skip
    for T in HORIZONS:
        trace = workloads.shifting(idn.sources, idn.tasks, T, seed=0, rate=rate, zipf=1.0, period=PERIOD)
        counts = workloads.to_matrix(trace, rt.key_index, rt.n_types, T)
        t0 = time.perf_counter()
        opt = run_policy(rt, make_policy("optimal", max_variables=10**6, time_limit=600.0), counts).slots
        t_milp = time.perf_counter() - t0
        opt_total = float(opt["gain"].sum())
        lp, _ = static_lp_bound(rt, counts)
        realized, fractional = np.mean([infida_run(rt, counts, s) for s in range(seeds)], axis=0)
        row = {
            "T": T,
            "opt": opt_total / T,
            "lp": lp / T,
            "infida": realized / T,
            "psi_regret": (PSI * opt_total - realized) / T,
            "regret": (opt_total - realized) / T,
            "fractional_regret": (lp - fractional) / T,
            "rounding_loss": (fractional - realized) / T,
        }
        rows.append(row)
        print(f"   {T:>5}{row['opt']:>11.4g}{row['lp']:>11.4g}{row['infida']:>11.4g}{row['psi_regret']:>14.4g}"
              f"{row['regret']:>11.4g}{row['fractional_regret']:>16.4g}{row['rounding_loss']:>14.4g}"
              f"{t_milp:>8.1f}")  # fmt: skip
    psi = [r["psi_regret"] for r in rows]
    falling = all(a > b for a, b in zip(psi, psi[1:]))
    print(f"   psi-regret/T {'decreases' if falling else 'does NOT decrease'} with T")
    return rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="INFIDA seeds (rounding) averaged")
    ap.add_argument("--regimes", default="heavy,light")
    args = ap.parse_args(argv)
    idn = scenario_from_dict(SMALL)
    rt = build_request_types(idn)
    out = {}
    for name in args.regimes.split(","):
        rate = REGIMES[name]
        common.header(f"psi-regret of INFIDA, {name} load ({rate:g} requests per source and slot)")
        print(f"   {idn.n_nodes} nodes, {idn.n_models} models, {rt.n_types} request types, {rt.n_entries} entries; "
              f"popularity (Zipf 1) rotates every {PERIOD} slots; INFIDA averaged over {args.seeds} seeds")  # fmt: skip
        out[name] = regime(rt, rate, args.seeds)
    return out


if __name__ == "__main__":
    main()
