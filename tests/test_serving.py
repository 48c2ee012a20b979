"""Serving, gain and supergradient: the fast kernels against the plain
reference, and the properties the design page promises."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idn import serving
from idn.model.request_types import build_request_types

import reference as ref

seeds = st.integers(0, 2**32 - 1)
SETTINGS = settings(max_examples=60, deadline=None)


def _instance(seed, **kw):
    rng = np.random.default_rng(seed)
    idn = ref.random_idn(rng, n_nodes=int(rng.integers(2, 8)), n_tasks=int(rng.integers(1, 4)), **kw)
    rt = build_request_types(idn)
    counts = rng.poisson(rng.uniform(0, 50, rt.n_types)).astype(float)
    counts[rng.random(rt.n_types) < 0.2] = 0.0
    return rng, idn, rt, counts


def _random_y(rng, idn, integral=False):
    y = rng.random((idn.n_nodes, idn.n_models))
    if integral:
        y = (y < 0.5).astype(float)
    y[idn.permanent] = 1.0
    return y


def _entries_from_reference(lists):
    return [(v, m, c) for _, _, cands in lists for v, m, c, _, _ in cands]


@given(seeds)
@SETTINGS
def test_candidate_lists_match_brute_force(seed):
    _, idn, rt, _ = _instance(seed)
    lists = ref.candidate_lists(idn, idn.sources)
    assert rt.n_types == len(lists)
    fast = list(zip(rt.node.tolist(), rt.model.tolist(), rt.cost.tolist()))
    slow = _entries_from_reference(lists)
    assert [(v, m) for v, m, _ in fast] == [(v, m) for v, m, _ in slow]
    np.testing.assert_allclose([c for *_, c in fast], [c for *_, c in slow], rtol=1e-12)
    # the last entry of each list is the only permanent one
    assert np.all(np.isinf(rt.capacity[rt.is_fallback]))
    assert np.all(np.isfinite(rt.capacity[~rt.is_fallback]))


@given(seeds, st.booleans())
@SETTINGS
def test_fast_equals_reference(seed, integral):
    rng, idn, rt, counts = _instance(seed)
    y = _random_y(rng, idn, integral)
    lists = ref.candidate_lists(idn, idn.sources)
    share_ref = ref.shares(lists, counts)
    served_ref, cost_ref, gain_cost_ref, gain_tele_ref = ref.serve(lists, counts, share_ref, y.tolist())
    g_ref = np.array(ref.supergradient(lists, counts, share_ref, y.tolist(), idn.n_nodes, idn.n_models))

    share = serving.capacity_share(rt, counts)
    np.testing.assert_allclose(share, np.concatenate(share_ref), rtol=1e-9)
    out = serving.serve(rt, counts, y)
    np.testing.assert_allclose(out.served, np.concatenate(served_ref), rtol=1e-9, atol=1e-9)
    assert out.cost == pytest.approx(cost_ref, rel=1e-9)
    assert out.gain == pytest.approx(gain_cost_ref, rel=1e-9, abs=1e-9)
    gain, g = serving.gain_and_supergradient(rt, counts, y)
    assert gain == pytest.approx(gain_tele_ref, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(g, g_ref, rtol=1e-9, atol=1e-9)


@given(seeds, st.booleans())
@SETTINGS
def test_two_gain_forms_agree(seed, integral):
    rng, idn, rt, counts = _instance(seed)
    y = _random_y(rng, idn, integral)
    out = serving.serve(rt, counts, y)
    assert out.gain == pytest.approx(serving.gain(rt, counts, y), rel=1e-9, abs=1e-7)


@given(seeds)
@SETTINGS
def test_served_within_shares_and_adds_up(seed):
    rng, idn, rt, counts = _instance(seed)
    y = _random_y(rng, idn)
    out = serving.serve(rt, counts, y)
    lim = out.share * y.ravel()[rt.pair]
    assert np.all(out.served >= -1e-12)
    assert np.all(out.served <= lim + 1e-9)
    per_type = np.add.reduceat(out.served, rt.offsets[:-1]) if rt.n_entries else np.zeros(0)
    np.testing.assert_allclose(per_type, counts, rtol=1e-12, atol=1e-9)
    assert out.served_per_tier.sum() == pytest.approx(counts.sum())


@given(seeds)
@SETTINGS
def test_only_repositories_gain_zero(seed):
    _, idn, rt, counts = _instance(seed)
    x = idn.permanent.astype(float)
    assert serving.serve(rt, counts, x).gain == pytest.approx(0.0, abs=1e-9)
    assert serving.gain(rt, counts, x) == pytest.approx(0.0, abs=1e-9)


@given(seeds)
@SETTINGS
def test_gain_monotone_in_allocation(seed):
    rng, idn, rt, counts = _instance(seed)
    x = _random_y(rng, idn, integral=True)
    more = np.maximum(x, _random_y(rng, idn, integral=True))
    assert serving.gain(rt, counts, more) >= serving.gain(rt, counts, x) - 1e-9
    assert 0.0 <= serving.gain(rt, counts, x) <= serving.max_gain(rt, counts) + 1e-9


@given(seeds)
@SETTINGS
def test_relaxation_equals_integral_gain_on_01_points(seed):
    rng, idn, rt, counts = _instance(seed)
    x = _random_y(rng, idn, integral=True)
    assert serving.gain(rt, counts, x) == pytest.approx(serving.serve(rt, counts, x).gain, rel=1e-9, abs=1e-7)


@given(seeds)
@SETTINGS
def test_supergradient_inequality(seed):
    rng, idn, rt, counts = _instance(seed)
    share = serving.capacity_share(rt, counts)
    y = _random_y(rng, idn)
    g0, g = serving.gain_and_supergradient(rt, counts, y, share)
    for _ in range(5):
        y2 = _random_y(rng, idn, integral=bool(rng.random() < 0.3))
        g2 = serving.gain(rt, counts, y2, share)
        assert g2 <= g0 + float(np.sum(g * (y2 - y))) + 1e-7 * max(1.0, abs(g0))


def test_tiny_hand_computed_example():
    """Two nodes on a line: ap (cpu) -> cloud (repository). Numbers worked by hand."""
    import networkx as nx

    from idn.model.network import IDN, Model, Node

    nodes = [
        Node("ap", "access", "cpu", speed=1.0, workers=1, budget_mb=20),
        Node("cloud", "cloud", "gpu", speed=1.0, workers=1, repository=True),
    ]
    g = nx.Graph()
    g.add_edge("ap", "cloud", latency_ms=10.0)
    models = [Model("t/small", "t", 0.7, 10, {"cpu": 100.0, "gpu": 5.0})]
    idn = IDN("hand", nodes, g, ["t"], models, alpha=1.0, slot_seconds=1.0, sources=["ap"])
    rt = build_request_types(idn)
    # ap: 0 + 100 + 30 = 130; cloud: 20 + 5 + 30 = 55 -> the cloud is cheaper: list is just the fallback
    assert rt.n_entries == 1 and rt.cost[0] == pytest.approx(55.0)
    idn2 = IDN("hand", nodes, g, ["t"], [Model("t/small", "t", 0.7, 10, {"cpu": 10.0, "gpu": 5.0})], sources=["ap"])
    rt2 = build_request_types(idn2)
    # ap: 10 + 30 = 40 (capacity 1000/10 = 100 per slot), cloud: 55
    np.testing.assert_allclose(rt2.cost, [40.0, 55.0])
    counts = np.array([150.0])
    out = serving.serve(rt2, counts, np.array([[1.0], [1.0]]))
    np.testing.assert_allclose(out.served, [100.0, 50.0])
    assert out.gain == pytest.approx(15.0 * 100)
    assert out.mean_latency_ms == pytest.approx((100 * 10 + 50 * 25) / 150)
    _, g = serving.gain_and_supergradient(rt2, counts, np.array([[0.5], [1.0]]))
    assert g[0, 0] == pytest.approx(100 * 15.0)  # cum 50 < 150
