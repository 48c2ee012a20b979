"""Recovery after a reshuffle (docs/results.md): INFIDA's gain over
local-greedy's, slot by slot, around a popularity reshuffle, for INFIDA's
runs in two result stores (before: the static rule; after: the tracking
rule), and how many slots each takes to come back within 2% of
local-greedy's gain.

    python benchmarks/recovery_after_shift.py BEFORE_STORE AFTER_STORE \
        [--scenario big-tree] [--workload shift-250] [--at 250] [--window 10] \
        [--out docs/results/figures/recovery_big-tree_shift-250.png]

"Back within 2%" at slot s: INFIDA's gain summed over slots s..s+window-1 is
at least 0.98 of local-greedy's over the same slots (same requests: the
runs are paired by seed). Two figures per run: the first such slot after
the reshuffle, and the first from which it holds for every later window
of the run ("for good"; none if it never does).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from idn.experiments.store import load_runs, load_slots  # noqa: E402


def gains(store, scenario, workload, policy, rounding=None) -> dict[int, np.ndarray]:
    """{seed: per-slot gain} of the policy's runs (INFIDA: of one rounding)."""
    runs = load_runs(store)
    pick = (runs["scenario"] == scenario) & (runs["workload"] == workload) & (runs["policy"] == policy)
    if rounding is not None:
        pick &= runs["param_rounding"] == rounding
    chosen = runs[pick]
    slots = load_slots(store)
    slots = slots[slots["run_id"].isin(chosen["run_id"])]
    seed_of = dict(zip(chosen["run_id"], chosen["seed"]))
    return {int(seed_of[r]): s.sort_values("slot")["gain"].to_numpy() for r, s in slots.groupby("run_id")}


def window_ratio(a: np.ndarray, b: np.ndarray, window: int) -> np.ndarray:
    """ratio[s] = sum a[s:s+window] / sum b[s:s+window]."""
    ca, cb = np.concatenate([[0], np.cumsum(a)]), np.concatenate([[0], np.cumsum(b)])
    return (ca[window:] - ca[:-window]) / (cb[window:] - cb[:-window])


def recovery(ratio: np.ndarray, at: int, tol: float = 0.02) -> tuple[int | None, int | None]:
    """(slots until the first window within tol, slots until within tol for good) after slot at."""
    ok = ratio[at:] >= 1.0 - tol
    first = int(np.argmax(ok)) if ok.any() else None
    bad = np.flatnonzero(~ok)
    good = 0 if bad.size == 0 else (int(bad[-1]) + 1 if bad[-1] + 1 < ok.size else None)
    return first, good


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--scenario", default="big-tree")
    ap.add_argument("--workload", default="shift-250")
    ap.add_argument("--at", type=int, default=250, help="the slot of the reshuffle")
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    lg = gains(args.after, args.scenario, args.workload, "local-greedy")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    print(f"{args.scenario} {args.workload}: slots after the reshuffle at {args.at} until INFIDA's gain over "
          f"{args.window} slots is within 2% of local-greedy's (first time / for good), per seed")  # fmt: skip
    for ax, rounding in zip(axes, ("fresh", "coupled")):
        for label, store, color in (("static rule (before)", args.before, "tab:gray"),
                                    ("tracking rule (after)", args.after, "tab:blue")):  # fmt: skip
            inf = gains(store, args.scenario, args.workload, "infida", rounding)
            seeds = sorted(set(inf) & set(lg))
            ratios = np.array([window_ratio(inf[s], lg[s], args.window) for s in seeds])
            x = np.arange(ratios.shape[1])
            ax.plot(x, ratios.mean(axis=0), color=color, label=label)
            ax.fill_between(x, ratios.min(axis=0), ratios.max(axis=0), color=color, alpha=0.2, lw=0)
            rec = [recovery(r, args.at) for r in ratios]
            text = ", ".join(f"{f if f is not None else '>'}/{g if g is not None else 'never'}" for f, g in rec)
            print(f"   {rounding:8s} {label:22s} seeds {seeds}: {text}")
        ax.axvline(args.at, color="k", lw=0.8, ls=":")
        ax.axhline(0.98, color="tab:red", lw=0.8, ls="--")
        ax.set_title(f"INFIDA {rounding} rounding")
        ax.set_xlabel(f"slot (start of a {args.window}-slot window)")
        ax.set_xlim(max(0, args.at - 100), ratios.shape[1])
        ax.set_ylim(0.3, 1.15)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("INFIDA gain / local-greedy gain")
    axes[0].legend(loc="lower right")
    fig.suptitle(f"{args.scenario}, {args.workload}: recovery after the reshuffle at slot {args.at} "
                 "(mean over seeds, band min-max; dashed: 0.98)")  # fmt: skip
    fig.tight_layout()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out, dpi=110)
        print(f"   figure: {args.out}")


if __name__ == "__main__":
    main()
