"""The task-grouped rounding (policies/grouped.py, docs/model.md 12.2):
systematic sampling per (node, task) group, then dropping by least y to fit
the budget. Checked against a plain reference of the same law, by its
marginals, and by a live node's slice drawing what the whole network draws
for it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idn.model.scenario import load_scenario
from idn.policies.registry import make_policy
from idn.policies.infida.grouped import GroupedRounding, group_starts
from idn.sim.inputs import count_matrix, default_trace, request_types_for


def _reference(y, sizes, budget, tasks, coins):
    """One node, plainly: per task (in order of first appearance), model j
    drawn when an integer lies in [c_j - u, c_j + y_j - u); then the drawn
    model of least y below 1 dropped (ties: the first) until the draw fits."""
    x = np.zeros(len(y), dtype=bool)
    for g, task in enumerate(dict.fromkeys(tasks)):
        c, u = 0.0, coins[g]
        for j in [j for j in range(len(y)) if tasks[j] == task]:
            if y[j] >= 1 - 1e-12:
                x[j] = True
            elif y[j] > 1e-12:
                x[j] = math.floor(c + y[j] - u) > math.floor(c - u)
                c += y[j]
    while sizes[x].sum() > budget + 1e-9 * max(1.0, budget):
        held = [j for j in np.flatnonzero(x) if y[j] < 1 - 1e-12] or list(np.flatnonzero(x))
        x[min(held, key=lambda j: (y[j], j))] = False
    return x


@st.composite
def node_cases(draw):
    n = draw(st.integers(1, 9))
    tasks = sorted(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    sizes = np.array(draw(st.lists(st.floats(0.5, 20.0), min_size=n, max_size=n)))
    y = np.array(draw(st.lists(st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0)), min_size=n, max_size=n)))
    budget = float(max(draw(st.floats(0.3, 1.5)) * (sizes * y).sum(), (sizes * y).sum()))  # the relaxation fits
    return y, sizes, budget, np.array(tasks)


@settings(max_examples=200, deadline=None)
@given(case=node_cases(), seed=st.integers(0, 10**6))
def test_grouped_rounding_is_the_reference_law_and_fits_the_budget(case, seed):
    y, sizes, budget, tasks = case
    r = GroupedRounding(sizes, [budget], [0, len(y)], np.zeros(len(y), int), tasks)
    x = r.round(y, np.random.default_rng(seed))
    assert np.array_equal(x, _reference(y, sizes, budget, tasks, r._coins))
    assert sizes[x].sum() <= budget + 1e-9 * max(1.0, budget)
    assert np.all(x[(y >= 1 - 1e-12) & (sizes[y >= 1 - 1e-12].sum() <= budget)] if (y >= 1 - 1e-12).any() else True)
    assert not np.any(x[y <= 1e-12])


def test_with_room_for_every_draw_the_marginals_are_exact_and_a_task_gets_floor_or_ceil_of_its_sum():
    y = np.array([0.4, 0.35, 0.25, 0.7, 0.5, 1.0])
    tasks = np.array([0, 0, 0, 1, 1, 2])
    sizes = np.array([9.0, 3.0, 1.0, 5.0, 2.0, 4.0])
    r = GroupedRounding(sizes, [sizes.sum()], [0, 6], np.zeros(6, int), tasks)
    rng = np.random.default_rng(0)
    draws = np.array([r.round(y, rng) for _ in range(40000)])
    np.testing.assert_allclose(draws.mean(axis=0), y, atol=0.01)
    assert np.all(draws[:, :3].sum(axis=1) == 1)  # task 0: sum y = 1, exactly one model, never two or none
    assert set(draws[:, 3:5].sum(axis=1)) == {1, 2}  # task 1: sum y = 1.2
    assert draws[:, 5].all()


def test_a_tight_budget_drops_the_least_sure_model():
    y = np.array([0.5, 0.5, 1.0])
    tasks = np.array([0, 1, 2])
    sizes = np.array([4.0, 4.0, 2.0])  # s.y = 6: one of the halves fits beside the sure model, not both
    r = GroupedRounding(sizes, [6.0], [0, 3], np.zeros(3, int), tasks)
    rng = np.random.default_rng(1)
    draws = np.array([r.round(y, rng) for _ in range(2000)])
    assert draws[:, 2].all()
    assert (draws @ sizes <= 6.0 + 1e-9).all()


def test_coordinates_out_of_task_order_are_refused():
    with pytest.raises(ValueError, match="task order"):
        group_starts(np.array([0, 0, 0]), np.array([1, 0, 1]))


def test_a_live_slice_draws_what_the_whole_network_draws_for_its_nodes():
    """Infida.start_nodes on each cache node alone, fed that node's slice of
    the supergradient, proposes every slot exactly the whole-network run's
    row for it (grouped rounding, fresh and coupled)."""
    idn = load_scenario("examples/tiny.yaml")
    trace = default_trace(idn, 12, 3)
    rt = request_types_for(idn, trace)
    counts = count_matrix(rt, trace, 12)
    from idn import serving

    for rounding in ("fresh", "coupled"):
        whole = make_policy("infida", rounding=rounding).start(rt, 5)
        caches = [v for v in range(idn.n_nodes) if not idn.repository[v] and idn.fits[v].any()]
        parts = {v: make_policy("infida", rounding=rounding).start_nodes(idn, [v], seed=5) for v in caches}
        for t in range(12):
            want = whole.propose()
            for v, p in parts.items():
                assert np.array_equal(p.propose()[v] > 0.5, want[v] > 0.5), (rounding, t, v)
            share = serving.capacity_share(rt, counts[t])
            g = whole._supergradient(np.ascontiguousarray(counts[t], dtype=float), share)
            whole.learn_supergradient(g)
            for v, p in parts.items():
                local = np.zeros(p.y.size)
                whole_pos = whole.free_index(v)
                for m, local_pos in p.free_index(v).items():
                    local[local_pos] = g[whole_pos[m]]
                p.learn_supergradient(local)
