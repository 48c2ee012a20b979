"""The summary tables of ``idn report``, and one small formatter that renders
them to HTML and to Markdown with the same number formats (pandas'
``to_markdown`` would need the ``tabulate`` package)."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

# how each column's values are printed, in every table and both formats
FORMATS = {
    "alpha": "{:g}",
    "budget_scale": "{:g}",
    "seeds": "{:d}",
    "rank": "{:d}",
    "configs": "{:d}",
    "wins": "{:d}",
    "slots": "{:d}",
    "normalized_gain": "{:.4f}",
    "fraction_of_bound": "{:.4f}",
    "fraction_of_per_slot_bound": "{:.4f}",
    "mean_latency_ms": "{:.2f}",
    "mean_accuracy": "{:.4f}",
    "model_loads": "{:.1f}",
    "ms_per_slot": "{:.3f}",
    "mean_rank": "{:.2f}",
    "regret_per_slot": "{:.4g}",
}
HEADERS = {
    "label": "policy",
    "budget_scale": "budget",
    "normalized_gain": "norm. gain",
    "fraction_of_bound": "of static LP bound",
    "fraction_of_per_slot_bound": "of per-slot LP bound",
    "mean_latency_ms": "latency ms",
    "mean_accuracy": "accuracy",
    "model_loads": "model loads",
    "ms_per_slot": "ms / slot",
    "mean_rank": "mean rank",
    "regret_per_slot": "ψ-regret / T",
}


def format_value(column: str, value) -> str:
    """The text of one cell: FORMATS[column] for numbers, '-' for missing."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return "-"
    fmt = FORMATS.get(column)
    if fmt is None:
        return str(value)
    if fmt == "{:d}":
        value = int(value)
    text = fmt.format(value)
    # -0.0 and -1e-17 are zero to the reader
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


@dataclass
class Table:
    title: str
    frame: pd.DataFrame  # raw values; columns are keys of FORMATS / HEADERS or plain names

    def _cells(self) -> tuple[list[str], list[list[str]], list[bool]]:
        cols = list(self.frame.columns)
        header = [HEADERS.get(c, c) for c in cols]
        rows = [[format_value(c, v) for c, v in zip(cols, rec)] for rec in self.frame.itertuples(index=False)]
        numeric = [c in FORMATS for c in cols]
        return header, rows, numeric

    def to_html(self) -> str:
        e = html.escape
        header, rows, numeric = self._cells()
        out = [f"<table><caption>{e(self.title)}</caption>", "<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead><tbody>"]
        for row in rows:
            out.append("<tr>" + "".join(f'<td class="num">{e(v)}</td>' if n else f"<td>{e(v)}</td>" for v, n in zip(row, numeric)) + "</tr>")
        out.append("</tbody></table>")
        return "\n".join(out)

    def to_markdown(self) -> str:
        header, rows, numeric = self._cells()

        def line(cells):
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        rule = "|" + "|".join("---:" if n else ":---" for n in numeric) + "|"
        return "\n".join([f"**{self.title}**", "", line(header), rule, *(line(r) for r in rows)])


CONFIG = ["scenario", "workload", "alpha", "budget_scale"]


def summary_table(runs: pd.DataFrame) -> Table:
    """Per (scenario, workload, alpha, budget, policy): means over seeds."""
    runs = runs.assign(ms_per_slot=1000.0 * runs["seconds_per_slot"])
    metrics = ["normalized_gain", "fraction_of_bound", "fraction_of_per_slot_bound", "mean_latency_ms", "mean_accuracy",
               "model_loads", "ms_per_slot"]  # fmt: skip
    metrics = [m for m in metrics if m in runs and runs[m].notna().any()]
    g = runs.groupby([*CONFIG, "label"], sort=True)
    frame = g[metrics].mean()
    frame.insert(0, "seeds", g["seed"].nunique())
    frame = frame.reset_index()
    # within a configuration, best normalized gain first
    frame = frame.sort_values([*CONFIG, "normalized_gain"], ascending=[True] * len(CONFIG) + [False])
    return Table("Summary: mean over seeds per configuration and policy", frame.reset_index(drop=True))


def ranking_table(runs: pd.DataFrame) -> Table:
    """Per (scenario, workload): policies ranked by normalized gain in every
    (alpha, budget, seed) they share, then by their mean rank."""
    runs = runs.copy()
    runs["rank"] = runs.groupby([*CONFIG, "seed"])["normalized_gain"].rank(ascending=False, method="min")
    g = runs.groupby(["scenario", "workload", "label"])
    frame = pd.DataFrame({
        "mean_rank": g["rank"].mean(),
        "wins": g["rank"].apply(lambda r: int((r == 1).sum())),
        "configs": g["rank"].size(),
        "normalized_gain": g["normalized_gain"].mean(),
    }).reset_index()  # fmt: skip
    frame = frame.sort_values(["scenario", "workload", "mean_rank", "normalized_gain"], ascending=[True, True, True, False])
    frame.insert(2, "rank", frame.groupby(["scenario", "workload"]).cumcount() + 1)
    return Table(
        "Ranking: by mean rank of normalized gain over every (alpha, budget, seed); wins = times ranked first, "
        "normalized gain = mean over those runs",
        frame.reset_index(drop=True),
    )


def regret_table(rows: pd.DataFrame) -> Table:
    """Final time-averaged psi-regret per configuration and learning policy."""
    g = rows.groupby([*CONFIG, "benchmark", "label"], sort=True)
    frame = pd.DataFrame({"seeds": g["seed"].nunique(), "slots": g["slots"].min(), "regret_per_slot": g["regret_per_slot"].mean()})
    return Table(
        "ψ-regret / T at the horizon (mean over seeds) against the static benchmark run; negative: the policy beat ψ times it",
        frame.reset_index(),
    )
