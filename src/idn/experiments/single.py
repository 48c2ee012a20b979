"""One run to a directory (``idn run``) and a side-by-side comparison of
policies on one trace (``idn demo``)."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from ..model.network import IDN
from ..policies.registry import make_policy
from ..sim.inputs import count_matrix, default_trace, request_types_for
from ..sim.loop import RunResult, run_policy

# (label, policy name, parameters)
DEMO_POLICIES = [
    ("infida", "infida", {}),
    ("infida (coupled rounding)", "infida", {"rounding": "coupled"}),
    ("local-greedy", "local-greedy", {}),
    ("lfu", "lfu", {}),
    ("lru", "lru", {}),
    ("online-greedy (centralized)", "online-greedy", {}),
    ("static-greedy *", "static-greedy", {}),
    ("infida-offline *", "infida-offline", {}),
    ("cloud-only", "cloud-only", {}),
]


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True):
    """Yields on_slot(done, total); a rich progress bar on stderr when enabled."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(description, total=total)
        yield lambda done, _total: bar.update(task, completed=done)


def with_bounds(summary: dict, bound: dict | None, dynamic: bool) -> dict:
    """Add the LP bounds and the run's fraction of each to a summary."""
    if not bound:
        return summary
    total = summary["total_gain"]
    static, per_slot = bound["static_lp_bound"], bound["per_slot_lp_bound"]
    summary["static_lp_bound"] = static
    summary["lp_bound"] = static  # the old name, until 0.3 (idn.output_names)
    summary["fraction_of_bound"] = total / static if static > 0 else None
    summary["per_slot_lp_bound"] = per_slot
    summary["fraction_of_per_slot_bound"] = total / per_slot if per_slot > 0 else None
    if "method" in bound:  # certified_bounds: the method, its time and the gaps, with this run as a feasible gain
        from .bound_run import regap

        full = regap(bound, total, dynamic)
        summary["bound_method"] = full["method"]
        summary["bound_seconds"] = full["seconds"]
        summary["gap"] = full["gap"]
        summary["per_slot_gap"] = full["per_slot_gap"]
    if dynamic and static > 0 and total > static * (1 + 1e-9):
        summary["note"] = (
            "this dynamic policy beat the best static allocation's LP bound: the workload shifts, "
            "so no single allocation can match it; compare with per_slot_lp_bound"
        )
    return summary


def run_to_dir(
    idn: IDN,
    policy_name: str,
    out: Path,
    trace: pd.DataFrame | None = None,
    slots: int = 500,
    seed: int = 0,
    params: dict | None = None,
    checkpoint_every: int = 0,
    with_bound: bool = True,
    progress: bool = True,
    restart: bool = False,
    bound: str = "auto",
) -> dict:
    """``idn run``: summary.json, slots.csv and allocation.json in out.
    ``restart`` forgets a checkpoint left in out; else one is resumed, or
    refused in one line if it is not this run's (idn.sim.checkpoint)."""
    from ..sim import checkpoint as ckpt

    policy = make_policy(policy_name, **(params or {}))
    if restart:
        ckpt.remove(out)
    ckpt.check_legacy(out)
    trace = default_trace(idn, slots, seed) if trace is None else trace
    rt = request_types_for(idn, trace)
    counts = count_matrix(rt, trace)
    out.mkdir(parents=True, exist_ok=True)
    with progress_bar(f"{policy_name}", counts.shape[0], progress) as on_slot:
        result = run_policy(
            rt, policy, counts, seed=seed, checkpoint=out / ckpt.NAME, checkpoint_every=checkpoint_every,
            on_slot=on_slot,
        )  # fmt: skip
    summary = result.summary()
    summary["seed"] = seed
    summary["params"] = result.params
    if with_bound and bound != "none":  # --bound auto|lp|fast (--no-bound: none)
        from .bound_run import compute_bounds

        summary = with_bounds(summary, compute_bounds(rt, counts, bound, progress), dynamic=not policy.offline)
    write_result(out, result, summary, idn)
    return summary


def write_result(out: Path, result: RunResult, summary: dict, idn: IDN) -> None:
    result.slots.to_csv(out / "slots.csv", index=False)
    (out / "allocation.json").write_text(json.dumps(idn.allocation_to_ids(result.final_allocation), indent=2) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_jsonable) + "\n")


def _jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def compare(rt, counts: np.ndarray, policies: list[tuple[str, str, dict]], seed: int = 0, progress: bool = True) -> list[dict]:
    """Run each (label, policy name, parameters) on the same counts (common random numbers)."""
    rows = []
    for label, name, params in policies:
        policy = make_policy(name, **params)
        t0 = time.perf_counter()
        with progress_bar(label, counts.shape[0], progress) as on_slot:
            result = run_policy(rt, policy, counts, seed=seed, on_slot=on_slot)
        summary = result.summary()
        summary["label"] = label
        summary["wall_seconds"] = time.perf_counter() - t0
        summary["offline"] = policy.offline
        rows.append(summary)
    return rows


def demo(slots: int = 300, seed: int = 0, scenario: IDN | None = None) -> list[dict]:
    """``idn demo``: INFIDA and the baselines on the built-in scenario, one table."""
    from rich.console import Console
    from rich.table import Table

    from ..model.scenario import load_default_scenario
    from ..upper_bounds import bounds
    from .summaries import scenario_summary

    console = Console(width=max(Console().width, 110))
    idn = scenario or load_default_scenario()
    console.print(scenario_summary(idn))
    trace = default_trace(idn, slots, seed)
    rt = request_types_for(idn, trace)
    counts = count_matrix(rt, trace)
    console.print(f"\nworkload: {idn.workload or 'stationary'}, {slots} slots, {int(counts.sum())} requests, seed {seed}")
    rows = compare(rt, counts, DEMO_POLICIES, seed=seed)
    t0 = time.perf_counter()
    bound = bounds(rt, counts)
    bound_seconds = time.perf_counter() - t0
    rows = [with_bounds(r, bound, dynamic=not r["offline"]) for r in rows]

    table = Table(title=f"{idn.name}: {slots} slots, alpha = {idn.alpha:g} ms per accuracy point")
    for col in ("policy", "gain / slot", "% of LP bound", "norm. gain", "latency ms", "accuracy", "model loads", "ms / slot"):
        table.add_column(col, justify="left" if col == "policy" else "right", no_wrap=col == "policy")
    for r in sorted(rows, key=lambda r: -r["total_gain"]):
        frac = r.get("fraction_of_bound")
        table.add_row(
            r["label"],
            f"{r['time_avg_gain']:.4g}",
            f"{100 * frac:.1f}" if frac is not None else "-",
            f"{r['normalized_gain']:.3f}",
            f"{r['mean_latency_ms']:.1f}",
            f"{r['mean_accuracy']:.3f}",
            str(r["model_loads"]),
            f"{1000 * r['seconds_per_slot']:.2f}",
        )
    console.print(table)
    console.print(
        f"LP bounds (solved in {bound_seconds:.1f} s): best static allocation <= {bound['static_lp_bound']:.6g} "
        f"total gain; any policy <= {bound['per_slot_lp_bound']:.6g} (per-slot bound)."
    )
    console.print(
        "* offline: knows the whole trace in advance (a benchmark, not a deployable policy).\n"
        "gain = latency + accuracy cost (ms) saved against serving every request at the repository; "
        "norm. gain = gain / the most any allocation could save; model loads = models (re)loaded over the run."
    )
    return rows
