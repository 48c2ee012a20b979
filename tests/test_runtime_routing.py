"""The serving rule applied live, request by request, node by node, against
the simulator's serve() on the same counts and allocation (no processes)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from idn import serving
from idn.model.scenario import scenario_from_dict
from idn.runtime.routing import Router, SlotCapacity, live_request_types

# Links are long and models differ little, so along every list all entries
# of a nearer node come before those of a farther one: requests only travel
# up, and then the live walk and the simulator's list order must agree.
SCENARIO = {
    "name": "walk",
    "alpha": 0.1,
    "nodes": [
        {"id": "cloud", "tier": "cloud", "repository": True, "workers": 4},
        {"id": "r1", "tier": "regional", "budget_mb": 30, "workers": 3, "speed": 0.5},
        {"id": "e1", "tier": "edge", "budget_mb": 20, "workers": 1, "speed": 0.2},
        {"id": "e2", "tier": "edge", "budget_mb": 20, "workers": 1, "speed": 0.3},
        {"id": "a1", "tier": "access", "budget_mb": 10, "workers": 1, "speed": 0.05},
        {"id": "a2", "tier": "access", "budget_mb": 10, "workers": 1, "speed": 0.04},
        {"id": "a3", "tier": "access", "budget_mb": 10, "workers": 1, "speed": 0.06},
    ],
    "links": [
        {"a": "a1", "b": "e1", "latency_ms": 100}, {"a": "a2", "b": "e1", "latency_ms": 100},
        {"a": "a3", "b": "e2", "latency_ms": 100}, {"a": "e1", "b": "r1", "latency_ms": 100},
        {"a": "e2", "b": "r1", "latency_ms": 100}, {"a": "r1", "b": "cloud", "latency_ms": 100},
    ],
    "tasks": [
        {"id": t, "models": [{"id": f"m{k}", "accuracy": 0.7 + 0.05 * k, "size_mb": 4 + 3 * k, "service_ms": {"cpu": 1.0 + k}}
                             for k in range(3)]}
        for t in ("t0", "t1")
    ],
}  # fmt: skip
IDN = scenario_from_dict(SCENARIO)
RT = live_request_types(IDN)
ROUTERS = [Router(RT, n.id) for n in IDN.nodes]


def _walk(x: np.ndarray, counts: np.ndarray, seed: int) -> np.ndarray:
    """Send every request through the live rule; served count per candidate entry."""
    hosts = x > 0.5
    caps = [SlotCapacity(r) for r in ROUTERS]
    for c in caps:
        c.add_counts(0, np.arange(RT.n_types), counts)  # steady load: slot 1 sees slot 0's counts
    requests = np.repeat(np.arange(RT.n_types), counts.astype(int))
    np.random.default_rng(seed).shuffle(requests)
    served = np.zeros(RT.n_entries)
    for rho in requests:
        j = 0
        while True:
            v = int(RT.path(rho)[j])
            d = ROUTERS[v].decide(rho, hosts, lambda e: caps[v].has_capacity(e, 1))
            if d.serve:
                caps[v].take(d.entry, 1)
                served[d.entry] += 1
                break
            j = d.next_hop
    return served


@st.composite
def _instance(draw):
    x = IDN.permanent.astype(float)
    for v in np.flatnonzero(~IDN.repository):
        room = IDN.budget_mb[v]
        for m in draw(st.permutations(range(IDN.n_models))):
            if draw(st.booleans()) and IDN.size_mb[m] <= room:
                x[v, m], room = 1.0, room - IDN.size_mb[m]
    counts = np.zeros(RT.n_types)
    sources = [IDN.node_index[s] for s in ("a1", "a2", "a3")]
    for rho in np.flatnonzero(np.isin(RT.source, sources)):
        counts[rho] = draw(st.integers(0, 60))
    return x, counts, draw(st.integers(0, 1000))


@settings(max_examples=40, deadline=None)
@given(_instance())
def test_live_walk_serves_what_the_simulator_serves(inst):
    x, counts, seed = inst
    live = _walk(x, counts, seed)
    sim = serving.serve(RT, counts, x).served
    # shares are fractional; a node admits a request while its count is below the share (ceil)
    assert np.all(np.abs(live - sim) <= 1.0 + 1e-9), np.flatnonzero(np.abs(live - sim) > 1)
    for rho in range(RT.n_types):
        sl = RT.entries(rho)
        assert live[sl].sum() == counts[rho]


def test_capacity_binds_per_slot_and_resets():
    x = IDN.permanent.astype(float)
    a1, m = IDN.node_index["a1"], IDN.model_index["t0/m0"]
    x[a1, m] = 1.0
    rho = RT.key_index[("a1", "t0")]
    cap = SlotCapacity(ROUTERS[a1])
    e = next(e for e in range(RT.entries(rho).start, RT.entries(rho).stop) if RT.node[e] == a1)
    limit = int(np.ceil(IDN.capacity[a1, m]))
    assert 0 < limit < 100
    for slot in (0, 1):  # the first slot is one pool; the second has counts to share by
        took = 0
        while cap.has_capacity(e, slot):
            cap.take(e, slot)
            took += 1
            assert took <= 1000
        assert took == limit
        cap.add_counts(slot, np.array([rho]), np.array([float(limit + 5)]))
    assert cap.left(1)[m] == 0.0 and cap.left(2)[m] == IDN.capacity[a1, m]


def test_shares_split_an_edge_between_its_sources():
    """Two sources below one edge, both over its capacity: each gets its
    share L r / sum r, as docs/model.md section 5 says."""
    x = IDN.permanent.astype(float)
    e1, m = IDN.node_index["e1"], IDN.model_index["t1/m0"]
    x[e1, m] = 1.0
    counts = np.zeros(RT.n_types)
    r1, r2 = RT.key_index[("a1", "t1")], RT.key_index[("a2", "t1")]
    L = IDN.capacity[e1, m]
    counts[r1], counts[r2] = round(2 * L), round(L)
    live = _walk(x, counts, seed=3)
    at_edge = (RT.node == e1) & (RT.model == m)
    got1 = live[at_edge & (RT.entry_type == r1)].sum()
    got2 = live[at_edge & (RT.entry_type == r2)].sum()
    want1 = L * counts[r1] / (counts[r1] + counts[r2])
    assert abs(got1 - want1) <= 1 and abs(got2 - (L - want1)) <= 1
