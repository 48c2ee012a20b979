"""The tables a report opens with: every policy's gain with a 95% interval
over seeds, and INFIDA against each heuristic, paired by seed.

Runs with the same (scenario, workload, alpha, budget, seed) saw the same
requests, so INFIDA and a heuristic are compared seed by seed: the interval
is on the mean of the per-seed differences (Student's t, n - 1 degrees of
freedom), which removes the trace-to-trace variation both share. A
difference whose interval excludes 0 is a win or a loss; otherwise a tie.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .report_tables import CONFIG, Table

# the heuristics INFIDA is measured against, in the order the table lists them
HEURISTICS = ("local-greedy", "lfu", "lru", "online-greedy", "static-greedy", "infida-offline")


def ci95(values) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval); half-width nan for one value."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    if v.size == 1:
        return float(v[0]), float("nan")
    return float(v.mean()), float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))


def _cell(mean: float, half: float, digits: int = 4) -> str:
    if not np.isfinite(mean):
        return "-"
    return f"{mean:.{digits}f}" if not np.isfinite(half) else f"{mean:.{digits}f} ± {half:.{digits}f}"


def metric_of(runs: pd.DataFrame) -> tuple[str, str]:
    """The column the headline compares: the fraction of the per-slot bound
    where every run has one, else the normalized gain."""
    col = "fraction_of_per_slot_bound"
    if col in runs and runs[col].notna().all():
        return col, "gain / per-slot bound"
    return "normalized_gain", "normalized gain"


def headline_tables(runs: pd.DataFrame) -> list[Table]:
    """[every policy per configuration, INFIDA vs each heuristic] (module docstring)."""
    metric, what = metric_of(runs)
    configs = runs.groupby(CONFIG, sort=True)
    rows = []
    for key, sub in configs:
        row = dict(zip(CONFIG, key))
        row["seeds"] = int(sub["seed"].nunique())
        for label, r in sub.groupby("label", sort=False):
            row[label] = _cell(*ci95(r[metric]))
        rows.append(row)
    labels = [c for c in pd.DataFrame(rows).columns if c not in (*CONFIG, "seeds")]
    order = sorted(labels, key=lambda lab: (not lab.startswith("infida") or lab.startswith("infida-offline"),
                                            lab.split(" (")[0] == "cloud-only", lab))  # fmt: skip
    every = pd.DataFrame(rows)[[*CONFIG, "seeds", *order]]

    pairs = []
    infidas = [lab for lab in order if lab.split(" (")[0] == "infida"]
    for key, sub in configs:
        wide = sub.pivot_table(index="seed", columns="label", values=metric, aggfunc="first")
        for inf in infidas:
            for h in HEURISTICS:
                hs = [lab for lab in wide.columns if lab.split(" (")[0] == h]
                for hl in hs:
                    if inf not in wide:
                        continue
                    d = (wide[inf] - wide[hl]).dropna()
                    mean, half = ci95(d)
                    verdict = "tie"
                    if np.isfinite(half) and mean - half > 0:
                        verdict = "INFIDA better"
                    elif np.isfinite(half) and mean + half < 0:
                        verdict = "INFIDA worse"
                    pairs.append({**dict(zip(CONFIG, key)), "infida": inf, "against": hl, "seeds": int(d.size),
                                  "difference": _cell(mean, half), "verdict": verdict})  # fmt: skip
    tables = [Table(f"Headline: {what} per policy, mean ± 95% interval over seeds", every)]
    if pairs:
        tables.append(Table(
            f"INFIDA against each heuristic: paired difference in {what} (INFIDA - heuristic), mean ± 95% interval over "
            "seeds; better / worse when the interval excludes 0", pd.DataFrame(pairs),
        ))  # fmt: skip
    return tables
