"""Who serves what: capacity shares, served counts, cost, gain and the
supergradient (design page, sections 5, 6 and 8 step 2). The one source of
truth for these numbers: the simulator, the policies, the bounds and the live
runtime all call this module.

Every function works on the flat candidate arrays of
:class:`idn.model.request_types.RequestTypes` and on an allocation given as a
(V, M) array (or its ravel), integral (x) or fractional (y).

The per-type loops are fused numba kernels. They use one fact to stay linear:
along a candidate list the running sum of l*y only grows, so [sum_{k'<=k} l y < r]
holds on a prefix k < k*. Hence the telescoped gain is
sum_{k<k*} delta_k cum_k + r (C^K - C^{k*}) and the supergradient term of the
entry at position k < k* is l^k (C^{k*} - C^k), zero after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from .model.network import TIERS
from .model.request_types import RequestTypes


@numba.njit(cache=True, nogil=True)
def _share_kernel(offsets, entry_type, pair, capacity, counts, n_pairs, share):  # pragma: no cover - numba
    demand = np.zeros(n_pairs)
    n_types = len(offsets) - 1
    for t in range(n_types):
        r = counts[t]
        if r <= 0.0:
            continue
        for e in range(offsets[t], offsets[t + 1] - 1):
            demand[pair[e]] += r
    for t in range(n_types):
        r = counts[t]
        last = offsets[t + 1] - 1
        if r > 0.0:
            for e in range(offsets[t], last):
                d = demand[pair[e]]
                share[e] = min(r, capacity[e] * r / d) if d > 0.0 else 0.0
        else:  # a type without requests gets no share: skip the gathers
            share[offsets[t] : last] = 0.0
        share[last] = np.inf


@numba.njit(cache=True, nogil=True)
def _gain_kernel(offsets, pair, cost, share, counts, y, want_grad, grad, best_response=None):  # pragma: no cover - numba
    """Returns the gain; adds the supergradient into grad when want_grad.
    ``best_response`` (one per row, optional): C^K - C^{k*}, k* where the
    prefix sum of l y reaches r (0 for a row without requests), the fast
    bound's multiplier (:mod:`idn.upper_bounds.lagrange`)."""
    total = 0.0
    for t in range(len(offsets) - 1):
        r = counts[t]
        if r <= 0.0:
            if best_response is not None:
                best_response[t] = 0.0
            continue
        start, last = offsets[t], offsets[t + 1] - 1
        cum = 0.0
        kstar = last
        for e in range(start, last):
            cum += share[e] * y[pair[e]]
            if cum >= r:
                kstar = e
                break
            total += (cost[e + 1] - cost[e]) * cum
        total += r * (cost[last] - cost[kstar])
        if best_response is not None:
            best_response[t] = cost[last] - cost[kstar]
        if want_grad:
            c_star = cost[kstar]
            for e in range(start, kstar):
                grad[pair[e]] += share[e] * (c_star - cost[e])
    return total


@numba.njit(cache=True, nogil=True)
def _serve_kernel(offsets, pair, share, counts, y, cost, latency, accuracy, tier, served, per_tier):  # pragma: no cover - numba
    """Fills served and per_tier; returns (cost, latency sum, accuracy sum,
    C^K r summed, G_max). The sums ride along the routing pass: done apart
    they were five more passes over the entries, costlier than the routing."""
    total_cost = lat_sum = acc_sum = fallback_total = gain_max = 0.0
    for t in range(len(offsets) - 1):
        r = counts[t]
        start, last = offsets[t], offsets[t + 1] - 1
        left = r
        e = start
        while e < last and left > 0.0:
            z = share[e] * y[pair[e]]
            if z > left:
                z = left
            served[e] = z
            left -= z
            if z > 0.0:
                total_cost += z * cost[e]
                lat_sum += z * latency[e]
                acc_sum += z * accuracy[e]
                per_tier[tier[e]] += z
            e += 1
        served[e:last] = 0.0  # everything is served above: the rest of the list idles
        served[last] = left
        total_cost += left * cost[last]
        lat_sum += left * latency[last]
        acc_sum += left * accuracy[last]
        per_tier[tier[last]] += left
        fallback_total += r * cost[last]
        gain_max += r * (cost[last] - cost[start])
    return total_cost, lat_sum, acc_sum, fallback_total, gain_max


def _flat(rt: RequestTypes, y: np.ndarray) -> np.ndarray:
    y = np.ascontiguousarray(y, dtype=float).reshape(-1)
    if y.size != rt.idn.n_nodes * rt.idn.n_models:
        raise ValueError(f"allocation has {y.size} entries, expected {rt.idn.n_nodes} nodes x {rt.idn.n_models} models")
    return y


def _counts(rt: RequestTypes, counts: np.ndarray) -> np.ndarray:
    counts = np.ascontiguousarray(counts, dtype=float)
    if counts.shape != (rt.n_types,):
        raise ValueError(f"request counts have shape {counts.shape}, expected ({rt.n_types},)")
    return counts


def capacity_share(rt: RequestTypes, counts: np.ndarray) -> np.ndarray:
    """l_rho(v, m) for every candidate entry: L_v^m split between the types
    listing (v, m) in proportion to their requests (section 5), capped at the
    type's own requests r_rho; inf at the fallback.

    The cap changes nothing on 0/1 allocations (a pair with l >= r already
    serves all r) but it tightens the concave relaxation: without it a pair
    with l >> r earns its full value in G(y) at y = r / l, INFIDA's fractional
    state spreads thin over such pairs, and rounding it loses up to half the
    optimum (seen on small instances; docs/model.md, section 11)."""
    counts = _counts(rt, counts)
    share = np.empty(rt.n_entries)
    _share_kernel(rt.offsets, rt.entry_type, rt.pair, rt.capacity, counts, rt.idn.n_nodes * rt.idn.n_models, share)
    return share


def gain(rt: RequestTypes, counts: np.ndarray, y: np.ndarray, share: np.ndarray | None = None) -> float:
    """G(r, l, y): the telescoped form, valid for fractional y (the concave relaxation)."""
    counts = _counts(rt, counts)
    share = capacity_share(rt, counts) if share is None else share
    return float(_gain_kernel(rt.offsets, rt.pair, rt.cost, share, counts, _flat(rt, y), False, np.empty(0)))


def gain_and_supergradient(
    rt: RequestTypes, counts: np.ndarray, y: np.ndarray, share: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """G(y) and a supergradient g (V, M) of it (section 8 step 2)."""
    counts = _counts(rt, counts)
    share = capacity_share(rt, counts) if share is None else share
    grad = np.zeros(rt.idn.n_nodes * rt.idn.n_models)
    g = _gain_kernel(rt.offsets, rt.pair, rt.cost, share, counts, _flat(rt, y), True, grad)
    return float(g), grad.reshape(rt.idn.n_nodes, rt.idn.n_models)


def gain_and_supergradient_compact(
    rt: RequestTypes, counts: np.ndarray, y: np.ndarray, index: np.ndarray, share: np.ndarray, grad: np.ndarray
) -> float:
    """:func:`gain_and_supergradient` for a state held compactly, as policies
    keep it: entry e's pair has state y[index[e]] (every entry but the
    fallbacks, whose state is never read). The supergradient is added into
    grad (same layout as y) and the gain returned. No dense (V, M) array and
    no checks: for per-slot loops that validated their layout once."""
    counts = np.asarray(counts, dtype=float)
    return float(_gain_kernel(rt.offsets, index, rt.cost, share, counts, y, True, grad))


def max_gain(rt: RequestTypes, counts: np.ndarray) -> float:
    """G_max = sum_rho (C^K - C^1) r_rho."""
    return float(np.dot(rt.fallback_cost - rt.best_cost, _counts(rt, counts)))


@dataclass
class SlotOutcome:
    """What happened in one slot under one allocation."""

    requests: float
    cost: float
    gain: float
    gain_max: float
    latency_ms_sum: float
    accuracy_sum: float
    served_per_tier: np.ndarray  # (4,) requests served at each tier of TIERS
    served: np.ndarray  # (E,) z per candidate entry
    share: np.ndarray  # (E,) l per candidate entry

    @property
    def normalized_gain(self) -> float:
        return self.gain / self.gain_max if self.gain_max > 0 else 0.0

    @property
    def mean_latency_ms(self) -> float:
        return self.latency_ms_sum / self.requests if self.requests > 0 else 0.0

    @property
    def mean_accuracy(self) -> float:
        return self.accuracy_sum / self.requests if self.requests > 0 else 0.0

    def metrics(self) -> dict[str, float]:
        out = {
            "requests": self.requests,
            "gain": self.gain,
            "cost": self.cost,
            "normalized_gain": self.normalized_gain,
            "mean_latency_ms": self.mean_latency_ms,
            "mean_accuracy": self.mean_accuracy,
        }
        for tier, n in zip(TIERS, self.served_per_tier):
            out[f"served_{tier}"] = float(n)
        return out


def serve(rt: RequestTypes, counts: np.ndarray, x: np.ndarray, share: np.ndarray | None = None) -> SlotOutcome:
    """Route a slot's requests along the candidate lists (section 6) under the
    allocation x (integral or fractional) and account for them.

    The gain reported is the cost form C^K r - cost; the telescoped form
    (:func:`gain`) equals it, which the tests check."""
    counts = _counts(rt, counts)
    share = capacity_share(rt, counts) if share is None else share
    served = np.empty(rt.n_entries)
    per_tier = np.zeros(len(TIERS))
    cost, lat_sum, acc_sum, fallback_total, gain_max = _serve_kernel(
        rt.offsets, rt.pair, share, counts, _flat(rt, x), rt.cost, rt.latency_ms, rt.accuracy, rt.entry_tier,
        served, per_tier,
    )  # fmt: skip
    return SlotOutcome(
        requests=float(counts.sum()),
        cost=cost,
        gain=fallback_total - cost,
        gain_max=gain_max,
        latency_ms_sum=lat_sum,
        accuracy_sum=acc_sum,
        served_per_tier=per_tier,
        served=served,
        share=share,
    )
