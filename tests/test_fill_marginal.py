"""INFIDA's ``marginal`` fill (policies/infida/fill.py): the room a draw
leaves is filled by what each model would add beside the node's own draw.
The fast kernel against the plain supergradient of tests/reference.py, the
live node's computation from its lists against the simulator's, and a node
where the two fill orders must choose differently."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from idn import serving
from idn.model.request_types import build_request_types
from idn.policies.infida.fill import fill_leftover, has_room, marginal_terms
from idn.policies.infida.messages import upward
from idn.policies.infida.policy import Infida
from idn.runtime.control import fill_terms_from_lists

import reference as ref

seeds = st.integers(0, 2**32 - 1)


def _learned(seed):
    """A random IDN with tight budgets, INFIDA a few slots in, a fresh draw."""
    rng = np.random.default_rng(seed)
    idn = ref.tighten_budgets(ref.random_idn(rng, n_nodes=int(rng.integers(2, 7)), n_tasks=int(rng.integers(1, 4))), rng)
    rt = build_request_types(idn)
    counts = rng.poisson(rng.uniform(0, 60, rt.n_types)).astype(float)
    counts[rng.random(rt.n_types) < 0.2] = 0.0
    policy = Infida().start(rt, seed=int(rng.integers(1000)))
    for _ in range(3):
        c = rng.poisson(20, rt.n_types).astype(float)
        policy.learn(c, serving.capacity_share(rt, c))
    share = serving.capacity_share(rt, counts)
    x = policy.rounding.round(policy.y, rng)
    return rng, idn, rt, counts, share, policy, x


def _with_terms(seed):
    """_learned, plus the nodes with room in the draw and the fast kernel's terms."""
    _, idn, rt, counts, share, policy, x = _learned(seed)
    n = policy.nodes
    room = has_room(x, n.sizes, n.offsets, n.budgets)
    fast = marginal_terms(rt.offsets, policy._entry_index, rt.cost, share, counts, policy.y, x, policy._entry_node,
                          rt.path_offsets, rt.path_nodes, room)  # fmt: skip
    return idn, rt, counts, share, policy, x, room, fast


@given(seeds)
@settings(max_examples=40, deadline=None)
def test_marginal_terms_equal_the_plain_supergradient_at_each_nodes_own_draw(seed):
    idn, rt, counts, share, policy, x, room, fast = _with_terms(seed)
    n = policy.nodes
    lists = ref.candidate_lists(idn, idn.sources)
    if [len(c) for _, _, c in lists] != list(rt.list_length):
        return  # the brute-force lists break a latency tie differently (see test_serving)
    share_ref = ref.shares(lists, counts)
    y_dense, x_dense = n.dense(policy.y), n.dense(x.astype(float))
    for v in range(idn.n_nodes):
        a, e = n.offsets[v], n.offsets[v + 1]
        if not room[v]:
            assert np.all(fast[a:e] == 0.0)
            continue
        mixed = y_dense.copy()
        mixed[v] = x_dense[v]  # node v at its draw, every other node at its state
        g = np.array(ref.supergradient(lists, counts, share_ref, mixed.tolist(), idn.n_nodes, idn.n_models))
        np.testing.assert_allclose(fast[a:e], g[v][n.mask[v]], rtol=1e-9, atol=1e-9)


@given(seeds)
@settings(max_examples=30, deadline=None)
def test_a_node_computes_its_fill_terms_from_its_lists_exactly_as_the_simulator(seed):
    idn, rt, counts, share, policy, x, room, fast = _with_terms(seed)
    n = policy.nodes
    y_dense = n.dense(policy.y)
    for v in np.flatnonzero(room):
        # what node v's downward messages carry: each type's whole list, its fallback aside (runtime/control.py)
        down = {}
        for rho in range(rt.n_types):
            if counts[rho] > 0 and v in rt.path(rho):
                _, collected = upward(rt, rho, float(counts[rho]), share, lambda u: y_dense[u])
                down[rho] = {"requests": float(counts[rho]), "entries": [c for c in collected if np.isfinite(c[4])]}
        entry_of = {rho: {(int(rt.node[e]), int(rt.model[e])): e for e in range(rt.offsets[rho], rt.offsets[rho + 1])}
                    for rho in down}  # fmt: skip
        free = policy.free_index(int(v))
        terms = fill_terms_from_lists(rt, int(v), down, entry_of, free)
        a, e = n.offsets[v], n.offsets[v + 1]
        x_slice = np.zeros(x.size)
        x_slice[a:e] = x[a:e]
        got = terms(x_slice, room)
        np.testing.assert_array_equal(got[a:e], fast[a:e])


def test_the_marginal_fill_takes_what_the_draw_lacks_the_state_fill_a_copy():
    """One node, budget 2 MB of 1 MB models. Task 0's requests are all served
    by model 0, which the draw holds; model 1 (task 0 too, y = 0.5) would add
    nothing, model 2 (task 1, y = 0.1) would serve task 1's 10 requests at
    cost 1 instead of the repository's 10."""
    offsets = np.array([0, 3, 5])
    cost = np.array([1.0, 2.0, 10.0, 1.0, 10.0])  # type 0: models 0, 1, fallback; type 1: model 2, fallback
    pair = np.array([0, 1, 0, 2, 0])
    entry_node = np.array([0, 0, -1, 0, -1])
    share = np.array([10.0, 10.0, np.inf, 10.0, np.inf])
    counts = np.array([10.0, 10.0])
    y = np.array([1.0, 0.5, 0.1])
    x = np.array([True, False, False])
    sizes, node_offsets, budgets = np.ones(3), np.array([0, 3]), np.array([2.0])
    room = has_room(x, sizes, node_offsets, budgets)
    assert room.tolist() == [True]
    path_offsets, path_nodes = np.array([0, 1, 2]), np.array([0, 0])  # both types' path: the node
    terms = marginal_terms(offsets, pair, cost, share, counts, y, x, entry_node, path_offsets, path_nodes, room)
    assert terms.tolist() == [0.0, 0.0, 90.0]
    by_marginal = fill_leftover(x, terms / sizes, y, sizes, node_offsets, budgets)
    by_state = fill_leftover(x, y, np.zeros(3), sizes, node_offsets, budgets)
    assert by_marginal.tolist() == [True, False, True]
    assert by_state.tolist() == [True, True, False]
    # and by the objective itself: the marginal fill's allocation gains 90 more
    gain = [sum(c * (cost[offsets[t + 1] - 1] - min([cost[k] for k in range(offsets[t], offsets[t + 1] - 1)
                                                      if alloc[pair[k]]] + [cost[offsets[t + 1] - 1]]))
                for t, c in enumerate(counts)) for alloc in (by_marginal, by_state)]  # fmt: skip
    assert gain[0] - gain[1] == 90.0


@given(seeds)
@settings(max_examples=25, deadline=None)
def test_every_fill_keeps_the_budget_and_never_loses_gain(seed):
    idn, rt, counts, share, policy, x, room, terms = _with_terms(seed)
    n = policy.nodes
    filled = fill_leftover(x, terms / n.sizes, policy.y, n.sizes, n.offsets, n.budgets)
    assert np.all(filled[x])  # only adds
    used = np.bincount(n.node, n.sizes * filled, idn.n_nodes)
    assert np.all(used <= n.budgets * (1 + 1e-12) + 1e-12)
    assert not has_room(filled, n.sizes, n.offsets, n.budgets).any()  # nothing that fits is left out
    before = serving.gain(rt, counts, n.dense(x.astype(float)), share)
    after = serving.gain(rt, counts, n.dense(filled.astype(float)), share)
    assert after >= before - 1e-9
