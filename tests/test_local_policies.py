"""The heuristics of INFIDA's complexity (local-greedy, lfu, lru) against
plain loops written from their definitions in docs/model.md, plus the
feasibility every allocation must have."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idn import serving
from idn.model.request_types import build_request_types
from idn.policies.registry import make_policy
from idn.sim.loop import run_policy

import reference as ref
from test_baselines import assert_feasible, plain_greedy


def _instance(seed, slots=6):
    rng = np.random.default_rng(seed)
    idn = ref.random_idn(rng, n_nodes=int(rng.integers(3, 7)), n_tasks=2, models_per_task=3)
    idn = ref.tighten_budgets(idn, rng)
    rt = build_request_types(idn)
    trace = rng.poisson(rng.uniform(0, 20, rt.n_types), size=(slots, rt.n_types)).astype(float)
    return idn, rt, trace


# ---- local-greedy ------------------------------------------------------------
def plain_local_greedy(idn, rt, counts_window, shares_window, x_prev):
    """Every cache node, alone, empties itself and refills greedily (gain per
    MB, exact marginal gains) on the window's mean counts and shares, the
    other nodes as in x_prev."""
    counts = np.mean(counts_window, axis=0)
    share = np.mean(shares_window, axis=0)

    def objective(x):
        return serving.gain(rt, counts, x, share)

    x_new = x_prev.copy()
    for v in range(idn.n_nodes):
        if idn.repository[v]:
            continue
        start = x_prev.copy()
        start[v] = idn.permanent[v].astype(float)
        x_new[v] = plain_greedy(idn, objective, start, [v])[v]
    return x_new


@pytest.mark.parametrize("seed", range(12))
def test_local_greedy_equals_plain_jacobi_greedy(seed):
    idn, rt, trace = _instance(seed)
    policy = make_policy("local-greedy", window=3, update_prob=1.0).start(rt, seed=0)
    counts_seen, shares_seen = [], []
    x = policy.propose()
    for t in range(trace.shape[0]):
        share = serving.capacity_share(rt, trace[t])
        policy.learn(trace[t], share)
        counts_seen.append(trace[t])
        shares_seen.append(share)
        expected = plain_local_greedy(idn, rt, counts_seen[-3:], shares_seen[-3:], x)
        x = policy.propose()
        assert_feasible(idn, x)
        # ties between equally good pairs may go either way: compare the value
        value, plain_value = (serving.gain(rt, np.mean(counts_seen[-3:], 0), z, np.mean(shares_seen[-3:], 0))
                              for z in (x, expected))  # fmt: skip
        assert value == pytest.approx(plain_value, rel=1e-9, abs=1e-9)
        np.testing.assert_array_equal(x, expected)


def test_local_greedy_update_prob_is_seeded_and_partial():
    idn, rt, trace = _instance(7, slots=20)
    a = run_policy(rt, make_policy("local-greedy", update_prob=0.3), trace, seed=5)
    b = run_policy(rt, make_policy("local-greedy", update_prob=0.3), trace, seed=5)
    c = run_policy(rt, make_policy("local-greedy", update_prob=1.0), trace, seed=5)
    np.testing.assert_array_equal(a.slots["gain"], b.slots["gain"])
    # nodes that wait a slot or more to refill serve less early on
    assert a.slots["gain"].sum() < c.slots["gain"].sum()


# ---- lfu / lru ---------------------------------------------------------------
def plain_caching(idn, rt, trace, lfu, window=10.0):
    """LFU/LRU written out request type by request type, node by node."""
    V, M = idn.n_nodes, idn.n_models
    x = idn.permanent.astype(float)
    settable = idn.fits & ~idn.permanent & ~idn.repository[:, None]
    score = np.zeros((V, M))
    out = []
    for t in range(trace.shape[0]):
        out.append(x.copy())
        share = serving.capacity_share(rt, trace[t])
        served = serving.serve(rt, trace[t], x, share).served
        hits, misses = np.zeros((V, M)), np.zeros((V, M))
        for rho in range(rt.n_types):
            if trace[t, rho] <= 0:
                continue
            ent = list(range(rt.offsets[rho], rt.offsets[rho + 1]))
            for e in ent[:-1]:
                v, m = rt.node[e], rt.model[e]
                if served[e] > 0 and settable[v, m]:
                    hits[v, m] += served[e]
            path = rt.path(rho)
            for j in range(len(path) - 1):
                at_j = [e for e in ent[:-1] if rt.hop[e] == j]
                if not at_j:
                    continue
                best = at_j[0]
                v, m = rt.node[best], rt.model[best]
                if x[v, m] > 0.5 or not settable[v, m]:
                    continue
                misses[v, m] += sum(served[e] for e in ent if rt.hop[e] >= j and rt.cost[e] > rt.cost[best])
        if lfu:
            score = score * 0.5 ** (1.0 / window) + hits + misses
        else:
            score[(hits + misses) > 0] = t + 1
        for v in range(V):
            considered = set()
            while True:
                cands = [m for m in range(M) if misses[v, m] > 0 and x[v, m] < 0.5 and m not in considered]
                if not cands:
                    break
                c = max(cands, key=lambda m: (misses[v, m], -m))
                considered.add(c)
                used = sum(idn.size_mb[m] for m in range(M) if x[v, m] > 0.5 and settable[v, m])
                need = used + idn.size_mb[c] - idn.budget_mb[v]
                victims = []
                hosted = sorted(
                    (m for m in range(M) if x[v, m] > 0.5 and settable[v, m] and m not in considered),
                    key=lambda m: (score[v, m], m),
                )
                for w in hosted:
                    if need <= 1e-9 * max(1.0, idn.budget_mb[v]):
                        break
                    victims.append(w)
                    need -= idn.size_mb[w]
                if need > 1e-9 * max(1.0, idn.budget_mb[v]):
                    continue
                if lfu and victims and score[v, c] <= max(score[v, w] for w in victims):
                    continue
                for w in victims:
                    x[v, w] = 0.0
                x[v, c] = 1.0
    return out


@pytest.mark.parametrize("name", ["lfu", "lru"])
@pytest.mark.parametrize("seed", range(8))
def test_caching_equals_plain_loops(name, seed):
    idn, rt, trace = _instance(seed, slots=10)
    policy = make_policy(name).start(rt, seed=0)
    expected = plain_caching(idn, rt, trace, lfu=(name == "lfu"))
    for t in range(trace.shape[0]):
        x = policy.propose()
        assert_feasible(idn, x)
        np.testing.assert_array_equal(x, expected[t], err_msg=f"slot {t}")
        policy.learn(trace[t], serving.capacity_share(rt, trace[t]))


def test_caching_loads_a_missed_model_and_serves_with_it():
    """A node with room and a model that beats the cloud for its requests
    loads it after the first slot, and then serves them."""
    idn, rt, trace = _instance(11, slots=5)
    res = run_policy(rt, make_policy("lru"), trace)
    assert res.slots["gain"].iloc[0] == 0.0  # nothing cached yet
    assert res.slots["model_loads"].iloc[1] > 0
    assert res.slots["gain"].iloc[1:].min() > 0.0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), name=st.sampled_from(["local-greedy", "lfu", "lru"]))
def test_heuristics_are_always_feasible(seed, name):
    idn, rt, trace = _instance(seed, slots=5)
    policy = make_policy(name).start(rt, seed=seed)
    for t in range(trace.shape[0]):
        assert_feasible(idn, policy.propose())
        policy.learn(trace[t], serving.capacity_share(rt, trace[t]))


# ---- INFIDA's low-churn rounding still follows a shift ----------------------
def test_coupled_infida_follows_a_popularity_shift_and_then_stays_put():
    """Popularity reverses at slot 150. Within 20 slots the coupled (lazy)
    rounding's allocation has moved: it beats the allocation it held before
    the shift, kept frozen, on the slots after; at steady state it loads
    almost nothing. Budgets are tight (0.15x), so that what a node held
    before the reversal is wrong after it (with 0.5x budgets a node holds
    most models, and the frozen allocation does within 0.5% of any other)."""
    from idn.model.scenario import scenario_from_dict

    idn = scenario_from_dict({
        "name": "shift", "alpha": 2.0,
        "topology": {"tiered_tree": {"regional": 2, "edge_per_regional": 2, "access_per_edge": 2, "budget_scale": 0.15}},
        "tasks": {"generate": {"count": 6, "models_per_task": [4, 5], "seed": 3}},
    })  # fmt: skip
    rt = build_request_types(idn)
    T, shift = 300, 150
    rng = np.random.default_rng(0)
    pop = np.array([0.6, 0.2, 0.1, 0.05, 0.03, 0.02])
    counts = np.array([rng.poisson(100 * (pop if t < shift else pop[::-1])[rt.task]) for t in range(T)], dtype=float)
    policy = make_policy("infida", rounding="coupled").start(rt, seed=1)
    gains, loads, prev, frozen = [], [], idn.permanent.copy(), None
    for t in range(T):
        x = policy.propose()
        if t == shift:
            frozen = prev.astype(float)
        share = serving.capacity_share(rt, counts[t])
        gains.append(serving.gain(rt, counts[t], x, share))
        loads.append(int(((x > 0.5) & ~prev).sum()))
        prev = x > 0.5
        policy.learn(counts[t], share)
    after = range(shift + 20, shift + 60)
    frozen_gain = sum(serving.gain(rt, counts[t], frozen) for t in after)
    assert sum(gains[t] for t in after) > 1.01 * frozen_gain
    assert sum(loads[shift : shift + 20]) > 0  # it moved
    caches = int((~idn.repository).sum())
    assert sum(loads[-100:]) / (100 * caches) < 0.01  # and then stays put


class _Stop(Exception):
    pass


@pytest.mark.parametrize("name, params", [("local-greedy", {"update_prob": 0.5, "window": 4}), ("lfu", {}), ("lru", {})])
def test_a_checkpointed_run_resumes_to_the_uninterrupted_result(tmp_path, name, params):
    """The state between slots is all saved: for local-greedy the window of
    counts and shares (a deque, saved as arrays) and the rng, for the caches
    their scores. (A live node restarts from the same state.)"""
    idn, rt, counts = _instance(4, slots=24)
    whole = run_policy(rt, make_policy(name, **params), counts, seed=2)

    def stop_at(done, total):
        if done == 13:
            raise _Stop

    ck = tmp_path / "checkpoint.npz"
    with pytest.raises(_Stop):
        run_policy(rt, make_policy(name, **params), counts, seed=2, checkpoint=ck, checkpoint_every=5, on_slot=stop_at)
    assert ck.exists()
    resumed = run_policy(rt, make_policy(name, **params), counts, seed=2, checkpoint=ck, checkpoint_every=5)
    cols = ["gain", "model_loads"]
    assert np.array_equal(resumed.slots[cols].to_numpy(), whole.slots[cols].to_numpy())
    assert np.array_equal(resumed.final_allocation, whole.final_allocation)
