"""INFIDA's tracking rule (``learning: tracking``, docs/model.md section
12.5): the fast step against a plain one-node reference, its invariants
(every expert and the played state in Y_v, the share's floor, Hedge weights
on the simplex), a node's slice against the whole network, and dynamic
regret against a moving optimum that stays sublinear where today's rule's
does not."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idn import serving
from idn.model.request_types import build_request_types
from idn.policies.infida.policy import Infida
from idn.policies.infida.tracking import Tracker

import reference as ref

DEFAULTS = dict(horizons=[4, 16, 64], static_expert=True, eta_scale=5.0, share=1e-3, meta_scale=3.0)


def flat_nodes(sizes_per_node, budgets):
    """A NodeStates-shaped layout for arbitrary sizes and budgets."""
    sizes = np.concatenate([np.asarray(s, float) for s in sizes_per_node])
    counts = [len(s) for s in sizes_per_node]
    node = np.repeat(np.arange(len(counts)), counts)
    total = np.bincount(node, sizes, len(counts))
    b = np.minimum(np.asarray(budgets, float), total)
    log_ratio = np.log(np.where(b > 0, total / np.where(b > 0, b, 1), 1.0))
    u = np.minimum(1.0, np.where(total > 0, b / total, 0.0))[node]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return SimpleNamespace(sizes=sizes, offsets=offsets, budgets=b, node=node, log_ratio=log_ratio, uniform=lambda: u.copy())


@st.composite
def problems(draw):
    n_nodes = draw(st.integers(1, 3))
    sizes = [draw(st.lists(st.floats(1.0, 300.0), min_size=1, max_size=7)) for _ in range(n_nodes)]
    budgets = [draw(st.floats(0.05, 1.2)) * sum(s) for s in sizes]
    slots = draw(st.integers(1, 14))
    seed = draw(st.integers(0, 2**31))
    hint = draw(st.sampled_from(["none", "recent", "periodic"]))
    window = draw(st.integers(1, 4))
    period = draw(st.integers(window, 6))
    horizons = draw(st.sampled_from([[4, 16, 64, 256], [1], [2, 50]]))
    static = draw(st.booleans())
    share = draw(st.sampled_from([0.0, 1e-3, 0.05]))
    return sizes, budgets, slots, seed, hint, window, period, horizons, static, share


def _tracker(problem):
    """(the problem's rng, its nodes, a Tracker on them with the problem's parameters)."""
    sizes, budgets, _, seed, hint, window, period, horizons, static, share = problem
    nodes = flat_nodes(sizes, budgets)
    tracker = Tracker(nodes, horizons, static, DEFAULTS["eta_scale"], share, DEFAULTS["meta_scale"], hint, window, period)
    return np.random.default_rng(seed), nodes, tracker


@given(problems())
@settings(max_examples=60, deadline=None)
def test_the_fast_step_is_the_plain_reference_node_by_node(problem):
    sizes, budgets, slots, seed, hint, window, period, horizons, static, share = problem
    rng, nodes, fast = _tracker(problem)
    kw = DEFAULTS
    plain = [ref.TrackingNode(s, b, horizons, static, kw["eta_scale"], share, kw["meta_scale"], hint, window, period)
             for s, b in zip(sizes, budgets)]  # fmt: skip
    for _ in range(slots):
        # gains of a few sizes, some coordinates 0 (models nobody asked for)
        g = rng.exponential(50.0, nodes.sizes.size) * (rng.random(nodes.sizes.size) < 0.7)
        y = fast.step(g)
        for v, node in enumerate(plain):
            a, e = nodes.offsets[v], nodes.offsets[v + 1]
            want = node.step(list(g[a:e]))
            np.testing.assert_allclose(y[a:e], want, rtol=1e-7, atol=1e-10)


@given(problems())
@settings(max_examples=60, deadline=None)
def test_experts_and_the_played_state_stay_in_the_budget_polytope_above_the_floor(problem):
    slots, share = problem[2], problem[9]
    rng, nodes, tr = _tracker(problem)
    u = nodes.uniform()
    for _ in range(slots):
        y = tr.step(rng.exponential(50.0, nodes.sizes.size) * 10.0 ** rng.integers(-3, 4))
        w = tr.weights(tr.hint_gains)
        np.testing.assert_allclose(w.sum(axis=0), 1.0, rtol=1e-12)
        assert np.all(w >= 0)
        for state in (*tr.lazy, *tr.points, y):
            assert np.all(state >= 0) and np.all(state <= 1 + 1e-12)
            used = np.bincount(nodes.node, nodes.sizes * state, len(nodes.budgets))
            np.testing.assert_allclose(used, nodes.budgets, rtol=1e-9, atol=1e-9)
            # the share's floor: share * u, whatever the supergradients did
            assert np.all(state >= share * u * (1 - 1e-9) - 1e-15)


def _instance(seed, slots=30):
    rng = np.random.default_rng(seed)
    idn = ref.random_idn(rng, n_nodes=6, n_tasks=3, models_per_task=3)
    idn = ref.tighten_budgets(idn, rng)
    rt = build_request_types(idn)
    counts = rng.poisson(rng.uniform(1, 40, rt.n_types), (slots, rt.n_types)).astype(float)
    return idn, rt, counts


@pytest.mark.parametrize("hint", ["recent", "periodic"])
def test_a_nodes_slice_steps_as_the_whole_network_does(hint):
    """What live INFIDA relies on: node v's step reads only g_v and its own state."""
    idn, rt, counts = _instance(3)
    params = dict(hint=hint, hint_period=7 if hint == "periodic" else None, hint_window=3)
    whole = Infida(**params).start(rt, seed=0)
    slices = {v: Infida(**params).start_nodes(idn, [v], seed=0) for v in range(idn.n_nodes)}
    for t in range(counts.shape[0]):
        share = serving.capacity_share(rt, counts[t])
        g = whole._supergradient(np.ascontiguousarray(counts[t]), share)
        whole.learn_supergradient(g)
        for v, part in slices.items():
            a, e = whole.nodes.offsets[v], whole.nodes.offsets[v + 1]
            part.learn_supergradient(g[a:e])
            np.testing.assert_array_equal(part.y, whole.y[a:e])
            np.testing.assert_array_equal(part.x[v], whole.x[v])


def test_learning_static_is_todays_rule_and_the_tracker_with_its_expert_alone():
    idn, rt, counts = _instance(5, slots=8)
    assert Infida().params["learning"] == "tracking"
    static = Infida(learning="static").start(rt, seed=0)
    assert static.tracker is None
    alone = Tracker(static.nodes, [], True, 5.0, 0.0, 3.0, "none", 10, None)
    for t in range(8):
        share = serving.capacity_share(rt, counts[t])
        g = static._supergradient(np.ascontiguousarray(counts[t]), share)
        y_alone = alone.step(g)
        static.learn_supergradient(g)
        np.testing.assert_allclose(y_alone, static.y, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"eta": 0.1}, "eta fixes one rate"),
        ({"hint": "periodic"}, "needs hint_period"),
        ({"hint": "periodic", "hint_period": 5, "hint_window": 10}, "needs hint_period"),
        ({"horizons": [16, 4]}, "strictly rising"),
        ({"horizons": []}, "strictly rising"),
        ({"share": 0.9}, "share"),
        ({"learning": "fast"}, "learning"),
        ({"share": float("nan")}, "parameter share"),
        ({"meta_scale": float("inf")}, "parameter meta_scale"),
        ({"meta_scale": 0}, "parameter meta_scale"),
        ({"hint_window": 0}, "parameter hint_window"),
        ({"hint_window": 2.5}, "parameter hint_window"),
        ({"horizons": [4, float("inf")]}, "parameter horizons"),
        ({"horizons": "4,16"}, "parameter horizons"),
        ({"hint": "yesterday"}, "parameter hint"),
        ({"static_expert": 1}, "parameter static_expert"),
    ],
)
def test_bad_tracking_parameters_are_one_clear_line(params, message):
    with pytest.raises(ValueError, match=message):
        Infida(**params)


# ---- dynamic regret on a drifting instance --------------------------------------------
def drifting_gains(T: int, n_models: int, seed: int):
    """Linear gains on one node whose best models change K = ceil(T^(1/3))
    times (each epoch a fresh random ranking, Poisson-noisy counts): the
    moving optimum's path length grows like T^(1/3), so a tracking rule's
    dynamic regret O(sqrt(T (1 + P_T))) = O(T^(2/3)) is sublinear."""
    rng = np.random.default_rng(seed)
    epochs = math.ceil(T ** (1 / 3))
    bounds = np.linspace(0, T, epochs + 1).astype(int)
    g = np.zeros((T, n_models))
    for a, b in zip(bounds[:-1], bounds[1:]):
        mean = 100.0 * (np.arange(1, n_models + 1) ** -1.2)[rng.permutation(n_models)]
        g[a:b] = rng.poisson(mean, (b - a, n_models))
    return g, bounds


def best_in_polytope(c, sizes, budget):
    """argmax of c.y over {y in [0,1]^n : s.y = b}: a fractional knapsack, by c/s."""
    y = np.zeros(c.size)
    left = budget
    for m in np.argsort(-c / sizes, kind="stable"):
        take = min(1.0, left / sizes[m])
        y[m] = take
        left -= take * sizes[m]
        if left <= 0:
            break
    return y


def dynamic_regret(T: int, learning: str, seed: int) -> float:
    sizes = np.array([10.0, 20.0, 15.0, 30.0, 10.0, 25.0, 12.0, 18.0])
    budget = 40.0
    g, bounds = drifting_gains(T, sizes.size, seed)
    nodes = flat_nodes([sizes], [budget])
    comparator = np.zeros(T)  # the moving optimum: each epoch's best fixed state, in hindsight
    for a, b in zip(bounds[:-1], bounds[1:]):
        u = best_in_polytope(g[a:b].sum(axis=0), sizes, budget)
        comparator[a:b] = g[a:b] @ u
    if learning == "tracking":
        tr = Tracker(nodes, **DEFAULTS, hint="recent", hint_window=10, hint_period=None)
    else:  # today's rule alone: one expert with the 1/sqrt(t) rate, no share, no hint
        tr = Tracker(nodes, [], True, 5.0, 0.0, 3.0, "none", 10, None)
    y = tr.play()
    earned = 0.0
    for t in range(T):
        earned += g[t] @ y
        y = tr.step(g[t])
    return float(comparator.sum() - earned)


def test_dynamic_regret_against_the_moving_optimum_is_sublinear():
    horizons = (250, 1000, 4000)
    per_slot = {learning: [np.mean([dynamic_regret(T, learning, s) / T for s in range(3)]) for T in horizons]
                for learning in ("tracking", "static")}  # fmt: skip
    track, static = per_slot["tracking"], per_slot["static"]
    # sublinear: the dynamic regret per slot falls as T grows, roughly like T^(-1/3) (x 0.63 per x4 of T)
    assert track[0] > track[1] > track[2] > 0
    assert track[2] < 0.75 * track[0]
    # today's rule (static regret, step ~ 1/sqrt t) does not track: per slot it does not fall, and is larger
    assert static[2] > 2 * track[2]


def drifting_idn(T: int, seed: int):
    """A small random IDN (tight budgets) whose task popularity (Zipf 1.5) is
    reshuffled K = ceil(T^(1/3)) times: (request types, counts, epoch bounds)."""
    rng = np.random.default_rng(seed)
    idn = ref.random_idn(np.random.default_rng(100 + seed), n_nodes=6, n_tasks=3, models_per_task=3)
    idn = ref.tighten_budgets(idn, np.random.default_rng(200 + seed))
    rt = build_request_types(idn)
    bounds = np.linspace(0, T, math.ceil(T ** (1 / 3)) + 1).astype(int)
    counts = np.zeros((T, rt.n_types))
    for a, b in zip(bounds[:-1], bounds[1:]):
        popularity = (np.arange(1, len(idn.tasks) + 1) ** -1.5)[rng.permutation(len(idn.tasks))]
        counts[a:b] = rng.poisson(60 * popularity[rt.task], (b - a, rt.n_types))
    return rt, counts, bounds


def test_on_an_idn_the_relaxed_dynamic_regret_against_each_epochs_optimum_is_sublinear():
    """The policy itself, on the concave relaxation: the comparator is each
    epoch's best static state in hindsight (the static LP of the epoch's
    slots), the moving optimum with K switches; per slot the dynamic regret
    of the played states falls as T grows."""
    from idn.upper_bounds.lp import static_lp_bound

    per_slot = []
    for T in (150, 600, 2400):
        regrets = []
        for seed in range(2):
            rt, counts, bounds = drifting_idn(T, seed)
            best = sum(static_lp_bound(rt, counts[a:b])[0] for a, b in zip(bounds[:-1], bounds[1:]))
            policy = Infida().start(rt, seed=seed)
            earned = 0.0
            for t in range(T):
                share = serving.capacity_share(rt, counts[t])
                earned += serving.gain(rt, counts[t], policy.state(), share)
                policy.learn(counts[t], share)
            regrets.append((best - earned) / T)
        per_slot.append(np.mean(regrets))
    assert per_slot[0] > per_slot[1] > per_slot[2] > 0, per_slot
    assert per_slot[2] < 0.4 * per_slot[0], per_slot
