"""The fast (Lagrangian) bounds against HiGHS, and the certificate itself:
any multipliers give an upper bound (docs/model.md, "The fast bound")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idn import serving
from idn.model.request_types import build_request_types
from idn.upper_bounds import certified_bounds, choose_method
from idn.upper_bounds.fast import fast_bounds
from idn.problem.static_rows import static_rows
from idn.upper_bounds.lagrange import Lagrangian
from idn.problem.static_rows import RowSet
from idn.upper_bounds.lp import per_slot_lp_bound, static_lp

import reference as ref

ROOT = Path(__file__).resolve().parents[1]


def _instance(seed: int):
    """A random IDN with binding budgets (sizes of its own draw) and a Poisson
    trace with empty rows; shapes vary with the seed."""
    rng = np.random.default_rng(1000 + seed)
    idn = ref.random_idn(
        rng, n_nodes=int(rng.integers(4, 9)), n_tasks=int(rng.integers(1, 4)), models_per_task=int(rng.integers(2, 5))
    )
    idn = ref.tighten_budgets(idn, rng, 0.1, 0.5)
    rt = build_request_types(idn)
    slots = int(rng.integers(2, 7))
    trace = rng.poisson(rng.uniform(0, 40, rt.n_types), size=(slots, rt.n_types)).astype(float)
    trace[rng.random(trace.shape) < 0.15] = 0.0
    return idn, rt, trace


@pytest.mark.parametrize("seed", range(24))
def test_fast_bounds_match_highs(seed):
    """Each fast bound is at least HiGHS's LP value (1e-9 relative) and at most 1.01 times it."""
    _, rt, trace = _instance(seed)
    lp_static, _, group = static_lp(rt, trace)
    lp_per_slot = per_slot_lp_bound(rt, trace)
    assert group == 1  # HiGHS solved the exact static LP
    fb = fast_bounds(rt, trace)
    for fast, lp in ((fb.static, lp_static), (fb.per_slot, lp_per_slot)):
        assert fast >= lp * (1 - 1e-9) - 1e-9
        assert fast <= lp * 1.01 + 1e-9
    # the feasible gains are gains of feasible allocations: below the bounds
    assert fb.static_feasible <= lp_static * (1 + 1e-9) + 1e-9
    assert fb.per_slot_feasible <= lp_per_slot * (1 + 1e-9) + 1e-9


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), scale=st.floats(0.0, 3.0), data=st.data())
def test_any_multipliers_bound_the_lp(seed, scale, data):
    """D(lambda) >= the LP value for arbitrary lambda >= 0: validity does not
    depend on the search (weak duality)."""
    rng = np.random.default_rng(seed)
    _, rt, trace = _instance(seed % 24)
    t = data.draw(st.integers(0, trace.shape[0] - 1))
    lp = per_slot_lp_bound(rt, trace[t : t + 1])
    lag = Lagrangian(rt.idn)
    share = serving.capacity_share(rt, trace[t])
    rows = RowSet(rt.offsets, lag.entry_index(rt), rt.cost, share, trace[t])
    w1 = rt.fallback_cost - rt.best_cost
    lam = scale * w1 * rng.random(rt.n_types)
    assert lag.dual(rows, lam) >= lp * (1 - 1e-9) - 1e-9


def test_merged_static_rows_still_bound():
    """Merging the rows by count (long traces) keeps a valid, tight bound."""
    _, rt, trace = _instance(3)
    trace = np.concatenate([trace] * 4)
    lp, _, _ = static_lp(rt, trace)
    lag = Lagrangian(rt.idn)
    rows, merged = static_rows(rt, trace, lag.entry_index(rt), max_entries=0, progress=None)
    assert merged and rows.n_rows <= int((trace > 0).sum())
    sol = lag.solve(rows, tol=1e-4, max_iter=2000)
    assert lp * (1 - 1e-9) <= sol.upper <= lp * 1.01


def test_auto_and_gap():
    _, rt, trace = _instance(5)
    assert choose_method(rt, trace, "auto") == "lp"
    with pytest.raises(ValueError, match="bound method 'simplex'"):
        choose_method(rt, trace, "simplex")
    out = certified_bounds(rt, trace, "fast")
    assert out["method"] == "fast" and out["seconds"] > 0
    assert out["best_feasible"] <= out["static_lp_bound"] <= out["per_slot_lp_bound"] * (1 + 1e-12)
    assert out["gap"] == pytest.approx(out["static_lp_bound"] / out["best_feasible"] - 1)


def _idn(*args):
    return subprocess.run([sys.executable, "-m", "idn.cli", *map(str, args)], capture_output=True, text=True)


def test_cli_bound_methods(tmp_path):
    tiny = ROOT / "examples" / "tiny.yaml"
    out = _idn("bound", tiny, "--slots", 12, "--bound", "fast", "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    fast = json.loads(out.stdout)
    assert fast["method"] == "fast" and {"static_lp_bound", "per_slot_lp_bound", "seconds", "gap"} <= set(fast)
    lp = json.loads(_idn("bound", tiny, "--slots", 12, "--json", "--quiet").stdout)  # auto: small, so the LP
    assert lp["method"] == "lp"
    assert lp["static_lp_bound"] * (1 - 1e-9) <= fast["static_lp_bound"] <= lp["static_lp_bound"] * 1.01
    bad = _idn("bound", tiny, "--bound", "none")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--bound none" in bad.stderr
    run = _idn("run", tiny, "--policy", "infida", "--slots", 12, "--bound", "fast", "--out", tmp_path / "r", "--quiet")
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["bound_method"] == "fast" and summary["gap"] >= 0
    assert summary["total_gain"] <= summary["per_slot_lp_bound"] * (1 + 1e-9)
