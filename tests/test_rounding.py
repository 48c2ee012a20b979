"""Rounding of the fractional state (design page, section 8, step 4).

The fast (numba) rounding is checked against ``exact_distribution`` below: a
deliberately plain restatement of the scheme in the module docstring that
walks every branch and returns the exact law of x (small M only)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idn.problem.projection import project_capped_simplex
from idn.policies.infida.rounding import CoupledRounding, FreshRounding, make_rounding, round_allocation, round_many, round_nodes

SNAP = 1e-12


# ------------------------------------------------------------ the reference
def exact_distribution(y, sizes, budget):
    """{x as a tuple of 0/1: probability} of the documented scheme."""
    y = [min(1.0, max(0.0, float(v))) for v in y]
    s = [float(v) for v in sizes]
    b = float(budget)
    tol = 1e-9 * max(1.0, b)
    y = [0.0 if (s[m] > b + tol or y[m] < SNAP) else (1.0 if y[m] > 1 - SNAP else y[m]) for m in range(len(y))]
    slack = b - sum(si * yi for si, yi in zip(s, y))
    slack = 0.0 if slack <= tol else slack
    # every order by decreasing size, ties in every order, equally likely
    groups = [list(g) for _, g in itertools.groupby(sorted(range(len(s)), key=lambda m: -s[m]), key=lambda m: s[m])]
    orders = [sum(map(list, combo), []) for combo in itertools.product(*(itertools.permutations(g) for g in groups))]
    sure = frozenset(m for m in range(len(y)) if y[m] == 1.0)  # never evicted
    law: dict[tuple, float] = {}
    for order in orders:
        for x, p in _walk(list(y), slack, s, b, tol, order, sure):
            law[x] = law.get(x, 0.0) + p / len(orders)
    return law


def _frac(v):
    return 0.0 < v < 1.0


def _snap(v):
    return 0.0 if v < SNAP else (1.0 if v > 1 - SNAP else v)


def _walk(y, slack, s, b, tol, order, sure):
    frac = [m for m in order if _frac(y[m])]
    if not frac:
        return [(tuple(int(v == 1.0) for v in y), 1.0)]
    i = frac[0]
    rest = frac[1:]
    if rest and abs(s[rest[0]] - s[i]) <= 1e-12 * s[i]:
        j = rest[0]
        into_i = min(s[i] * (1 - y[i]), s[j] * y[j])
        out_of_i = min(s[i] * y[i], s[j] * (1 - y[j]))
        up, down = list(y), list(y)
        up[i], up[j] = _snap(y[i] + into_i / s[i]), _snap(y[j] - into_i / s[j])
        down[i], down[j] = _snap(y[i] - out_of_i / s[i]), _snap(y[j] + out_of_i / s[j])
        if s[i] * (1 - y[i]) <= into_i:
            up[i] = 1.0
        if s[j] * y[j] <= into_i:
            up[j] = 0.0
        if s[i] * y[i] <= out_of_i:
            down[i] = 0.0
        if s[j] * (1 - y[j]) <= out_of_i:
            down[j] = 1.0
        p_up = out_of_i / (into_i + out_of_i)
        return _branch(up, slack, down, slack, p_up, s, b, tol, order, sure)
    if not rest and slack == 0.0:
        return _last_coordinate(y, s, b + tol, i, order, sure)
    need_up, need_down = s[i] * (1 - y[i]), s[i] * y[i]
    cap = {j: min(s[j] * y[j] / need_up, s[j] * (1 - y[j]) / need_down) for j in rest}
    cap_slack = slack / need_up
    # shares up to a total of 1: first the models the pivot would shut out,
    # then the others, then the slack; all scaled down if even that is short
    after = b + tol - s[i] - sum(s[m] for m in range(len(y)) if y[m] == 1.0)
    w, left = {}, 1.0
    for group in ([j for j in rest if s[j] > after], [j for j in rest if s[j] <= after]):
        group_cap = sum(cap[j] for j in group)
        share = min(1.0, left / group_cap) if group_cap > 0 else 0.0
        for j in group:
            w[j] = cap[j] * share
        left -= group_cap * share
    w_slack = min(left, cap_slack)
    if left > cap_slack:
        total = 1 - left + cap_slack
        w = {j: v / total for j, v in w.items()}
        w_slack = cap_slack / total
    t_up = min([1 - y[i]] + [s[j] * y[j] / (s[i] * w[j]) for j in rest if w[j] > 0] + ([slack / (s[i] * w_slack)] if w_slack > 0 else []))
    t_down = min([y[i]] + [s[j] * (1 - y[j]) / (s[i] * w[j]) for j in rest if w[j] > 0])
    up, down = list(y), list(y)
    up[i] = 1.0 if t_up >= 1 - y[i] else _snap(y[i] + t_up)
    down[i] = 0.0 if t_down >= y[i] else _snap(y[i] - t_down)
    for j in rest:
        gives, takes = s[i] * t_up * w[j], s[i] * t_down * w[j]
        up[j] = 0.0 if s[j] * y[j] <= gives * (1 + 1e-12) else _snap(y[j] - gives / s[j])
        down[j] = 1.0 if s[j] * (1 - y[j]) <= takes * (1 + 1e-12) else _snap(y[j] + takes / s[j])
    slack_up = slack - s[i] * t_up * w_slack
    slack_down = slack + s[i] * t_down * w_slack
    slack_up = 0.0 if slack_up <= tol else slack_up
    slack_down = 0.0 if slack_down <= tol else slack_down
    return _branch(up, slack_up, down, slack_down, t_down / (t_up + t_down), s, b, tol, order, sure)


def _last_coordinate(y, s, cap, i, order, sure):
    """Up with probability y_i; if it does not fit, evict the smallest chosen
    models that were not at 1 in the input (putting back, largest first, those
    that fit again), unless that evicts s_i MB or more or is not enough: then down."""
    x = [int(v == 1.0) for v in y]
    room = cap - sum(si for si, xi in zip(s, x) if xi) - s[i]
    evicted = []
    for j in reversed(order):  # increasing size
        if room >= 0:
            break
        if x[j] and j not in sure:
            evicted.append(j)
            room += s[j]
    for j in order:  # decreasing size
        if j in evicted and s[j] <= room:
            evicted.remove(j)
            room -= s[j]
    if room < 0 or sum(s[j] for j in evicted) >= s[i]:
        return [(tuple(x), 1.0)]
    x_up = [0 if j in evicted else x[j] for j in range(len(x))]
    x_up[i] = 1
    return [(tuple(x_up), y[i]), (tuple(x), 1 - y[i])]


def _branch(up, slack_up, down, slack_down, p_up, s, b, tol, order, sure):
    out = [(x, p * p_up) for x, p in _walk(up, slack_up, s, b, tol, order, sure)]
    return out + [(x, p * (1 - p_up)) for x, p in _walk(down, slack_down, s, b, tol, order, sure)]


def law_marginals(law, n):
    m = np.zeros(n)
    for x, p in law.items():
        m += p * np.array(x)
    return m


def feasible_marginals_exist(y, sizes, budget):
    """Is y a mixture of feasible 0/1 allocations? (LP over all feasible sets)"""
    from scipy.optimize import linprog

    n = len(y)
    sets = [x for x in itertools.product((0, 1), repeat=n) if np.dot(x, sizes) <= budget + 1e-9]
    A = np.array(sets, dtype=float).T
    res = linprog(np.zeros(len(sets)), A_eq=np.vstack([A, np.ones(len(sets))]), b_eq=np.r_[y, 1.0], bounds=(0, None))
    return res.status == 0


def best_mass(y, sizes, budget):
    """max s.E[x] over laws on feasible sets with E[x] <= y (an LP)."""
    from scipy.optimize import linprog

    sizes = np.asarray(sizes, float)
    sets = np.array([x for x in itertools.product((0, 1), repeat=len(y)) if np.dot(x, sizes) <= budget + 1e-9], float).T
    res = linprog(-(sizes @ sets), A_ub=sets, b_ub=y, A_eq=np.ones((1, sets.shape[1])), b_eq=[1.0], bounds=(0, None))
    return -res.fun


def z_scores(freq, p, n):
    return (freq - p) / np.sqrt(np.maximum(p * (1 - p), 1e-4) / n)


# -------------------------------------------------------------- strategies
@st.composite
def instance(draw, max_m=5):
    m = draw(st.integers(1, max_m))
    sizes = np.array(draw(st.lists(st.sampled_from([10.0, 20.0, 35.0, 50.0, 150.0]), min_size=m, max_size=m)))
    if draw(st.booleans()):  # some coordinates already at 0 or 1, a tight or loose budget
        y = np.array(draw(st.lists(st.one_of(st.just(1.0), st.just(0.0), st.floats(0.01, 0.99)), min_size=m, max_size=m)))
        return y, sizes, float(sizes @ y) + draw(st.sampled_from([0.0, 0.0, 5.0, 30.0]))
    budget = draw(st.floats(0.0, 1.2)) * sizes.sum()
    y_hat = np.array(draw(st.lists(st.floats(0.01, 1.0), min_size=m, max_size=m)))
    y = project_capped_simplex(y_hat, sizes, budget)
    if draw(st.booleans()):  # below the budget: leaves slack
        y = y * draw(st.floats(0.0, 1.0))
    return y, sizes, budget


# ------------------------------------------------------------------- tests
@settings(max_examples=80, deadline=None, derandomize=True)
@given(instance())
def test_reference_law_keeps_budget_and_never_oversells(case):
    y, sizes, budget = case
    law = exact_distribution(y, sizes, budget)
    assert math.isclose(sum(law.values()), 1.0, rel_tol=1e-9)
    for x, p in law.items():
        assert np.dot(x, sizes) <= budget + 1e-9 * max(1, budget)
    marg = law_marginals(law, len(y))
    assert np.all(marg <= y + 1e-9)
    # the only loss is the last fractional coordinate, smaller than one model
    assert np.dot(sizes, y - marg) < sizes.max() + 1e-9


@settings(max_examples=40, deadline=None, derandomize=True)
@given(instance(max_m=4), st.integers(0, 2**32 - 1))
def test_fast_rounding_has_the_reference_law(case, seed):
    y, sizes, budget = case
    law = exact_distribution(y, sizes, budget)
    n = 4000
    X = round_many(y, sizes, budget, np.random.default_rng(seed), n)
    seen: dict[tuple, int] = {}
    for row in map(tuple, X.astype(int)):
        seen[row] = seen.get(row, 0) + 1
    assert set(seen) <= {x for x, p in law.items() if p > 0}
    for x, p in law.items():
        assert abs(z_scores(seen.get(x, 0) / n, p, n)) < 5


@pytest.mark.parametrize("k,n_models,seed", [(1, 4, 0), (2, 5, 1), (3, 8, 2), (5, 12, 3)])
def test_equal_sizes_is_depround(k, n_models, seed):
    rng = np.random.default_rng(seed)
    sizes = np.full(n_models, 25.0)
    budget = 25.0 * k
    y = project_capped_simplex(rng.exponential(size=n_models), sizes, budget)
    assert math.isclose(y.sum(), k)
    n = 20000
    X = round_many(y, sizes, budget, rng, n)
    assert np.all(X.sum(axis=1) == k)  # exactly b / s models, every draw
    assert np.all(np.abs(z_scores(X.mean(axis=0), y, n)) < 3.5)
    if n_models <= 5:
        marg = law_marginals(exact_distribution(y, sizes, budget), n_models)
        np.testing.assert_allclose(marg, y, atol=1e-12)


def test_large_model_is_not_starved_beside_small_ones():
    # the design page's example: 150 MB at y = 0.65 beside small models at 1
    sizes = np.array([150.0, 10, 10, 10, 10, 10])
    y = np.array([0.65, 1, 1, 1, 1, 1])
    n = 100000
    X = round_many(y, sizes, 200.0, np.random.default_rng(7), n)
    assert abs(z_scores(X[:, 0].mean(), 0.65, n)) < 3
    assert np.all(X[:, 1:])


def test_large_model_against_many_small_ones_on_a_tight_budget():
    # s.y = b exactly: the small ones must give way to the large one
    sizes = np.array([150.0] + [10.0] * 20)
    y = np.r_[0.65, np.full(20, (200 - 97.5) / 200)]
    assert math.isclose(sizes @ y, 200.0)
    n = 100000
    X = round_many(y, sizes, 200.0, np.random.default_rng(8), n)
    assert np.all(X @ sizes <= 200.0 + 1e-7)
    assert np.all(np.abs(z_scores(X.mean(axis=0), y, n)) < 3.5)
    assert abs(z_scores(X[:, 0].mean(), 0.65, n)) < 3


def test_pairwise_only_would_starve_the_large_model():
    """Why the pool exists: the plain pairwise scheme (large paired with one
    small model at a time, last fractional rounded down) loses most of the
    large model's probability on the tight instance above."""
    y = [0.65] + [(200 - 97.5) / 200] * 20  # sizes 150 and 20 x 10, as above
    rng = np.random.default_rng(3)
    chosen = 0
    for _ in range(2000):
        v = list(y)
        for j in range(1, 21):  # the large one (index 0) against each small j
            into = min(150 * (1 - v[0]), 10 * v[j])
            out = min(150 * v[0], 10 * (1 - v[j]))
            if rng.random() < out / (into + out):
                v[0], v[j] = v[0] + into / 150, v[j] - into / 10
            else:
                v[0], v[j] = v[0] - out / 150, v[j] + out / 10
        chosen += v[0] > 1 - 1e-9
    assert chosen / 2000 < 0.4  # far from 0.65: the failure the pool fixes


def test_everything_fits_gives_exact_marginals():
    sizes = np.array([120.0, 80, 45, 30, 5])
    y = np.array([0.3, 0.9, 0.5, 0.05, 0.7])
    law = exact_distribution(y, sizes, sizes.sum())
    np.testing.assert_allclose(law_marginals(law, 5), y, atol=1e-12)
    X = round_many(y, sizes, sizes.sum(), np.random.default_rng(1), 50000)
    assert np.all(np.abs(z_scores(X.mean(axis=0), y, 50000)) < 3.5)


def test_unreachable_marginals_lose_only_on_the_last_coordinate():
    # no mix of feasible sets has these marginals: {150} or {100, 100}
    sizes, y, budget = [150.0, 100.0, 100.0], [0.5, 0.625, 0.625], 200.0
    assert not feasible_marginals_exist(y, sizes, budget)
    marg = law_marginals(exact_distribution(y, sizes, budget), 3)
    assert marg[0] == pytest.approx(0.5)  # the large model keeps its marginal
    assert np.all(marg <= np.array(y) + 1e-12)


def test_reachable_marginals_with_slack_are_exact():
    sizes, y, budget = [150.0, 100.0, 100.0], [2 / 3, 2 / 3, 2 / 3], 250.0
    assert feasible_marginals_exist(y, sizes, budget)
    np.testing.assert_allclose(law_marginals(exact_distribution(y, sizes, budget), 3), y, atol=1e-12)


def test_models_at_one_are_never_evicted():
    """s.y = b with the small models at 1: the state is sure of them, so they
    stay in every draw and the large one, which cannot fit beside them, is
    rounded down (the documented residual bias). Evicting them instead cost
    INFIDA up to 40% of its gain on small instances: the models at 1 are the
    valuable ones."""
    sizes = np.array([150.0] + [10.0] * 10)
    y = np.r_[0.65, np.ones(10)]
    budget = float(sizes @ y)  # 197.5
    X = round_many(y, sizes, budget, np.random.default_rng(9), 20000)
    assert np.all(X[:, 1:]) and not X[:, 0].any()
    law = law_marginals(exact_distribution([0.8] + [1.0] * 5, sizes[:6], 170.0), 6)
    np.testing.assert_allclose(law, [0.0] + [1.0] * 5)
    # the node INFIDA met: the three models at 1 must always be kept
    sizes = np.array([54.0, 10, 20, 81, 10, 60])
    y = np.array([0.238, 1, 1, 0.238, 1, 0.295])
    budget = float(sizes @ y)
    X = round_many(y, sizes, budget, np.random.default_rng(1), 20000)
    assert np.all(X[:, [1, 2, 4]])
    assert np.all(X @ sizes <= budget + 1e-9)


def test_models_rounded_up_can_make_room_for_the_last_one():
    """Eviction still applies to models that were fractional in y: a large
    last coordinate is not starved by small ones that were only rounded up."""
    sizes, y, budget = [50.0, 10.0, 10.0, 10.0], [0.68, 0.8, 0.8, 0.8], 0.68 * 50 + 24.0
    marg = law_marginals(exact_distribution(y, sizes, budget), 4)
    assert marg[0] == pytest.approx(0.68, abs=1e-9)
    assert np.all(marg <= np.array(y) + 1e-12)
    X = round_many(np.array(y), np.array(sizes), budget, np.random.default_rng(4), 100000)
    np.testing.assert_allclose(X.mean(axis=0), marg, atol=4 * np.sqrt(0.25 / 100000))


def test_eviction_is_skipped_when_it_costs_a_whole_model():
    # equal sizes, b / s not an integer: the half model left over goes down
    sizes, budget = np.full(5, 10.0), 25.0
    y = np.full(5, 0.5)
    law = exact_distribution(y, sizes, budget)
    assert all(sum(x) == 2 for x in law)
    np.testing.assert_allclose(law_marginals(law, 5), 0.4)


def test_slack_is_kept_for_the_models_rounded_last():
    # spending the slack on the 20 MB pivot would leave the 10 MB one short
    sizes, y, budget = [10.0, 20.0], [0.32670463, 0.66805853], 24.89
    np.testing.assert_allclose(law_marginals(exact_distribution(y, sizes, budget), 2), y, atol=1e-12)


def test_loss_is_close_to_the_least_possible_on_random_nodes():
    rng = np.random.default_rng(2024)
    excess, reachable, exact = [], 0, 0
    while len(excess) < 150:
        m = int(rng.integers(2, 6))
        sizes = rng.choice([10.0, 20.0, 35.0, 50.0, 150.0], m)
        budget = float(rng.uniform(0.2, 1.0) * sizes.sum())
        if sizes.max() > budget:
            continue
        y = project_capped_simplex(rng.exponential(size=m) ** 2, sizes, budget)
        if rng.random() < 0.5:
            y = y * rng.uniform(0.5, 1.0)
        marg = law_marginals(exact_distribution(y, sizes, budget), m)
        excess.append((best_mass(y, sizes, budget) - sizes @ marg) / budget)
        if feasible_marginals_exist(y, sizes, budget):
            reachable += 1
            exact += bool(np.abs(marg - y).max() < 1e-9)
    assert min(excess) > -1e-9  # never better than the optimum: the LP is right
    # models at 1 are never evicted (test_models_at_one_are_never_evicted), so a
    # large last coordinate that cannot fit beside them is dropped: that is the
    # MB this costs against the least possible loss, a few percent of b
    assert np.mean(excess) < 0.1
    assert exact >= 0.9 * reachable and reachable >= 20


def test_models_shut_out_by_the_pivot_give_their_mass_first():
    """Two large models that cannot be hosted together: when the larger goes
    in, the pool's share comes first from the other one (its mass would be
    stranded), which keeps the small models' marginals; the fast rounding
    follows the reference there too."""
    sizes = np.array([109.9, 102.8, 20.0, 19.0, 10.0, 9.5, 9.0, 8.5])
    budget = 168.85
    y = project_capped_simplex(np.ones(8), sizes, budget)
    marg = law_marginals(exact_distribution(y, sizes, budget), 8)
    n = 100000
    X = round_many(y, sizes, budget, np.random.default_rng(12), n)
    assert np.all(np.abs(z_scores(X.mean(axis=0), marg, n)) < 4)
    # 21 MB of the 169 are lost (the two cannot both be in), 3.5 MB more than
    # the least possible; sharing in proportion to the caps alone loses 37
    assert sizes @ marg >= best_mass(y, sizes, budget) - 0.03 * budget


def test_budget_never_exceeded_in_1e5_draws():
    rng = np.random.default_rng(11)
    for _ in range(10):
        m = int(rng.integers(3, 30))
        sizes = rng.choice([5.0, 17.3, 44.1, 98.0, 250.7, 533.0], size=m)
        budget = float(rng.uniform(0.1, 0.9) * sizes.sum())
        y = project_capped_simplex(rng.exponential(size=m) ** 3, sizes, budget)
        X = round_many(y, sizes, budget, rng, 10000)
        assert np.all(X @ sizes <= budget + 1e-9 * max(1, budget))


def test_models_larger_than_the_budget_are_never_chosen():
    sizes = np.array([300.0, 50, 50])
    y = np.array([0.2, 0.8, 0.8])  # 60 + 80 = 140 <= 200
    X = round_many(y, sizes, 200.0, np.random.default_rng(0), 20000)
    assert not X[:, 0].any()
    assert np.all(np.abs(z_scores(X[:, 1:].mean(axis=0), y[1:], 20000)) < 3.5)


def test_same_seed_same_draw_and_nodes_match_single_node():
    sizes = np.array([40.0, 40, 90, 10, 10, 25])
    y = project_capped_simplex(np.arange(1.0, 7.0), sizes, 120.0)
    a = round_allocation(y, sizes, 120.0, np.random.default_rng(5))
    b = round_allocation(y, sizes, 120.0, np.random.default_rng(5))
    assert a.dtype == bool and np.array_equal(a, b)
    flat = round_nodes(np.r_[y, y], np.r_[sizes, sizes], [0, 6, 6, 12], [120.0, 0.0, 120.0], np.random.default_rng(5))
    assert flat.shape == (12,) and (flat[:6] @ sizes) <= 120 and (flat[6:] @ sizes) <= 120


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="budget of 10"):
        round_allocation([1.0, 1.0], [10.0, 10.0], 10.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="entry 1"):
        round_allocation([0.5, 1.5], [10.0, 10.0], 30.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="sizes"):
        round_allocation([0.5, 0.5], [10.0, 0.0], 30.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown rounding 'smart'"):
        make_rounding("smart", [10.0], 10.0)


# --------------------------------------------------------- coupled rounding
def drifting_states(sizes, budget, rng, slots, step):
    log_y = rng.normal(size=len(sizes))
    for _ in range(slots):
        log_y = log_y + step * rng.normal(size=len(sizes))
        yield project_capped_simplex(log_y, sizes, budget, log_input=True)


@pytest.mark.parametrize(
    "sizes,budget",
    [([10.0] * 20, 50.0), ([150.0] + [10.0] * 20, 200.0), ([120.0, 80, 80, 60, 45, 45, 30, 20, 20, 10, 5], 260.0)],
)
def test_coupled_rounding_changes_far_less_than_fresh(sizes, budget):
    sizes = np.array(sizes)
    changes = {}
    for name in ("fresh", "coupled"):
        rounding = make_rounding(name, sizes, budget)
        rng = np.random.default_rng(42)
        last, n = None, 0
        for y in drifting_states(sizes, budget, rng, 200, 0.01):
            x = rounding.round(y, rng)
            assert x @ sizes <= budget + 1e-9 * budget
            n += 0 if last is None else int(np.sum(x != last))
            last = x
        changes[name] = n
    assert changes["coupled"] * 5 <= changes["fresh"]


def test_coupled_rounding_marginals_per_slot_over_seeds():
    sizes = np.full(12, 30.0)
    budget = 120.0
    ys = list(drifting_states(sizes, budget, np.random.default_rng(0), 10, 0.05))
    n = 4000
    xs = np.zeros((n, 12))
    for seed in range(n):
        rounding = CoupledRounding(sizes, budget)
        rng = np.random.default_rng(seed)
        for y in ys:
            x = rounding.round(y, rng)
            assert x.sum() == 4
        xs[seed] = x  # the last slot's draw
    assert np.all(np.abs(z_scores(xs.mean(axis=0), ys[-1], n)) < 3.5)


def test_coupled_keeps_x_when_y_is_still_and_many_nodes_work():
    sizes = np.array([40.0, 40, 90, 10, 10, 25, 60, 60])
    off = np.array([0, 4, 8])
    budgets = np.array([70.0, 100.0])
    rng = np.random.default_rng(2)
    y = np.r_[project_capped_simplex(rng.random(4), sizes[:4], 70.0), project_capped_simplex(rng.random(4), sizes[4:], 100.0)]
    coupled = make_rounding("coupled", sizes, budgets, off)
    first = coupled.round(y, rng)
    for _ in range(5):
        assert np.array_equal(coupled.round(y, rng), first)
    fresh = FreshRounding(sizes, budgets, off)
    draws = {tuple(fresh.round(y, rng)) for _ in range(50)}
    assert len(draws) > 1
    for x in draws:
        x = np.array(x)
        assert x[:4] @ sizes[:4] <= 70 and x[4:] @ sizes[4:] <= 100
    refreshed = CoupledRounding(sizes, budgets, off, refresh_every=1)
    assert len({tuple(refreshed.round(y, rng)) for _ in range(50)}) > 1


# ------------------------------------------------ the fast path's plumbing
def test_ties_are_put_in_a_uniformly_random_order():
    """The size order is computed once; each draw shuffles only the runs of
    equal sizes, every order of a run equally likely, runs independent."""
    from idn.policies.infida.rounding_core import _size_order, _tie_order

    sizes = np.array([10.0, 20, 10, 5, 10, 10, 7, 7])  # node 0: five models; node 1: three
    off = np.array([0, 5, 8])
    by_size, run_start = _size_order(sizes, off)
    rng = np.random.default_rng(4)
    n = 60000
    seen: dict[tuple, int] = {}
    order = np.empty(8, np.int64)
    for _ in range(n):
        _tie_order(by_size, run_start, rng.random(8), order)
        # local indices by decreasing size: node 0 is 1, {0, 2, 4}, 3; node 1 is 0, {1, 2}
        assert order[0] == 1 and order[4] == 3 and order[5] == 0
        key = tuple(order[1:4]) + tuple(order[6:8])
        seen[key] = seen.get(key, 0) + 1
    assert len(seen) == 6 * 2
    freq = np.array(list(seen.values())) / n
    assert np.all(np.abs(z_scores(freq, 1 / 12, n)) < 4)


def test_many_nodes_reject_a_bad_state_by_name():
    sizes = np.array([40.0, 60, 30, 30])
    rounding = FreshRounding(sizes, np.array([70.0, 40.0]), np.array([0, 2, 4]))
    rng = np.random.default_rng(0)
    x = rounding.round([0.5, 0.5 + 1e-10, 0.5, 0.5 + 1e-9], rng)  # within the tolerances
    assert x[:2] @ sizes[:2] <= 70 and x[2:] @ sizes[2:] <= 40
    with pytest.raises(ValueError, match="node 1, over its budget of 40"):
        rounding.round([0.5, 0.5, 0.9, 0.5], rng)
    with pytest.raises(ValueError, match="entry 2 is nan"):
        rounding.round([0.5, 0.5, np.nan, 0.5], rng)
    with pytest.raises(ValueError, match="same length"):
        rounding.round([0.5, 0.5, 0.5], rng)
