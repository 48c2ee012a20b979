"""What a trace holds, for ``idn trace show``."""

from __future__ import annotations

import pandas as pd


def summarize(trace: pd.DataFrame, slots: int | None = None) -> dict:
    """Slots, totals and the split per task and per source (largest first).
    ``slots`` counts empty trailing slots too; default: last slot + 1."""
    T = int(slots) if slots is not None else (int(trace["slot"].max()) + 1 if len(trace) else 0)
    from .. import limits

    # one row at slot 10^11 asks for 10^11 empty slots: refuse before making them
    limits.check(trace.attrs.get("origin", "trace"), f"a summary of {T:,} slots", T * 2.0 * limits.PER_COUNT)
    per_slot = trace.groupby("slot")["count"].sum().reindex(range(T), fill_value=0)
    total = int(trace["count"].sum())

    def split(col: str) -> dict[str, int]:
        s = trace.groupby(col)["count"].sum()
        s = s.iloc[sorted(range(len(s)), key=lambda i: (-int(s.iloc[i]), str(s.index[i])))]
        return {str(k): int(v) for k, v in s.items()}

    return {
        "slots": T,
        "total_requests": total,
        "mean_per_slot": total / T if T else 0.0,
        "max_per_slot": int(per_slot.max()) if T else 0,
        "peak_slot": int(per_slot.idxmax()) if T else None,
        "empty_slots": int((per_slot == 0).sum()),
        "per_task": split("task"),
        "per_source": split("source"),
    }


def format_summary(summary: dict, top: int | None = 20) -> str:
    """Plain-text table of ``summarize``'s result; ``top`` rows per split
    (None: all)."""
    total = summary["total_requests"]
    lines = [
        f"slots            {summary['slots']}",
        f"total requests   {total}",
        f"mean per slot    {summary['mean_per_slot']:.2f}",
        f"max per slot     {summary['max_per_slot']}"
        + (f" (slot {summary['peak_slot']})" if summary["peak_slot"] is not None else ""),
        f"empty slots      {summary['empty_slots']}",
    ]
    for title, key in (("task", "per_task"), ("source", "per_source")):
        split = summary[key]
        lines.append(f"per {title} ({len(split)}):")
        items = list(split.items())
        shown = items if top is None else items[:top]
        width = max((len(k) for k, _ in shown), default=0)
        for k, v in shown:
            share = 100.0 * v / total if total else 0.0
            lines.append(f"  {k:<{width}}  {v:>10}  {share:5.1f}%")
        if len(shown) < len(items):
            lines.append(f"  ... {len(items) - len(shown)} more")
    return "\n".join(lines)
