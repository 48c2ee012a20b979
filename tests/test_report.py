"""idn report: figures, tables and the psi-regret arithmetic, on runs that
really happened (small random IDNs, real policies, real LP bounds)."""

from __future__ import annotations

import sys
import types

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import random_idn

from idn.experiments import report as rep
from idn.experiments.report_tables import ranking_table
from idn.experiments.single import with_bounds
from idn.experiments.sweep import column_value
from idn.model.request_types import build_request_types
from idn.policies.registry import make_policy
from idn.upper_bounds.lp import per_slot_lp_bound, static_lp_bound
from idn.sim.loop import run_policy

SLOTS = 40
ALPHAS = (0.5, 4.0)
SCALES = (0.5, 2.0)
SEEDS = (0, 1)
WORKLOADS = ("stationary", "shift")
POLICIES = [
    ("cloud-only", {}),
    ("infida", {"eta_scale": 1.0}),
    ("infida", {"eta_scale": 0.5}),
    ("online-greedy", {"window": 5}),
    ("static-greedy", {}),
    ("infida-offline", {"iterations": 40}),
]
FIGURES = ["gain-over-time", "latency-accuracy", "gain-vs-budget", "model-loads", "psi-regret", "bound-fraction",
           "served-per-tier"]  # fmt: skip


def _counts(rt, workload: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(100 + seed)
    lam = rng.gamma(1.0, 20.0, size=rt.n_types)
    rates = np.tile(lam, (SLOTS, 1))
    if workload == "shift":  # popularity reshuffled halfway
        rates[SLOTS // 2 :] = rng.permutation(lam)
    return rng.poisson(rates).astype(float)


def build_tables(workloads=WORKLOADS, alphas=ALPHAS, scales=SCALES, policies=POLICIES, bounds=True):
    """The store's two tables, from real runs."""
    base = random_idn(np.random.default_rng(3), n_nodes=7, n_tasks=3, models_per_task=3, alpha=1.0)
    runs, slots = [], []
    for workload in workloads:
        for alpha in alphas:
            for scale in scales:
                rt = build_request_types(base.with_changes(alpha=alpha, budget_scale=scale))
                for seed in SEEDS:
                    counts = _counts(rt, workload, seed)
                    bound = None
                    if bounds:
                        bound = {"static_lp_bound": static_lp_bound(rt, counts)[0], "per_slot_lp_bound": per_slot_lp_bound(rt, counts)}
                    for i, (name, params) in enumerate(policies):
                        policy = make_policy(name, **params)
                        result = run_policy(rt, policy, counts, seed=seed)
                        run_id = f"{workload}-a{alpha:g}-b{scale:g}-s{seed}-{i}"
                        keys = {"run_id": run_id, "scenario": "random", "workload": workload, "seed": seed,
                                "alpha": alpha, "budget_scale": scale}  # fmt: skip
                        pcols = {f"param_{k}": column_value(v) for k, v in result.params.items()}  # as the sweep stores them
                        summary = with_bounds(result.summary(), bound, dynamic=not policy.offline)
                        summary.pop("note", None)
                        runs.append({**keys, **pcols, **summary})
                        slots.append(result.slots.assign(**keys, **pcols))
    return pd.DataFrame(runs), pd.concat(slots, ignore_index=True)


@pytest.fixture(scope="module")
def tables():
    return build_tables()


@pytest.fixture(scope="module")
def built(tables, tmp_path_factory):
    runs, slots = tables
    out = tmp_path_factory.mktemp("report")
    page = rep.make_report(runs, slots, out, title="test sweep")
    return out, page.read_text(), (out / "report.md").read_text()


# ---- psi-regret arithmetic -------------------------------------------------


def test_psi_regret_curve_by_hand():
    psi = 1 - 1 / np.e
    got = rep.psi_regret_curve([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    want = [(psi * 2 - 1) / 1, (psi * 4 - 3) / 2, (psi * 6 - 6) / 3]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(rep.psi_regret_curve([0.0, 0.0], [1.0, 3.0], psi=1.0), [1.0, 2.0])
    with pytest.raises(ValueError, match="equal length"):
        rep.psi_regret_curve([1.0, 2.0], [1.0])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e3), st.floats(0, 1e3)), min_size=1, max_size=30))
def test_psi_regret_increments(pairs):
    # T R(T)/T - (T-1) R(T-1)/(T-1) is slot T's own term psi s_T - p_T
    p, s = np.array(pairs).T
    total = rep.psi_regret_curve(p, s) * np.arange(1, len(p) + 1)
    np.testing.assert_allclose(np.diff(total, prepend=0.0), rep.PSI * s - p, atol=1e-9)


# ---- the report as written ---------------------------------------------------


def test_every_figure_written(built):
    out, page, md = built
    for workload in WORKLOADS:
        for name in FIGURES:
            stem = f"{name}_random_{workload}"
            png, svg = out / "figures" / f"{stem}.png", out / "figures" / f"{stem}.svg"
            assert png.stat().st_size > 10_000, stem
            assert svg.stat().st_size > 10_000 and svg.read_text().lstrip().startswith("<?xml"), stem
            img = mpimg.imread(png)
            assert img.ndim == 3 and img.shape[2] == 4 and img.shape[0] >= 450 and img.shape[1] >= 750, (stem, img.shape)
            assert img[..., :3].std() > 0.05, f"{stem} looks blank"
            if name == "gain-over-time":
                assert img.shape == (728, 1040, 4)  # 8.0 x 5.6 in at 130 dpi
            assert f'id="{stem}"><img src="data:image/png;base64,' in page
            assert f"(figures/{stem}.png)" in md and f"(figures/{stem}.svg)" in md
    assert page.count('<img src="data:image/png;base64,') == len(WORKLOADS) * len(FIGURES)
    assert "skipped" not in page


def test_tables_show_the_numbers(tables, built):
    runs, _ = tables
    _, page, md = built
    pick = runs[(runs["workload"] == "stationary") & (runs["alpha"] == 0.5) & (runs["budget_scale"] == 2.0)]
    for label, rows in [("infida (eta_scale=1)", pick[(pick["policy"] == "infida") & (pick["param_eta_scale"] == 1.0)]),
                        ("static-greedy", pick[pick["policy"] == "static-greedy"])]:  # fmt: skip
        assert len(rows) == len(SEEDS)
        cells = [label, rep.format_value("normalized_gain", rows["normalized_gain"].mean()),
                 rep.format_value("fraction_of_bound", rows["fraction_of_bound"].mean()),
                 rep.format_value("fraction_of_per_slot_bound", rows["fraction_of_per_slot_bound"].mean()),
                 rep.format_value("mean_latency_ms", rows["mean_latency_ms"].mean())]  # fmt: skip
        row_html = "".join(f'<td class="num">{c}</td>' for c in cells[1:])
        assert cells[1] in page and cells[1] in md
        # the summary row: config, policy, seeds, then the metrics in order
        assert f"<td>{label}</td><td class=\"num\">{len(SEEDS)}</td>{row_html}" in page
        assert f"| {label} | {len(SEEDS)} | " + " | ".join(cells[1:]) + " |" in md
    assert rep.format_value("normalized_gain", 0.123456) == "0.1235"
    assert rep.format_value("fraction_of_bound", float("nan")) == "-"


def test_ranking_matches_plain_count(tables):
    runs, _ = tables
    runs = runs.assign(label=rep.policy_labels(runs))
    frame = ranking_table(runs).frame
    wins, ranks = {}, {}
    for (wl, a, b, s), rows in runs.groupby(["workload", "alpha", "budget_scale", "seed"]):
        for _, r in rows.iterrows():
            rank = 1 + sum(other > r["normalized_gain"] for other in rows["normalized_gain"])
            ranks.setdefault((wl, r["label"]), []).append(rank)
            wins[(wl, r["label"])] = wins.get((wl, r["label"]), 0) + (rank == 1)
    for _, row in frame.iterrows():
        key = (row["workload"], row["label"])
        assert row["wins"] == wins[key]
        assert row["mean_rank"] == pytest.approx(np.mean(ranks[key]))
    first = frame[frame["workload"] == "shift"].iloc[0]
    assert first["rank"] == 1 and first["mean_rank"] == frame.loc[frame["workload"] == "shift", "mean_rank"].min()


def test_labels_tell_variants_apart(tables):
    labels = set(rep.policy_labels(tables[0]))
    assert labels == {"cloud-only", "infida (eta_scale=1)", "infida (eta_scale=0.5)", "online-greedy", "static-greedy",
                      "infida-offline"}  # fmt: skip


def test_regret_curves_against_hand_computation(tables):
    runs, slots = tables
    runs = runs.assign(label=rep.policy_labels(runs))
    sub = runs[runs["workload"] == "shift"]
    benchmark, curves, rows = rep.regret_curves(sub, slots)
    assert benchmark == "the best of infida-offline / static-greedy"  # no optimal run
    assert set(curves) == {"infida (eta_scale=1)", "infida (eta_scale=0.5)", "online-greedy"}
    assert all(c.shape == (len(ALPHAS) * len(SCALES) * len(SEEDS), SLOTS) for c in curves.values())
    one = rows[(rows["label"] == "online-greedy") & (rows["alpha"] == 4.0) & (rows["budget_scale"] == 0.5) & (rows["seed"] == 1)]
    key = (sub["alpha"] == 4.0) & (sub["budget_scale"] == 0.5) & (sub["seed"] == 1)
    pol = slots[slots["run_id"] == sub.loc[key & (sub["policy"] == "online-greedy"), "run_id"].item()]["gain"].to_numpy()
    statics = sub.loc[key & sub["policy"].isin(["infida-offline", "static-greedy"])]
    best = statics.loc[statics["total_gain"].idxmax(), "run_id"]
    sta = slots[slots["run_id"] == best]["gain"].to_numpy()
    assert one["regret_per_slot"].item() == pytest.approx(((1 - 1 / np.e) * sta.sum() - pol.sum()) / SLOTS, rel=1e-12)
    # an optimal run on the same traces takes precedence
    promoted = sub.assign(policy=sub["policy"].replace({"static-greedy": "optimal"}))
    assert rep.regret_curves(promoted, slots)[0] == "optimal"


# ---- skipping and errors -----------------------------------------------------


def test_missing_data_skips_with_a_note(tmp_path):
    policies = [("cloud-only", {}), ("infida", {})]
    runs, slots = build_tables(workloads=("stationary",), alphas=(1.0,), scales=(1.0,), policies=policies, bounds=False)
    page = rep.make_report(runs, slots, tmp_path).read_text()
    for name, why in [("latency accuracy", "single alpha"), ("gain vs budget", "single budget scale"),
                      ("psi regret", "no static benchmark"), ("bound fraction", "no LP bound")]:  # fmt: skip
        assert f"{name}: skipped, " in page and why in page, name
        assert not (tmp_path / "figures" / f"{name.replace(' ', '-')}_random_stationary.png").exists()
    for name in ("gain-over-time", "model-loads", "served-per-tier"):
        assert (tmp_path / "figures" / f"{name}_random_stationary.png").exists()
    # no per-slot rows: the slot-based figures go too
    page = rep.make_report(runs, slots.iloc[0:0], tmp_path / "noslots").read_text()
    assert "gain over time: skipped, no per-slot results" in page
    assert "served per tier: skipped, no per-slot results" in page


def test_bad_input(tables, tmp_path):
    runs, slots = tables
    with pytest.raises(ValueError, match="no finished runs"):
        rep.make_report(runs.iloc[0:0], slots, tmp_path)
    with pytest.raises(ValueError, match="runs table: missing column 'alpha'"):
        rep.make_report(runs.drop(columns="alpha"), slots, tmp_path)
    with pytest.raises(ValueError, match="slots table: missing column 'gain'"):
        rep.make_report(runs, slots.drop(columns="gain"), tmp_path)


def test_report_dir(tables, tmp_path, monkeypatch):
    runs, slots = tables
    # one configuration keeps it quick: five figures, the sweep ones skipped
    pick = (runs["workload"] == "stationary") & (runs["alpha"] == 4.0) & (runs["budget_scale"] == 2.0)
    runs, slots = runs[pick], slots[slots["run_id"].isin(runs.loc[pick, "run_id"])]
    store = types.ModuleType("idn.experiments.store")
    store.load_runs = lambda d: runs if (d / "has-runs").exists() else runs.iloc[0:0]
    store.load_slots = lambda d: slots
    monkeypatch.setitem(sys.modules, "idn.experiments.store", store)
    with pytest.raises(ValueError, match=f"no finished runs in {tmp_path}"):
        rep.report_dir(tmp_path)
    (tmp_path / "has-runs").touch()
    page = rep.report_dir(tmp_path)
    assert page == tmp_path / "report" / "report.html" and page.exists()
    assert (tmp_path / "report" / "figures" / "psi-regret_random_stationary.svg").exists()
    assert rep.report_dir(tmp_path, tmp_path / "elsewhere") == tmp_path / "elsewhere" / "report.html"
