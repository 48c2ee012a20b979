"""The bounds as the commands compute them: ``--bound auto|lp|fast|none``,
with a progress display for the long ones (``idn bound``, ``idn run``,
``idn demo``, sweeps)."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..upper_bounds import BOUND_METHODS, certified_bounds, choose_method
from ..upper_bounds.certified import gap


@contextmanager
def bound_progress(enabled: bool = True):
    """Yields progress(phase, done, total): one rich bar per phase on stderr."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:  # fmt: skip
        tasks: dict[str, int] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield update


def compute_bounds(rt, counts: np.ndarray, method: str = "auto", progress: bool = False) -> dict | None:
    """:func:`certified_bounds` by method, None for ``none``. The LP shows a
    spinner-free single phase (HiGHS reports nothing while it works)."""
    if method not in BOUND_METHODS:
        raise ValueError(f"--bound {method!r}: expected one of {', '.join(BOUND_METHODS)}")
    if method == "none":
        return None
    used = choose_method(rt, counts, method)
    with bound_progress(progress) as on_progress:
        if on_progress and used == "lp":
            on_progress("LP bounds (HiGHS)", 0, 1)
        return certified_bounds(rt, counts, used, progress=on_progress)


def regap(bound: dict, total_gain: float, dynamic: bool) -> dict:
    """The gaps again, now that a run's total gain is a feasible gain known
    too: a static policy's gain counts for both bounds, a dynamic one's for
    the per-slot bound only."""
    out = dict(bound)
    if not dynamic and total_gain > out.get("best_feasible", 0.0):
        out["best_feasible"] = total_gain
    if total_gain > out.get("per_slot_feasible", 0.0):
        out["per_slot_feasible"] = total_gain
    out["gap"] = gap(out["static_lp_bound"], out["best_feasible"])
    out["per_slot_gap"] = gap(out["per_slot_lp_bound"], out["per_slot_feasible"])
    return out
