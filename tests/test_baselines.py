"""Online greedy and static greedy (design page section 9) against plain,
deliberately slow greedy loops written from the definitions, plus the
guarantees and the feasibility every allocation must have."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest

from idn import serving
from idn.model.network import IDN, Model, Node
from idn.model.request_types import build_request_types
from idn.policies.heuristics.online_greedy import OnlineGreedy
from idn.policies.offline.static_greedy import StaticGreedy
from idn.problem.objective import build_rows, layout, slot_shares
from idn.policies.offline.optimum import Optimal
from idn.sim.loop import run_policy

import reference as ref


def _instance(seed, n_nodes=None, n_tasks=2, models_per_task=3, slots=4, rate=None, tight=False):
    """A random IDN and a Poisson trace; tight: budgets of 15-60% of all the
    models' sizes, so that they bind."""
    rng = np.random.default_rng(seed)
    n_nodes = int(rng.integers(3, 7)) if n_nodes is None else n_nodes
    idn = ref.random_idn(rng, n_nodes=n_nodes, n_tasks=n_tasks, models_per_task=models_per_task)
    if tight:
        idn = ref.tighten_budgets(idn, rng)
    rt = build_request_types(idn)
    lam = rng.uniform(0, 20, rt.n_types) if rate is None else np.full(rt.n_types, rate)
    trace = rng.poisson(lam, size=(slots, rt.n_types)).astype(float)
    return idn, rt, trace


def total_gain(rt, trace, x, shares=None):
    """F(x) the plain way: one serving.gain per slot."""
    return sum(
        serving.gain(rt, trace[t], x, None if shares is None else shares[t]) for t in range(trace.shape[0])
    )


def assert_feasible(idn, x):
    assert x.shape == (idn.n_nodes, idn.n_models)
    assert set(np.unique(x)) <= {0.0, 1.0}
    assert (x[idn.permanent] == 1).all()
    assert (x[~idn.permanent & ~idn.fits] == 0).all()
    used = (x * ~idn.permanent) @ idn.size_mb
    assert (used <= idn.budget_mb + 1e-9).all()


def plain_greedy(idn, objective, x, nodes, ratio=True):
    """Greedy from x over the fitting pairs of the given nodes, every
    candidate re-evaluated exactly at every step."""
    x = x.copy()
    used = (x * ~idn.permanent) @ idn.size_mb
    while True:
        base = objective(x)
        best, best_key = None, 0.0
        for v in nodes:
            for m in np.flatnonzero(idn.fits[v] & (x[v] == 0)):
                if used[v] + idn.size_mb[m] > idn.budget_mb[v] + 1e-9:
                    continue
                x[v, m] = 1.0
                gain = objective(x) - base
                x[v, m] = 0.0
                key = gain / idn.size_mb[m] if ratio else gain
                if gain > 1e-9 * max(1.0, abs(base)) and key > best_key:
                    best, best_key = (v, m), key
        if best is None:
            return x
        x[best] = 1.0
        used[best[0]] += idn.size_mb[best[1]]


# ---- the stacked objective ---------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_stacked_rows_give_the_per_slot_gains_and_marginals(seed):
    idn, rt, trace = _instance(seed)
    rng = np.random.default_rng(seed + 1000)
    shares = slot_shares(rt, trace)
    y = rng.random((idn.n_nodes, idn.n_models))
    y[idn.permanent] = 1.0
    rows = build_rows(rt, trace, shares, layout(rt, "type"))
    assert rows.gain(y.reshape(-1)) == pytest.approx(total_gain(rt, trace, y), rel=1e-12, abs=1e-9)
    by_node = build_rows(rt, trace, shares, layout(rt, "node-task"))
    x = (rng.random(y.shape) < 0.4).astype(float)
    x[idn.permanent] = 1.0
    for p in np.flatnonzero(idn.fits.reshape(-1)):
        lo, hi = x.reshape(-1).copy(), x.reshape(-1).copy()
        lo[p], hi[p] = 0.0, 1.0
        exact = total_gain(rt, trace, hi.reshape(x.shape)) - total_gain(rt, trace, lo.reshape(x.shape))
        for r in (rows, by_node):
            blocks = r.pair_blocks[p]
            got = sum(r.block_gain(hi, b) - r.block_gain(lo, b) for b in blocks)
            assert got == pytest.approx(exact, rel=1e-9, abs=1e-9)
        assert len(by_node.pair_blocks[p]) <= 1


# ---- static greedy -----------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_static_greedy_variants_match_the_plain_greedy(seed):
    idn, rt, trace = _instance(seed)
    policy = StaticGreedy().start(rt, trace=trace)
    x = policy.propose()
    assert_feasible(idn, x)
    objective = lambda z: total_gain(rt, trace, z)  # noqa: E731
    nodes = np.flatnonzero(~idn.repository)
    empty = idn.permanent.astype(float)
    for name, ratio in (("ratio", True), ("gain", False)):
        plain = plain_greedy(idn, objective, empty, nodes, ratio)
        assert policy.variants[name] == pytest.approx(objective(plain), rel=1e-9, abs=1e-6)
    assert objective(x) == pytest.approx(max(policy.variants.values()), rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("seed", range(20))
def test_static_greedy_guarantee(seed):
    """Proven here for one knapsack per node: at least OPT/4; with a single
    cache node, Khuller-Moss-Naor's (1 - 1/e)/2."""
    single = seed % 2 == 0
    idn, rt, trace = _instance(seed, n_nodes=2 if single else 4, models_per_task=3, slots=3, tight=True)
    opt = Optimal().start(rt, trace=trace)
    x = StaticGreedy().start(rt, trace=trace).propose()
    assert_feasible(idn, x)
    factor = (1 - 1 / math.e) / 2 if int((~idn.repository).sum()) == 1 else 0.25
    assert total_gain(rt, trace, x) >= factor * opt.value - 1e-9
    assert total_gain(rt, trace, x) <= opt.value * (1 + 1e-9) + 1e-9


def _one_cache(models, budget_mb):
    """Access node "a" (cpu, speed 1, 1 worker) 400 ms from the cloud; each
    model (task, size MB, cpu ms) is the only one of its task, 5 ms on the
    cloud's gpu; one request type per task, 100 requests a slot."""
    nodes = [
        Node("a", "access", "cpu", 1.0, 1, budget_mb),
        Node("cloud", "cloud", "gpu", 1.0, 1, 0.0, repository=True),
    ]
    graph = nx.Graph()
    graph.add_edge("a", "cloud", latency_ms=400.0)
    tasks = sorted({task for task, _, _ in models})
    ms = [Model(f"{task}/m", task, 0.9, size, {"cpu": cpu_ms, "gpu": 5.0}) for task, size, cpu_ms in models]
    idn = IDN("line", nodes, graph, tasks, ms, alpha=0.01, sources=["a"])
    rt = build_request_types(idn)
    return idn, rt, np.full((3, rt.n_types), 100.0)


def test_static_greedy_keeps_the_big_model_that_ratio_greedy_misses():
    # the small model gains more per MB (2 requests a slot) and then blocks the big one (100)
    idn, rt, trace = _one_cache([("t0", 1.0, 500.0), ("t1", 1000.0, 10.0)], budget_mb=1000.0)
    policy = StaticGreedy().start(rt, trace=trace)
    best = Optimal().start(rt, trace=trace).value
    assert policy.variants["ratio"] < 0.05 * best
    assert total_gain(rt, trace, policy.propose()) == pytest.approx(best)
    np.testing.assert_array_equal(policy.propose()[0], [0.0, 1.0])


def test_static_greedy_keeps_the_small_models_that_gain_greedy_misses():
    # the big model gains a little more than each small one, the four small ones far more together
    models = [(f"t{i}", 25.0, 10.0) for i in range(4)] + [("t4", 100.0, 5.0)]
    idn, rt, trace = _one_cache(models, budget_mb=100.0)
    policy = StaticGreedy().start(rt, trace=trace)
    best = Optimal().start(rt, trace=trace).value
    assert policy.variants["gain"] < 0.3 * best
    assert total_gain(rt, trace, policy.propose()) == pytest.approx(best)
    np.testing.assert_array_equal(policy.propose()[0], [1.0, 1.0, 1.0, 1.0, 0.0])


def test_static_greedy_needs_the_trace():
    idn, rt, trace = _instance(0)
    with pytest.raises(ValueError, match="offline"):
        StaticGreedy().start(rt)
    with pytest.raises(ValueError, match="static-greedy: the trace has shape"):
        StaticGreedy().start(rt, trace=trace[:, :-1])


# ---- online greedy -----------------------------------------------------------


def plain_online_greedy(idn, rt, trace, window):
    """The rule, slot by slot: each cache node in order empties itself and
    refills by gain per MB on the last `window` slots, others as they are."""
    x = idn.permanent.astype(float)
    out = []
    for t in range(trace.shape[0]):
        past = trace[max(0, t - window) : t]
        if len(past):
            objective = lambda z: total_gain(rt, past, z)  # noqa: E731
            for v in np.flatnonzero(~idn.repository):
                x[v] = 0.0
                x = plain_greedy(idn, objective, x, [v])
        out.append(x.copy())
    return out


@pytest.mark.parametrize("seed", range(8))
def test_online_greedy_follows_its_rule(seed):
    idn, rt, trace = _instance(seed, slots=6)
    window = 1 + seed % 3
    policy = OnlineGreedy(window=window).start(rt)
    expected = plain_online_greedy(idn, rt, trace, window)
    for t in range(trace.shape[0]):
        x = policy.propose()
        assert_feasible(idn, x)
        if t == 0:
            np.testing.assert_array_equal(x, idn.permanent.astype(float))
        np.testing.assert_array_equal(x, expected[t])  # random real costs: no ties
        policy.learn(trace[t], serving.capacity_share(rt, trace[t]))


@pytest.mark.parametrize("seed", range(5))
def test_online_greedy_gains_on_a_stationary_trace(seed):
    rng = np.random.default_rng(seed)
    while True:  # an instance where some static allocation gains at all
        idn, rt, _ = _instance(int(rng.integers(1 << 30)), n_nodes=6)
        trace = rng.poisson(np.full((40, rt.n_types), 10.0)).astype(float)
        if total_gain(rt, trace, StaticGreedy().start(rt, trace=trace).propose()) > 0:
            break
    result = run_policy(rt, OnlineGreedy(window=5), trace)
    assert result.slots["gain"].iloc[0] == pytest.approx(0.0, abs=1e-9)  # first slot: permanent pairs only
    assert (result.slots["gain"].iloc[1:] > 0).mean() > 0.9
    for x in (result.final_allocation,):
        assert_feasible(idn, x)


@pytest.mark.parametrize("window", [0, -1, 2.5, True, "3"])
def test_online_greedy_window_must_be_a_positive_integer(window):
    _, rt, _ = _instance(0)
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        OnlineGreedy(window=window).start(rt)
