"""The real-demand study's pieces: the demand figure (from the shipped
excerpt), how much adapting can be worth (per-slot over static bound), and
the paired tables docs/results.md quotes, against hand computations."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from idn.experiments.real_demand import adapting_worth, hourly_demand, markdown_tables, plot_demand, ratio_by_window

EXCERPT = Path(str(resources.files("idn") / "data" / "servegen"))


def test_the_demand_figure_and_its_numbers(tmp_path):
    frame, order = hourly_demand(EXCERPT)
    assert frame.shape == (24, 6)
    assert order[0] == "m-small/chunk-5" and frame[order].sum().is_monotonic_decreasing
    first = pd.read_csv(EXCERPT / "language" / "m-small" / "chunk-5-trace.csv", header=None).iloc[:6]
    assert frame["m-small/chunk-5"].iloc[0] == pytest.approx((first[1] * 600).sum())
    png = plot_demand(EXCERPT, tmp_path / "demand", top=3, study_days=0.5)
    assert png.stat().st_size > 20000 and png.with_suffix(".svg").exists()


def _runs(gains: dict[str, list[float]], static: list[float], per_slot: list[float]) -> pd.DataFrame:
    rows = []
    for policy, values in gains.items():
        name, _, rounding = policy.partition(":")
        for seed, g in enumerate(values):
            rows.append({"run_id": f"{policy}-{seed}", "scenario": "geant40", "workload": "real", "seed": seed,
                         "policy": name, "param_rounding": rounding or None, "total_gain": g, "slots": 10,
                         "lp_bound": static[seed], "per_slot_lp_bound": per_slot[seed], "bound_key": f"b{seed}"})  # fmt: skip
    return pd.DataFrame(rows)


def test_adapting_worth_and_the_paired_table():
    static, per_slot = [100.0, 110.0, 90.0], [106.0, 115.5, 96.3]
    runs = _runs({"infida:fresh": [95, 104, 86], "infida:coupled": [94, 104, 85], "local-greedy": [93, 101, 85]}, static, per_slot)
    # as two stores concatenated: their indexes repeat
    runs = pd.concat([runs.iloc[:5].reset_index(drop=True), runs.iloc[5:].reset_index(drop=True)])
    worth = adapting_worth(runs)
    ratio = np.array(per_slot) / np.array(static)
    half = stats.t.ppf(0.975, 2) * ratio.std(ddof=1) / np.sqrt(3)
    assert worth["per-slot / static bound"].iloc[0] == f"{ratio.mean():.4f} ± {half:.4f}"
    text = markdown_tables(runs)
    d = np.array([95, 104, 86]) / np.array(per_slot) - np.array([93, 101, 85]) / np.array(per_slot)
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    row = next(line for line in text.splitlines() if "| fresh |" in line)
    assert f"{d.mean():+.3f} ± {half:.3f}" in row
    assert ("**better**" in row) == (d.mean() - half > 0)


def test_ratio_by_window_sums_the_slot_gains():
    runs = _runs({"infida:fresh": [1, 1], "infida:coupled": [1, 1], "lfu": [1, 1]}, [1, 1], [1, 1])
    slots = pd.DataFrame([{"run_id": r, "slot": t, "gain": (2.0 if r.startswith("infida:fresh") else 1.0) * (t + 1)}
                          for r in runs["run_id"] for t in range(4)])  # fmt: skip
    out = ratio_by_window(runs, slots, "infida (rounding=fresh)", "lfu", [(0, 2), (2, 4)])
    assert out["ratio"].tolist() == [2.0, 2.0] and out["slots"].tolist() == ["0-2", "2-4"]
