"""The adversarial half of the paper's claim (design page, section 7): a
request sequence on which a windowed greedy policy has regret linear in T,
while INFIDA's psi-regret per slot keeps falling.

The instance: one access node with room for exactly one of two equally
large models, one per task, behind a cloud repository. The sequence is built
against the greedy policy it defeats (it is deterministic, so the sequence
is fixed in advance: an oblivious adversary): every slot, all requests go to
the task whose model the greedy policy does not hold. The greedy policy
follows the majority of its window, the sequence feeds the minority, so the
two tasks stay balanced: the best static allocation (either model) serves
about half the slots, the greedy policy none. INFIDA, whose state moves by
small steps, settles near (1/2, 1/2) and serves about half.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import serving
from ..model.request_types import build_request_types
from ..model.scenario import scenario_from_dict
from ..policies.registry import make_policy
from ..sim.loop import run_policy

PSI = 1.0 - 1.0 / np.e
SCENARIO = {
    "name": "adversarial",
    "alpha": 1.0,
    "nodes": [
        {"id": "cloud", "tier": "cloud", "hardware": "gpu", "speed": 1.0, "workers": 4, "repository": True},
        {"id": "ap", "tier": "access", "hardware": "cpu", "speed": 1.0, "workers": 50, "budget_mb": 100},
    ],
    "links": [{"a": "ap", "b": "cloud", "latency_ms": 20.0}],
    "tasks": [
        {"id": task, "models": [{"id": "m", "accuracy": 0.8, "size_mb": 100, "service_ms": {"cpu": 5.0, "gpu": 5.0}}]}
        for task in ("a", "b")
    ],  # fmt: skip
    "sources": ["ap"],
}


def adversarial_sequence(greedy: str = "online-greedy", slots: int = 400, rate: float = 10.0, window: int = 10):
    """(request types, (T, 2) counts) built against the greedy policy `greedy`
    (online-greedy or local-greedy with that window)."""
    idn = scenario_from_dict(SCENARIO)
    rt = build_request_types(idn)
    params = {"window": window} | ({"update_prob": 1.0} if greedy == "local-greedy" else {})
    policy = make_policy(greedy, **params).start(rt, seed=0)
    ap, a_model = idn.node_index["ap"], idn.model_index["a/m"]
    counts = np.zeros((slots, rt.n_types))
    for t in range(slots):
        holds_a = policy.propose()[ap, a_model] > 0.5
        counts[t, rt.key_index[("ap", "b" if holds_a else "a")]] = rate
        policy.learn(counts[t], serving.capacity_share(rt, counts[t]))
    return rt, counts


def regret_table(horizons=(100, 400, 1600), seeds=(0, 1, 2), greedy: str = "online-greedy") -> pd.DataFrame:
    """psi-regret / T (and plain regret / T) of the greedy policy and of INFIDA
    on the sequence built against the greedy, for each horizon, per slot's
    largest gain = 1 (so the figures are fractions of a slot's gain)."""
    rows = []
    for T in horizons:
        rt, counts = adversarial_sequence(greedy, T)
        per_slot_max = serving.max_gain(rt, counts[0])
        idn = rt.idn
        best_static = 0.0
        for model in ("a/m", "b/m"):
            x = idn.permanent.astype(float)
            x[idn.node_index["ap"], idn.model_index[model]] = 1.0
            best_static = max(best_static, sum(serving.gain(rt, counts[t], x) for t in range(T)))
        params = {"window": 10} | ({"update_prob": 1.0} if greedy == "local-greedy" else {})
        for label, name, p, run_seeds in ((greedy, greedy, params, seeds[:1]), ("infida", "infida", {}, seeds)):
            for seed in run_seeds:
                total = float(run_policy(rt, make_policy(name, **p), counts, seed=seed).slots["gain"].sum())
                rows.append({
                    "policy": label, "T": T, "seed": seed,
                    "psi_regret_per_slot": (PSI * best_static - total) / T / per_slot_max,
                    "regret_per_slot": (best_static - total) / T / per_slot_max,
                })  # fmt: skip
    return pd.DataFrame(rows)


def plot_regret(table: pd.DataFrame, path_stem) -> None:
    """psi-regret / T against T (log x), mean over seeds, one line per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), constrained_layout=True)
    for policy, sub in table.groupby("policy", sort=False):
        mean = sub.groupby("T")["psi_regret_per_slot"].mean()
        ax.plot(mean.index, mean.values, marker="o", label=policy)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("T (slots)")
    ax.set_ylabel("ψ-regret / T (fraction of a slot's gain)")
    ax.set_title("A sequence built against windowed greedy")
    ax.legend()
    with matplotlib.rc_context({"svg.hashsalt": "idn-report"}):
        fig.savefig(f"{path_stem}.png", dpi=130)
        fig.savefig(f"{path_stem}.svg", metadata={"Date": None})
    plt.close(fig)
