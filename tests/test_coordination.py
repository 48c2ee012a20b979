"""INFIDA's path-coordinated draws (policies/infida/coordination.py): each
group's offset against a plain loop over the paths, a live node's offsets
from its protocol lists against the simulator's to the bit, and what the
shared uniform does on one path (never both copies, the relaxation's
"neither") while each group's marginals stay the grouped rounding's."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idn import serving
from idn.policies.infida.coordination import fractional, group_offsets, offsets_from_lists
from idn.policies.infida.grouped import GroupedRounding
from idn.policies.infida.messages import upward

from test_fill_marginal import _learned as fill_instance

seeds = st.integers(0, 2**32 - 1)


def _learned(seed):
    """A random IDN with tight budgets, INFIDA a few slots in, a slot's counts
    (test_fill_marginal's instance, some types without requests)."""
    _, idn, rt, counts, _, policy, _ = fill_instance(seed)
    return idn, rt, counts, policy


@given(seeds)
@settings(max_examples=40, deadline=None)
def test_group_offsets_equal_a_plain_loop_over_the_paths(seed):
    idn, rt, counts, policy = _learned(seed)
    y = policy.state()  # (V, M), the state the slot's messages carry
    got = group_offsets(policy._path_layout, policy.y, counts > 0)
    want = np.full(got.size, np.nan)
    for rho in range(rt.n_types):  # types in order: the lowest active type listing a group sets its offset
        if counts[rho] <= 0:
            continue
        entries = [(int(rt.node[e]), int(rt.model[e]), int(rt.hop[e])) for e in range(rt.offsets[rho], rt.offsets[rho + 1] - 1)]
        for v, _, h in entries:
            g = int(policy._group_of[v, int(rt.task[rho])])
            if g < 0 or not np.isnan(want[g]):
                continue
            want[g] = sum(y[u, m] for u, m, k in entries if k > h and 1e-12 < y[u, m] < 1 - 1e-12)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-12, atol=1e-12)


@given(seeds)
@settings(max_examples=30, deadline=None)
def test_a_node_computes_its_offsets_from_its_lists_exactly_as_the_simulator(seed):
    idn, rt, counts, policy = _learned(seed)
    share = serving.capacity_share(rt, counts)
    y_dense = policy.state()
    sim = group_offsets(policy._path_layout, policy.y, counts > 0)
    for v in range(idn.n_nodes):
        groups = policy._group_of[v]
        if not np.any(groups >= 0):
            continue
        down, position = {}, np.full(rt.n_types, -1)
        for rho in range(rt.n_types):
            path = [int(u) for u in rt.path(rho)]
            if v in path:
                position[rho] = path.index(v)
            if counts[rho] > 0 and v in path:
                # what node v's downward messages carry: each type's whole list, its fallback aside (runtime/control.py)
                _, collected = upward(rt, rho, float(counts[rho]), share, lambda u: y_dense[u])
                down[rho] = {"requests": float(counts[rho]), "entries": [c for c in collected if np.isfinite(c[4])]}
        entry_of = {rho: {(int(rt.node[e]), int(rt.model[e])): e for e in range(rt.offsets[rho], rt.offsets[rho + 1])}
                    for rho in down}  # fmt: skip
        own = {int(k): int(groups[k]) for k in np.flatnonzero(groups >= 0)}
        live = offsets_from_lists(down, entry_of, position, rt.task, own, policy.rounding.n_groups)
        mine = list(own.values())
        np.testing.assert_array_equal(live[mine], sim[mine])  # to the bit: the same sums in the same order


def _two_on_a_path(y_edge, y_regional):
    """Node 0 (edge) below node 1 (regional), one task, one 1 MB model each, room for it."""
    return GroupedRounding(np.ones(2), np.array([1.0, 1.0]), np.array([0, 1, 2]), np.array([0, 1]), np.array([0, 0])), \
        np.array([y_edge, y_regional])  # fmt: skip


def test_on_a_path_the_shared_uniform_never_draws_both_and_misses_as_the_relaxation():
    rounding, y = _two_on_a_path(0.4, 0.5)
    rng = np.random.default_rng(7)
    n = 20000
    both = neither = 0
    for _ in range(n):
        x = rounding.round(y, rng, np.array([0.5, 0.0]))  # the edge's window starts where the regional's ends
        both += bool(x[0] and x[1])
        neither += bool(not x[0] and not x[1])
    assert both == 0  # disjoint windows: one copy is never wasted
    assert abs(neither / n - 0.1) < 0.01  # 1 - (0.4 + 0.5), as the relaxation counts the path
    both = neither = 0
    for _ in range(n):
        x = rounding.round(y, rng)  # independent uniforms: 0.2 and 0.3
        both += bool(x[0] and x[1])
        neither += bool(not x[0] and not x[1])
    assert abs(both / n - 0.2) < 0.01 and abs(neither / n - 0.3) < 0.01


@given(st.floats(0.01, 0.99), st.floats(0.01, 0.99), st.floats(0.0, 5.0))
@settings(max_examples=20, deadline=None)
def test_each_groups_marginal_stays_its_state_whatever_the_offset(y_edge, y_regional, offset):
    rounding, y = _two_on_a_path(y_edge, y_regional)
    rng = np.random.default_rng(11)
    draws = np.array([rounding.round(y, rng, np.array([offset, np.nan])) for _ in range(4000)])
    np.testing.assert_allclose(draws.mean(axis=0), y, atol=0.035)  # 4000 draws: sd <= 0.008


def test_fractional_keeps_only_what_a_draw_spreads():
    assert fractional(np.array([0.0, 1e-13, 0.3, 1.0 - 1e-13, 1.0])).tolist() == [0.0, 0.0, 0.3, 0.0, 0.0]


def test_a_coupled_run_resumes_with_its_task_uniforms(tmp_path):
    """The coupled rounding keeps its task uniforms across a checkpoint
    (``rounding._task_coins`` in ``Infida.state_attrs``): on a tight tree
    where the coordinated draw differs from independent ones, a resumed run
    ends exactly as the uninterrupted one."""
    from idn.model.scenario import scenario_from_dict
    from idn.sim import checkpoint as ckpt
    from idn.sim.inputs import count_matrix, default_trace, request_types_for
    from idn.policies.registry import make_policy
    from idn.sim.loop import run_policy

    tree = {"name": "tight-tree", "topology": {"tiered_tree": {"regional": 1, "edge_per_regional": 2, "access_per_edge": 3}},
            "tasks": {"generate": {"count": 8, "models_per_task": [2, 3], "seed": 1}},
            "workload": {"kind": "stationary", "rate": 20, "zipf": 0.8}}  # fmt: skip
    idn = scenario_from_dict(tree).with_changes(budget_scale=0.3)
    spec = {"kind": "shifting", "rate": 40, "zipf": 1.2, "period": 6, "mode": "reshuffle"}
    trace = default_trace(idn, 40, 5, spec)
    rt = request_types_for(idn, trace)
    counts = count_matrix(rt, trace)
    ref = run_policy(rt, make_policy("infida", rounding="coupled"), counts, seed=2)
    alone = run_policy(rt, make_policy("infida", rounding="coupled", coordination="none"), counts, seed=2)
    assert not ref.slots["gain"].equals(alone.slots["gain"])  # the coordinated draws matter here

    class Interrupt(Exception):
        pass

    def stop(done, _total):
        if done == 23:
            raise Interrupt

    path = tmp_path / ckpt.NAME
    with pytest.raises(Interrupt):
        run_policy(rt, make_policy("infida", rounding="coupled"), counts, seed=2, checkpoint=path, checkpoint_every=5,
                   on_slot=stop)  # fmt: skip
    got = run_policy(rt, make_policy("infida", rounding="coupled"), counts, seed=2, checkpoint=path, checkpoint_every=5)
    np.testing.assert_array_equal(got.slots["gain"].to_numpy(), ref.slots["gain"].to_numpy())
    np.testing.assert_array_equal(got.final_allocation, ref.final_allocation)
