"""The exact static optimum against brute force, and the LP bounds against
every policy (design page section 9)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from idn import serving
from idn.model.request_types import build_request_types
from idn.policies.simple import CloudOnly
from idn.policies.heuristics.online_greedy import OnlineGreedy
from idn.policies.offline.static_greedy import StaticGreedy
from idn.upper_bounds import bounds
from idn.problem.objective import build_rows, layout, slot_shares
from idn.policies.offline.optimum import Optimal
from idn.problem.program import build_program, merge_rows, solve
from idn.upper_bounds.lp import per_slot_lp_bound, static_lp, static_lp_bound
from idn.sim.loop import run_policy

import reference as ref


def _instance(seed, n_nodes=4, n_tasks=2, models_per_task=2, slots=3):
    """A random IDN whose budgets bind (15-60% of all the models' sizes) and a
    Poisson trace with some empty types."""
    rng = np.random.default_rng(seed)
    idn = ref.random_idn(rng, n_nodes=n_nodes, n_tasks=n_tasks, models_per_task=models_per_task)
    idn = ref.tighten_budgets(idn, rng)
    rt = build_request_types(idn)
    trace = rng.poisson(rng.uniform(0, 30, rt.n_types), size=(slots, rt.n_types)).astype(float)
    trace[rng.random(trace.shape) < 0.15] = 0.0
    return idn, rt, trace


def total_gain(rt, trace, x):
    return sum(serving.gain(rt, trace[t], x) for t in range(trace.shape[0]))


def feasible_allocations(idn):
    """Every 0/1 allocation within the budgets: all subsets per node."""
    choices = []
    for v in range(idn.n_nodes):
        fitting = np.flatnonzero(idn.fits[v])
        subsets = [()]
        if not idn.repository[v]:
            subsets = [
                c
                for k in range(len(fitting) + 1)
                for c in itertools.combinations(fitting, k)
                if idn.size_mb[list(c)].sum() <= idn.budget_mb[v] + 1e-9
            ]
        choices.append(subsets)
    for combo in itertools.product(*choices):
        x = idn.permanent.astype(float)
        for v, c in enumerate(combo):
            x[v, list(c)] = 1.0
        yield x


def brute_force(rt, trace):
    return max(total_gain(rt, trace, x) for x in feasible_allocations(rt.idn))


@pytest.mark.parametrize("seed", range(15))
def test_optimal_is_the_brute_force_optimum(seed):
    rng = np.random.default_rng(seed)
    # 2-3 cache nodes, 2-4 models
    n_cache = int(rng.integers(2, 4))
    idn, rt, trace = _instance(seed, n_nodes=n_cache + 1, n_tasks=int(rng.integers(1, 3)), models_per_task=2)
    policy = Optimal().start(rt, trace=trace)
    best = brute_force(rt, trace)
    x = policy.propose()
    assert set(np.unique(x)) <= {0.0, 1.0} and (x[idn.permanent] == 1).all()
    assert ((x * ~idn.permanent) @ idn.size_mb <= idn.budget_mb + 1e-9).all()
    assert total_gain(rt, trace, x) == pytest.approx(best, rel=1e-7, abs=1e-6)
    assert policy.value == pytest.approx(best, rel=1e-7, abs=1e-6)


@pytest.mark.parametrize("seed", range(20))
def test_bounds_dominate_every_policy(seed):
    rng = np.random.default_rng(seed)
    idn, rt, trace = _instance(seed, n_nodes=int(rng.integers(3, 6)), models_per_task=int(rng.integers(2, 4)), slots=5)
    lp, y = static_lp_bound(rt, trace)
    per_slot = per_slot_lp_bound(rt, trace)
    statics = {
        "cloud-only": CloudOnly().start(rt).propose(),
        "static-greedy": StaticGreedy().start(rt, trace=trace).propose(),
        "optimal": Optimal().start(rt, trace=trace).propose(),
    }
    slack = 1e-7 * max(1.0, lp)
    for x in statics.values():
        assert total_gain(rt, trace, x) <= lp + slack
    assert total_gain(rt, trace, statics["optimal"]) >= total_gain(rt, trace, statics["static-greedy"]) - slack
    # the LP's maximizer is a point of the relaxation and attains the bound
    assert (y >= -1e-9).all() and (y <= 1 + 1e-9).all() and (y[idn.permanent] == 1).all()
    assert ((y * ~idn.permanent) @ idn.size_mb <= idn.budget_mb + 1e-6).all()
    assert total_gain(rt, trace, y) == pytest.approx(lp, rel=1e-6, abs=1e-6)
    # the per-slot bound: over the static one and over any policy, dynamic included
    assert per_slot >= lp - slack
    online = run_policy(rt, OnlineGreedy(window=2), trace).summary()["total_gain"]
    assert online <= per_slot + slack
    per_slot_opt = sum(brute_force(rt, trace[t : t + 1]) for t in range(trace.shape[0])) if idn.n_nodes <= 4 else 0
    assert per_slot_opt <= per_slot + slack


@pytest.mark.parametrize("seed", range(10))
def test_merged_rows_are_exact_then_an_upper_bound(seed):
    idn, rt, trace = _instance(seed, n_nodes=5, models_per_task=3, slots=30)
    trace = np.minimum(trace, 3.0)  # few distinct counts: many rows merge exactly
    rows = build_rows(rt, trace, slot_shares(rt, trace), layout(rt, "type"))
    exact = solve(build_program(rt, rows), False, "test")[0]
    merged = merge_rows(rows, rt.list_length, 1)
    assert merged.n_rows <= rows.n_rows
    rng = np.random.default_rng(seed)
    y = rng.random((idn.n_nodes, idn.n_models)).reshape(-1)
    assert merged.gain(y) == pytest.approx(rows.gain(y), rel=1e-10, abs=1e-9)
    assert solve(build_program(rt, merged), False, "test")[0] == pytest.approx(exact, rel=1e-7, abs=1e-6)
    for group in (2, 5, 1000):
        coarse = merge_rows(rows, rt.list_length, group)
        assert coarse.gain(y) >= rows.gain(y) - 1e-9  # sum of mins <= min of sums
        assert solve(build_program(rt, coarse), False, "test")[0] >= exact - 1e-7 * max(1.0, exact)
    # static_lp picks the merge from max_variables, and says how coarse it was
    value, _, g = static_lp(rt, trace, max_variables=10**9)
    assert g == 1 and value == pytest.approx(exact, rel=1e-7, abs=1e-6)
    value, _, g = static_lp(rt, trace, max_variables=20)
    assert value >= exact - 1e-7 * max(1.0, exact)


def test_bounds_dict():
    idn, rt, trace = _instance(3, n_nodes=5, slots=4)
    out = bounds(rt, trace)
    assert set(out) == {"static_lp_bound", "per_slot_lp_bound", "static_lp_merge"}
    assert out["static_lp_merge"] == 1
    assert out["static_lp_bound"] == pytest.approx(static_lp_bound(rt, trace)[0])
    assert out["per_slot_lp_bound"] == pytest.approx(per_slot_lp_bound(rt, trace))
    tight = bounds(rt, trace, max_variables=5)  # a looser static bound, capped by the per-slot one
    assert out["static_lp_bound"] - 1e-6 <= tight["static_lp_bound"] <= tight["per_slot_lp_bound"]


def test_empty_trace_and_no_requests():
    idn, rt, trace = _instance(1)
    for tr in (np.zeros((0, rt.n_types)), np.zeros((3, rt.n_types))):
        assert bounds(rt, tr)["static_lp_bound"] == 0.0
        assert per_slot_lp_bound(rt, tr) == 0.0
        x = Optimal().start(rt, trace=tr).propose()
        np.testing.assert_array_equal(x, idn.permanent.astype(float))


def test_too_large_instance_is_a_clear_error():
    idn, rt, trace = _instance(2, n_nodes=5, slots=50)
    with pytest.raises(ValueError, match=r"policy 'optimal': the MILP would need \d+ continuous variables .*max_variables=10"):
        Optimal(max_variables=10).start(rt, trace=trace)


def test_time_limit_is_a_clear_error():
    idn, rt, trace = _instance(2, n_nodes=5, slots=20)
    with pytest.raises(ValueError, match=r"policy 'optimal' \(time_limit=0 s\): HiGHS stopped without an optimal solution"):
        Optimal(time_limit=0.0).start(rt, trace=trace)


def test_bad_trace_is_a_clear_error():
    idn, rt, trace = _instance(2)
    with pytest.raises(ValueError, match="static LP bound: the trace has shape"):
        static_lp_bound(rt, trace[:, 1:])
    bad = trace.copy()
    bad[0, 0] = -1.0
    with pytest.raises(ValueError, match="per-slot LP bound: the trace has a negative"):
        per_slot_lp_bound(rt, bad)
