"""Plain-text summaries of scenarios."""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..model.network import IDN, TIERS
from ..model.request_types import build_request_types


def scenario_summary(idn: IDN) -> str:
    rt = build_request_types(idn)
    tiers = Counter(n.tier for n in idn.nodes)
    lengths = rt.list_length
    lines = [
        f"scenario {idn.name!r}: valid",
        "  nodes: " + ", ".join(f"{tiers[t]} {t}" for t in TIERS if tiers[t]) + f" ({idn.n_nodes} in all, "
        f"{int(idn.repository.sum())} repository), {idn.graph.number_of_edges()} links",
        f"  tasks: {len(idn.tasks)}, models: {idn.n_models} "
        f"(sizes {idn.size_mb.min():g}-{idn.size_mb.max():g} MB, accuracy {idn.accuracy.min():.3f}-{idn.accuracy.max():.3f})",
        f"  budgets: {', '.join(f'{t} {np.median(idn.budget_mb[idn.node_tier == i]):g} MB' for i, t in enumerate(TIERS) if tiers[t] and t != 'cloud')} (median)",
        f"  sources: {len(idn.sources)}, request types: {rt.n_types}, candidate entries: {rt.n_entries}",
    ]
    if rt.n_types:
        lines.append(
            f"  candidate-list length: min {lengths.min()}, mean {lengths.mean():.1f}, max {lengths.max()}"
        )
    lines.append(f"  alpha: {idn.alpha:g} ms per accuracy point, slot: {idn.slot_seconds:g} s")
    return "\n".join(lines)
