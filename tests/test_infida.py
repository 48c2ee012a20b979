"""INFIDA: the distributed message form against the vectorized one, budgets,
seeds, and learning on a stationary workload."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idn import serving
from idn.model.request_types import build_request_types
from idn.policies.registry import make_policy
from idn.policies.infida.policy import Infida, InfidaOffline
from idn.policies.infida.messages import distributed_supergradient
from idn.sim.loop import run_policy

import reference as ref


def _instance(seed, slots=50):
    rng = np.random.default_rng(seed)
    idn = ref.random_idn(rng, n_nodes=int(rng.integers(3, 8)), n_tasks=int(rng.integers(1, 4)), models_per_task=3)
    rt = build_request_types(idn)
    counts = rng.poisson(rng.uniform(1, 40, rt.n_types), (slots, rt.n_types)).astype(float)
    return rng, idn, rt, counts


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_distributed_messages_give_the_vectorized_supergradient(seed):
    rng, idn, rt, counts = _instance(seed, slots=1)
    y = rng.random((idn.n_nodes, idn.n_models))
    y[idn.permanent] = 1.0
    share = serving.capacity_share(rt, counts[0])
    _, g_fast = serving.gain_and_supergradient(rt, counts[0], y, share)
    g_msg, n_messages, sent = distributed_supergradient(rt, counts[0], share, y)
    np.testing.assert_allclose(g_msg, g_fast, rtol=1e-12, atol=1e-9)
    path_len = np.diff(rt.path_offsets)
    assert n_messages == int(np.sum(2 * (path_len - 1)[counts[0] > 0]))
    json.dumps(sent)  # plain, serializable messages


def test_infida_reports_the_message_count_of_the_protocol():
    _, idn, rt, counts = _instance(7, slots=3)
    policy = Infida().start(rt, seed=0)
    policy.learn(counts[0], serving.capacity_share(rt, counts[0]))
    share = serving.capacity_share(rt, counts[0])
    _, n_messages, _ = distributed_supergradient(rt, counts[0], share, policy.state())
    assert policy.control_messages == n_messages
    assert policy.control_bytes > 0


@pytest.mark.parametrize("rounding", ["fresh", "coupled"])
@pytest.mark.parametrize("seed", range(5))
def test_infida_keeps_budgets_and_state_feasible(seed, rounding):
    _, idn, rt, counts = _instance(seed)
    policy = Infida(rounding=rounding).start(rt, seed=seed)
    for t in range(counts.shape[0]):
        x = policy.propose()
        assert set(np.unique(x)) <= {0.0, 1.0}
        assert np.all(x[idn.permanent] == 1.0)
        used = (x * idn.size_mb)[~idn.repository].sum(axis=1)
        assert np.all(used <= idn.budget_mb[~idn.repository] + 1e-6)
        policy.learn(counts[t], serving.capacity_share(rt, counts[t]))
        y = policy.state()
        assert np.all(y >= 0) and np.all(y <= 1 + 1e-12)
        sy = (y * idn.size_mb)[~idn.repository].sum(axis=1)
        fits_total = (idn.fits * idn.size_mb)[~idn.repository].sum(axis=1)
        np.testing.assert_allclose(sy, np.minimum(idn.budget_mb, (idn.fits * idn.size_mb).sum(axis=1))[~idn.repository], rtol=1e-9, atol=1e-9)
        assert np.all(sy <= fits_total + 1e-9)


def test_same_seed_same_run_and_clone():
    _, idn, rt, counts = _instance(11)
    a = run_policy(rt, make_policy("infida"), counts, seed=3).slots
    b = run_policy(rt, make_policy("infida").clone(), counts, seed=3).slots
    c = run_policy(rt, make_policy("infida"), counts, seed=4).slots
    np.testing.assert_array_equal(a["gain"], b["gain"])
    assert not np.array_equal(a["model_loads"], c["model_loads"]) or not np.array_equal(a["gain"], c["gain"])


def test_infida_learns_on_a_stationary_workload():
    """The fractional state climbs the objective: at the end of the run its
    gain on the trace is at least the uniform starting point's, on every instance."""
    for seed in range(5):
        _, idn, rt, counts = _instance(seed, slots=200)
        policy = Infida().start(rt, seed=0)
        shares = [serving.capacity_share(rt, c) for c in counts]

        def objective(y):
            return sum(serving.gain(rt, c, y, l) for c, l in zip(counts, shares))

        start = objective(policy.state())
        for c, l in zip(counts, shares):
            policy.learn(c, l)
        assert objective(policy.state()) >= start - 1e-9 * abs(start)


def test_offline_needs_trace_and_is_static():
    _, idn, rt, counts = _instance(2, slots=40)
    with pytest.raises(ValueError, match="offline"):
        InfidaOffline().start(rt, seed=0)
    p = InfidaOffline(iterations=50).start(rt, seed=0, trace=counts)
    x0 = p.propose().copy()
    p.learn(counts[0], serving.capacity_share(rt, counts[0]))
    np.testing.assert_array_equal(p.propose(), x0)


def test_unknown_parameter_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown parameter 'etaa'"):
        make_policy("infida", etaa=1.0)
    with pytest.raises(ValueError, match="unknown policy 'infdia'.*infida"):
        make_policy("infdia")
