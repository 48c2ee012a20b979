"""INFIDA's distributed form (design page, section 8 step 5): the control
message of one request type, going up its path and back, from which every
node computes its own supergradient terms with only local state.

A message is a plain dict of lists and numbers (JSON-serializable as is), so
the live runtime can send it over the network unchanged. The simulator does
the same arithmetic in one vectorized pass (:mod:`idn.serving`); the tests
check that both give the same numbers.

Protocol for request type rho with path p_1..p_J, r requests in the slot:
1. upward, p_j -> p_{j+1}: each node appends, for each of its candidate
   entries of rho, (node, model, hop, cost, share l, state y);
2. at p_J, the list is sorted by the candidate order, the running sum of l*y
   is formed, and the cut-off position k* (first k with sum_{k'<=k} l y >= r)
   and its cost C^{k*} are found;
3. downward, p_J -> p_1: the message carries (r, k* key, C^{k*}); node v adds
   l^k (C^{k*} - C^k) to g_{v,m} for each of its entries before k*.
That is 2(J - 1) messages a slot per request type with requests.
"""

from __future__ import annotations

import numpy as np

from ...model.request_types import RequestTypes

FLOAT_BYTES = 8
ENTRY_FIELDS = 6  # node, model, hop, cost, share, y
HEADER_FIELDS = 3  # request type, requests, sender


def node_entries(rt: RequestTypes, rho: int, node: int) -> np.ndarray:
    """Positions (into the flat entry arrays) of rho's candidates hosted at node."""
    sl = rt.entries(rho)
    return sl.start + np.flatnonzero(rt.node[sl] == node)


def upward(rt: RequestTypes, rho: int, requests: float, share: np.ndarray, y_of_node) -> list[dict]:
    """The messages p_1 -> p_2 -> ... -> p_J; each carries all entries so far.
    y_of_node(v) is node v's local state (a vector over models)."""
    path = rt.path(rho)
    collected: list[list] = []
    messages = []
    for j, v in enumerate(path):
        y_v = y_of_node(int(v))
        for e in node_entries(rt, rho, int(v)):
            m = int(rt.model[e])
            collected.append([int(v), m, int(rt.hop[e]), float(rt.cost[e]), float(share[e]), float(y_v[m])])
        if j + 1 < len(path):
            messages.append({"type": rho, "requests": float(requests), "sender": int(v), "entries": [list(c) for c in collected]})
    return messages, collected


def cutoff(requests: float, entries: list[list]) -> dict:
    """At the repository: sort, running sum of l*y, cut-off k* and C^{k*}.
    Ties in cost go to the nearer node, then the lower model id (section 4)."""
    order = sorted(entries, key=lambda c: (c[3], c[2], c[1]))
    cum = 0.0
    last = len(order) - 1
    kstar = last
    for k in range(last):
        cum += order[k][4] * order[k][5]
        if cum >= requests:
            kstar = k
            break
    node, model, hop, cost, _, _ = order[kstar]
    return {"requests": float(requests), "cut_key": [cost, hop, model], "cut_cost": cost}


def local_terms(down: dict, own_entries: list[list]) -> dict[int, float]:
    """Node-local step 3: {model: supergradient term} for this node's entries."""
    cut = tuple(down["cut_key"])
    terms: dict[int, float] = {}
    for node, model, hop, cost, l, _ in own_entries:
        if (cost, hop, model) < cut:
            terms[model] = terms.get(model, 0.0) + l * (down["cut_cost"] - cost)
    return terms


def message_bytes(list_length: np.ndarray, path_length: np.ndarray, active: np.ndarray, lists_down: bool = False) -> int:
    """Bytes of one slot's control traffic for the request types marked active:
    upward message j carries the entries of nodes p_1..p_j (at most K), the
    downward ones a header and the cut-off (3 numbers), and with
    ``lists_down`` (INFIDA's marginal fill) the whole list as well."""
    hops = np.maximum(path_length - 1, 0)
    up = hops * (HEADER_FIELDS + ENTRY_FIELDS * list_length)  # an upper bound per message: the whole list
    down = hops * (HEADER_FIELDS + 3 + (ENTRY_FIELDS * list_length if lists_down else 0))
    return int(FLOAT_BYTES * np.sum((up + down)[active]))


def distributed_supergradient(rt: RequestTypes, counts: np.ndarray, share: np.ndarray, y: np.ndarray):
    """Run the message protocol for every request type with requests; return
    (g of shape (V, M), number of messages, list of all messages sent).
    Plain Python: used by tests and by the runtime, not by the simulator."""
    idn = rt.idn
    y = np.asarray(y, dtype=float).reshape(idn.n_nodes, idn.n_models)
    g = np.zeros((idn.n_nodes, idn.n_models))
    sent: list[dict] = []
    for rho in range(rt.n_types):
        r = float(counts[rho])
        if r <= 0:
            continue
        ups, collected = upward(rt, rho, r, share, lambda v: y[v])
        down = cutoff(r, collected)
        sent.extend(ups)
        path = rt.path(rho)
        for v in path[::-1]:
            own = [c for c in collected if c[0] == int(v)]
            for m, term in local_terms(down, own).items():
                g[int(v), m] += term
        sent.extend({"type": rho, "sender": int(v), **down} for v in path[::-1][:-1])
    return g, len(sent), sent
