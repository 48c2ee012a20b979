"""The report's headline tables: 95% intervals over seeds and INFIDA's paired
comparison with each heuristic, checked against a hand computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from idn.experiments.report_headline import ci95, headline_tables


def _runs(infida, other, other_name="lfu"):
    rows = []
    for seed, (a, b) in enumerate(zip(infida, other)):
        for label, v in (("infida", a), (other_name, b), ("cloud-only", 0.0)):
            rows.append({"scenario": "s", "workload": "w", "alpha": 2.0, "budget_scale": 1.0, "seed": seed,
                         "label": label, "policy": label, "normalized_gain": v})  # fmt: skip
    return pd.DataFrame(rows)


def test_ci95_is_the_t_interval():
    v = np.array([0.91, 0.93, 0.92, 0.95, 0.90])
    mean, half = ci95(v)
    assert mean == pytest.approx(v.mean())
    assert half == pytest.approx(stats.t.ppf(0.975, 4) * v.std(ddof=1) / np.sqrt(5))
    assert np.isnan(ci95([0.5])[1])


@pytest.mark.parametrize(
    "infida, other, verdict",
    [
        ([0.95, 0.96, 0.94, 0.95, 0.97], [0.90, 0.91, 0.89, 0.90, 0.92], "INFIDA better"),
        ([0.90, 0.91, 0.89, 0.90, 0.92], [0.95, 0.96, 0.94, 0.95, 0.97], "INFIDA worse"),
        ([0.90, 0.95, 0.89, 0.96, 0.92], [0.93, 0.91, 0.94, 0.90, 0.93], "tie"),
    ],
)
def test_paired_difference_and_verdict(infida, other, verdict):
    every, pairs = headline_tables(_runs(infida, other))
    row = pairs.frame.iloc[0]
    d = np.array(infida) - np.array(other)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    assert row["against"] == "lfu" and row["seeds"] == 5
    assert row["difference"] == f"{d.mean():.4f} ± {half:.4f}"
    assert row["verdict"] == verdict
    # the first table: infida first, cloud-only last, each cell mean ± half-width
    cols = list(every.frame.columns)
    assert cols.index("infida") < cols.index("lfu") < cols.index("cloud-only")
    m, h = ci95(infida)
    assert every.frame["infida"].iloc[0] == f"{m:.4f} ± {h:.4f}"
