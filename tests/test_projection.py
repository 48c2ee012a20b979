"""INFIDA's Bregman projection onto Y = {y in [0,1]^M : s.y = b} (design page,
section 8, step 3), checked against a plain bisection on c, a generic convex
solver and the KKT conditions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from idn.problem.projection import bregman_divergence, project_capped_simplex, project_dense, project_nodes, uniform_point


def reference_projection(y_hat, sizes, budget, iters=200):
    """Bisection on the scalar c of min(1, c * y_hat): deliberately plain."""
    y_hat, sizes = np.asarray(y_hat, float), np.asarray(sizes, float)
    if budget >= sizes.sum():
        return np.ones_like(y_hat)
    lo, hi = 0.0, 1.0
    while np.sum(sizes * np.minimum(1.0, hi * y_hat)) < budget:
        hi *= 2.0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if np.sum(sizes * np.minimum(1.0, mid * y_hat)) < budget:
            lo = mid
        else:
            hi = mid
    return np.minimum(1.0, 0.5 * (lo + hi) * y_hat)


@st.composite
def node(draw, max_m=12, low=1e-3, inside=False):
    m = draw(st.integers(1, max_m))
    sizes = np.array(draw(st.lists(st.floats(1.0, 600.0), min_size=m, max_size=m)))
    y_hat = np.array(draw(st.lists(st.floats(low, 1e3), min_size=m, max_size=m)))
    frac = st.floats(0.05, 0.95) if inside else st.one_of(st.just(0.0), st.floats(1e-6, 1.3))
    budget = draw(frac) * sizes.sum()
    return y_hat, sizes, budget


@settings(max_examples=300, deadline=None)
@given(node())
def test_feasible_and_equal_to_the_bisection(case):
    y_hat, sizes, budget = case
    y = project_capped_simplex(y_hat, sizes, budget)
    assert np.all(y >= 0) and np.all(y <= 1)
    assert abs(sizes @ y - min(budget, sizes.sum())) <= 1e-9 * max(1.0, budget)
    np.testing.assert_allclose(y, reference_projection(y_hat, sizes, budget), atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(node())
def test_kkt_structure(case):
    """y = min(1, c y_hat) with one c: the uncapped coordinates share the
    ratio y / y_hat, every capped one has c y_hat >= 1, and the capped ones
    are exactly the largest y_hat."""
    y_hat, sizes, budget = case
    assume(0 < budget < sizes.sum())
    y = project_capped_simplex(y_hat, sizes, budget, min_y=0.0)  # no floor: the exact projection
    free = y < 1.0
    assert free.any()
    ratio = y[free] / y_hat[free]
    c = ratio.mean()
    np.testing.assert_allclose(ratio, c, rtol=1e-9)
    assert np.all(c * y_hat[~free] >= 1.0 - 1e-9)
    if (~free).any():
        assert y_hat[~free].min() >= y_hat[free].max() * (1 - 1e-9)


def solver_projection(y_hat, sizes, budget):
    cons = [{"type": "eq", "fun": lambda y: sizes @ y - budget, "jac": lambda y: sizes}]

    def fun(y):
        y = np.maximum(y, 1e-300)
        return np.sum(sizes * (y * np.log(y / y_hat) - y + y_hat))

    def jac(y):
        return sizes * np.log(np.maximum(y, 1e-300) / y_hat)

    x0 = np.full(y_hat.size, budget / sizes.sum())
    res = minimize(fun, x0, jac=jac, method="SLSQP", bounds=[(1e-12, 1.0)] * y_hat.size, constraints=cons,
                   options={"ftol": 1e-12, "maxiter": 500})
    return res.x


@settings(max_examples=60, deadline=None)
@given(node(max_m=6, low=0.05, inside=True))
def test_generic_solver_never_beats_the_exact_projection(case):
    y_hat, sizes, budget = case
    exact = project_capped_simplex(y_hat, sizes, budget)
    y = np.clip(solver_projection(y_hat, sizes, budget), 0, 1)
    assume(abs(sizes @ y - budget) < 1e-6 * budget)  # the solver's point is feasible
    d_exact = bregman_divergence(exact, y_hat, sizes)
    d_solver = bregman_divergence(y, y_hat, sizes)
    scale = max(1.0, abs(d_exact))
    assert d_solver >= d_exact - 1e-6 * scale  # never better
    assert d_solver <= d_exact + 1e-3 * scale  # and the solver agrees


def test_exact_projection_is_a_minimum_against_feasible_perturbations():
    rng = np.random.default_rng(3)
    sizes = rng.uniform(5, 200, 8)
    y_hat = rng.exponential(size=8)
    budget = 0.4 * sizes.sum()
    y = project_capped_simplex(y_hat, sizes, budget)
    d = bregman_divergence(y, y_hat, sizes)
    for _ in range(500):
        i, j = rng.choice(8, 2, replace=False)
        step = rng.normal() * 0.05
        z = y.copy()
        z[i] += step / sizes[i]
        z[j] -= step / sizes[j]
        if np.all((z >= 0) & (z <= 1)):
            assert bregman_divergence(z, y_hat, sizes) >= d - 1e-12


def test_everything_fits_and_empty_budget():
    sizes = np.array([10.0, 20.0, 30.0])
    np.testing.assert_array_equal(project_capped_simplex([1.0, 2.0, 3.0], sizes, 60.0), 1.0)
    np.testing.assert_array_equal(project_capped_simplex([1.0, 2.0, 3.0], sizes, 75.0), 1.0)
    np.testing.assert_array_equal(project_capped_simplex([1.0, 2.0, 3.0], sizes, 0.0), 0.0)
    assert project_capped_simplex([], [], 10.0).size == 0


def test_scale_invariance_ties_and_log_input():
    rng = np.random.default_rng(0)
    sizes = rng.uniform(1, 100, 10)
    y_hat = np.round(rng.exponential(size=10), 1) + 0.1  # ties
    y = project_capped_simplex(y_hat, sizes, 150.0)
    np.testing.assert_allclose(project_capped_simplex(1e7 * y_hat, sizes, 150.0), y, atol=1e-12)
    np.testing.assert_allclose(project_capped_simplex(np.log(y_hat) + 800.0, sizes, 150.0, log_input=True), y, atol=1e-12)
    for v in np.unique(y_hat):
        assert np.ptp(y[y_hat == v]) < 1e-12


def test_zeros_stay_in_the_interior():
    sizes = np.array([10.0, 10.0, 10.0, 10.0])
    # positives can fill the budget: the zeros stay just above the floor
    y = project_capped_simplex([1.0, 2.0, 0.0, 0.0], sizes, 15.0, min_y=1e-9)
    assert np.all(y[2:] >= 1e-9 * (1 - 1e-9)) and np.all(y[2:] < 1e-8)
    assert sizes @ y == pytest.approx(15.0, abs=1e-9)
    np.testing.assert_allclose(y[:2], [0.5, 1.0], atol=1e-8)
    # they cannot: positives at 1, the zeros share what is left (the 0+ limit)
    np.testing.assert_allclose(project_capped_simplex([3.0, 0.0, 0.0, 0.0], sizes, 25.0), [1.0, 0.5, 0.5, 0.5])
    # nothing positive: the uniform point
    np.testing.assert_allclose(project_capped_simplex(np.zeros(4), sizes, 25.0), uniform_point(sizes, 25.0))
    # log input with -inf (exp underflow) is the same as a zero
    np.testing.assert_allclose(project_capped_simplex([0.0, np.log(2.0), -np.inf, -np.inf], sizes, 15.0, log_input=True),
                               project_capped_simplex([1.0, 2.0, 0.0, 0.0], sizes, 15.0))


def test_floor_lifts_tiny_coordinates_and_stays_in_y():
    sizes = np.array([100.0, 50.0, 20.0, 5.0])
    y_hat = np.array([1.0, 1e-30, 1.0, 1e-40])
    y = project_capped_simplex(y_hat, sizes, 60.0)
    assert y.min() >= 1e-12 * (1 - 1e-9)
    assert sizes @ y == pytest.approx(60.0, abs=1e-9)
    np.testing.assert_allclose(y, project_capped_simplex(y_hat, sizes, 60.0, min_y=0.0), atol=1e-9)


def test_uniform_point():
    sizes = np.array([10.0, 30.0, 60.0])
    u = uniform_point(sizes, 25.0)
    np.testing.assert_allclose(u, 0.25)
    assert sizes @ u == pytest.approx(25.0)
    np.testing.assert_array_equal(uniform_point(sizes, 500.0), 1.0)
    # it minimizes Phi(y) = sum s y log y over Y: no feasible move lowers it
    phi = lambda y: float(np.sum(sizes * y * np.log(y)))  # noqa: E731
    rng = np.random.default_rng(0)
    for _ in range(200):
        d = rng.normal(size=3)
        d -= (sizes @ d) / (sizes @ sizes) * sizes
        assert phi(u + 0.01 * d) >= phi(u) - 1e-12
    # the projection of a constant vector is the uniform point
    np.testing.assert_allclose(project_capped_simplex(np.full(3, 7.0), sizes, 25.0), u)


@settings(max_examples=50, deadline=None)
@given(st.lists(node(max_m=6), min_size=1, max_size=6), st.booleans())
def test_nodes_at_once_equal_one_at_a_time(cases, add_empty):
    if add_empty:
        cases = cases + [(np.zeros(0), np.zeros(0), 5.0)]
    flat = np.concatenate([c[0] for c in cases])
    sizes = np.concatenate([c[1] for c in cases])
    offsets = np.concatenate([[0], np.cumsum([c[0].size for c in cases])])
    budgets = np.array([c[2] for c in cases])
    y = project_nodes(flat, sizes, offsets, budgets)
    for v, (y_hat, s, b) in enumerate(cases):
        np.testing.assert_allclose(y[offsets[v] : offsets[v + 1]], project_capped_simplex(y_hat, s, b), atol=1e-12)


def test_dense_with_mask():
    rng = np.random.default_rng(1)
    Y_hat = rng.exponential(size=(3, 5))
    sizes = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    mask = np.array([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], bool)
    out = project_dense(Y_hat, sizes, [25.0, 10.0, 60.0], mask)
    assert np.all(out[~mask] == 0)
    np.testing.assert_allclose(out[0, :3], project_capped_simplex(Y_hat[0, :3], sizes[:3], 25.0))
    np.testing.assert_allclose(out[2], project_capped_simplex(Y_hat[2], sizes, 60.0))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="entry 1 is -1"):
        project_capped_simplex([1.0, -1.0], [1.0, 1.0], 1.0)
    with pytest.raises(ValueError, match="entry 0 is nan"):
        project_capped_simplex([np.nan, 1.0], [1.0, 1.0], 1.0)
    with pytest.raises(ValueError, match="sizes must be finite and > 0, entry 1"):
        project_capped_simplex([1.0, 1.0], [1.0, 0.0], 1.0)
    with pytest.raises(ValueError, match="budgets"):
        project_capped_simplex([1.0, 1.0], [1.0, 1.0], -2.0)
    with pytest.raises(ValueError, match="node_offsets"):
        project_nodes([1.0, 1.0], [1.0, 1.0], [0, 3], [1.0])
    with pytest.raises(ValueError, match="same length"):
        project_capped_simplex([1.0, 1.0], [1.0], 1.0)
    with pytest.raises(ValueError, match="budget must be finite"):
        uniform_point([1.0], np.inf)
