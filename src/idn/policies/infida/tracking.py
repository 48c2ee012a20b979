"""INFIDA's tracking rule (``learning: tracking``, docs/model.md, section 12.5):
a meta-learner over step sizes, a fixed share on every expert, optimistic
steps with a hint. Everything is per node: node v's step reads only g_v and
its own state, so a live node runs it on its own slice with no new message.

Per node v, N experts: ``horizons`` H_1 < ... < H_K give constant-rate
experts, eta_k = c sqrt(2 log(S_v / b_v)) / (sqrt(H_k) G_v,t) (the static
rule's rate at slot H_k, kept for ever), and ``static_expert`` adds the
static rule itself (``learning: static``: eta shrinking like 1/sqrt(t)). c is ``eta_scale``;
G_v,t = max over tau <= t of the root mean square of ||g_v||_* up to tau
(non-decreasing, so each rate only falls). Each expert k keeps a lazy state
z_k (its mirror ascent on the supergradients alone) and plays
    y_k = (1 - share) P(z_k * exp(eta_k h / s)) + share * u,
where P is INFIDA's Bregman projection onto Y_v, u the uniform point of Y_v
and h the hint; then, once g is known,
    z_k <- (1 - share) P(z_k * exp(eta_k g / s)) + share * u.
The share keeps every coordinate at or above share * b_v / S_v, so a model
the demand left comes back after a step sum of log(S_v / (share b_v)),
not log(1e12) (the catalog's size sets the floor, the share bounds the
budget it takes: share * b_v). The node plays y_v = sum_k w_k y_k, with
optimistic Hedge weights on the linear gains of the experts' points:
    w_k proportional to exp(beta (L_k + <h, y_k>)),  L_k = sum_tau <g_tau, y_k,tau>,
    beta = meta_scale sqrt(8 log N / sum_tau r_tau^2),
r_tau the spread (max - min over k) of <g_tau - h_tau, y_k,tau>: every
expert's step uses the same single supergradient (surrogate linear gains).

Hints: ``recent`` is the mean of the last ``hint_window`` supergradients;
``periodic`` the mean of those of the same ``hint_window`` slots one
``hint_period`` ago (the same part of yesterday), ``recent`` until a period
has passed; ``none`` plays the lazy states.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...problem.mirror import dual_norms
from ...problem.projection import MIN_Y, project_segment

HINTS = ("none", "recent", "periodic")
# A coordinate whose step falls more than e^-100 below its node's largest is at
# the floor after the projection anyway; clamping its exponent there keeps the
# arithmetic out of subnormal numbers (exp(-700) * 1e-5), which made the step
# ten times slower.
MAX_DROP = 100.0
# The Hedge rate's spread is at least this fraction of b_v G_v (which bounds
# how far two experts' linear gains can differ): experts that agree up to
# rounding must not get an unbounded rate, and weights picked by rounding noise.
SPREAD_FLOOR = 1e-6


@njit(cache=True, nogil=True)
def node_dots(A, g, offsets, out):  # pragma: no cover - numba
    """out[k, v] = sum over node v's coordinates m of A[k, m] g[m]."""
    for k in range(A.shape[0]):
        for v in range(offsets.size - 1):
            acc = 0.0
            for m in range(offsets[v], offsets[v + 1]):
                acc += A[k, m] * g[m]
            out[k, v] = acc


@njit(cache=True, nogil=True)
def experts_step(base, direction, sizes, offsets, budgets, u, eta, share, out, per_mb):  # pragma: no cover - numba
    """out[k] = (1 - share) P(base[k] * exp(eta[k, v] direction / s)) + share u
    on every node v's entries. The exponent is shifted by its largest value
    on the node (P is scale invariant), so it never overflows and base needs
    no log: one exp per coordinate and expert."""
    for v in range(offsets.size - 1):
        a, e = offsets[v], offsets[v + 1]
        if e == a:
            continue
        top = -np.inf
        for m in range(a, e):
            per_mb[m] = direction[m] / sizes[m]
            top = max(top, per_mb[m])
        for k in range(base.shape[0]):
            rate = eta[k, v]
            row = out[k]
            for m in range(a, e):
                row[m] = base[k, m] * np.exp(max(rate * (per_mb[m] - top), -MAX_DROP))
            project_segment(row, sizes, a, e, budgets[v], MIN_Y, False, row)
            if share > 0.0:
                for m in range(a, e):
                    row[m] = (1.0 - share) * row[m] + share * u[m]


@njit(cache=True, nogil=True)
def mix(points, w, node, out):  # pragma: no cover - numba
    """out[m] = sum_k w[k, node[m]] points[k, m]: each node's convex combination."""
    for m in range(points.shape[1]):
        acc = 0.0
        for k in range(points.shape[0]):
            acc += w[k, node[m]] * points[k, m]
        out[m] = acc


@njit(cache=True, nogil=True)
def window_mean(ring, rows, out):  # pragma: no cover - numba
    """out = mean of ring[rows] (row by row, the same order for any slice)."""
    n = ring.shape[1]
    for m in range(n):
        out[m] = 0.0
    for r in rows:
        for m in range(n):
            out[m] += ring[r, m]
    for m in range(n):
        out[m] /= rows.size


def expert_rates(horizons, static_expert: bool, eta_scale: float, log_ratio, grad_sq, gain_scale) -> np.ndarray:
    """(N, V) step sizes: one row per constant-rate expert (horizons in
    order), then today's rule if static_expert. 0 where a node has seen no
    supergradient yet."""
    base = eta_scale * np.sqrt(2.0 * log_ratio)
    seen = gain_scale > 0
    scale = np.where(seen, gain_scale, 1.0)
    rows = [np.where(seen, base / (np.sqrt(float(h)) * scale), 0.0) for h in horizons]
    if static_expert:
        rows.append(np.where(grad_sq > 0, base / np.sqrt(np.where(grad_sq > 0, grad_sq, 1.0)), 0.0))
    return np.array(rows)


def softmax_columns(logits: np.ndarray) -> np.ndarray:
    w = np.exp(logits - logits.max(axis=0))
    return w / w.sum(axis=0)


class Tracker:
    """The tracking rule's state for the nodes of a flat layout (``nodes``:
    :class:`idn.problem.mirror.NodeStates`), and its step."""

    def __init__(self, nodes, horizons, static_expert: bool, eta_scale: float, share: float, meta_scale: float,
                 hint: str, hint_window: int, hint_period: int | None):  # fmt: skip
        self.nodes = nodes
        self.horizons = [float(h) for h in horizons]
        self.static_expert = bool(static_expert)
        self.eta_scale = float(eta_scale)
        self.share = float(share)
        self.meta_scale = float(meta_scale)
        self.hint = hint
        self.hint_window = int(hint_window)
        self.hint_period = int(hint_period) if hint == "periodic" else 0
        n_experts = len(self.horizons) + int(self.static_expert)
        size, n_nodes = nodes.sizes.size, len(nodes.budgets)
        self.n_experts = n_experts
        self.u = nodes.uniform()
        # state (Infida.state_attrs: "tracker.<name>")
        self.lazy = np.tile(self.u, (n_experts, 1))  # z_k
        self.points = self.lazy.copy()  # y_k, what each expert plays
        self.gains = np.zeros((n_experts, n_nodes))  # L_k: sum of <g, y_k>
        self.hint_gains = np.zeros((n_experts, n_nodes))  # <h, y_k> of the points played
        self.spread_sq = np.zeros(n_nodes)  # sum of r_tau^2
        self.grad_sq = np.zeros(n_nodes)  # sum of ||g_v||_*^2
        self.gain_scale = np.zeros(n_nodes)  # G_v,t
        self.slots = 0
        rows = self.hint_period if hint == "periodic" else (self.hint_window if hint == "recent" else 0)
        self.ring = np.zeros((rows, size))  # the last supergradients, slot t at row t % rows

    def weights(self, hint_gains: np.ndarray | None = None) -> np.ndarray:
        """(N, V) the meta-learner's weights: optimistic Hedge on the gains
        so far plus the hint's gains of the points about to be played."""
        spread_sq = np.maximum(self.spread_sq, (SPREAD_FLOOR * self.nodes.budgets * self.gain_scale) ** 2)
        with np.errstate(divide="ignore"):
            beta = self.meta_scale * np.sqrt(8.0 * np.log(max(self.n_experts, 2)) / spread_sq)
        beta = np.where(spread_sq > 0, beta, 0.0)
        total = self.gains if hint_gains is None else self.gains + hint_gains
        return softmax_columns(beta[None, :] * (total - total.max(axis=0)))

    def play(self) -> np.ndarray:
        """y_v = sum_k w_k y_k, flat."""
        y = np.empty(self.points.shape[1])
        mix(self.points, self.weights(self.hint_gains), self.nodes.node, y)
        return y

    def _step(self, eta: np.ndarray, direction: np.ndarray) -> np.ndarray:
        n = self.nodes
        out = np.empty_like(self.lazy)
        experts_step(self.lazy, direction, n.sizes, n.offsets, n.budgets, self.u, eta, self.share, out,
                     np.empty(n.sizes.size))  # fmt: skip
        return out

    def _hint_vector(self) -> np.ndarray | None:
        t, rows = self.slots, self.ring.shape[0]
        if self.hint == "none" or t == 0:
            return None
        if self.hint == "periodic" and t >= self.hint_period:  # slots t - P .. t - P + W - 1
            take = np.arange(t - self.hint_period, t - self.hint_period + min(self.hint_window, self.hint_period))
        else:  # slots t - W .. t - 1
            take = np.arange(max(0, t - self.hint_window), t)
        h = np.empty(self.ring.shape[1])
        window_mean(self.ring, (take % rows).astype(np.int64), h)
        return h

    def step(self, g: np.ndarray) -> np.ndarray:
        """Take the slot's supergradient (at the y played), return the next y."""
        n = self.nodes
        g = np.ascontiguousarray(g, dtype=float)
        if not np.all(np.isfinite(g)):
            m = int(np.flatnonzero(~np.isfinite(g))[0])
            raise ValueError(f"INFIDA tracking step: supergradient {g[m]} at node {int(n.node[m])}")
        gains = np.empty_like(self.gains)
        node_dots(self.points, g, n.offsets, gains)
        spread = gains - self.hint_gains
        self.spread_sq += (spread.max(axis=0) - spread.min(axis=0)) ** 2
        self.gains += gains
        self.slots += 1
        self.grad_sq += dual_norms(g, n.sizes, n.offsets) ** 2
        self.gain_scale = np.maximum(self.gain_scale, np.sqrt(self.grad_sq / self.slots))
        eta = expert_rates(self.horizons, self.static_expert, self.eta_scale, n.log_ratio, self.grad_sq, self.gain_scale)
        self.lazy = self._step(eta, g)
        if self.ring.shape[0]:
            self.ring[(self.slots - 1) % self.ring.shape[0]] = g
        h = self._hint_vector()
        if h is None:
            self.points = self.lazy.copy()
            self.hint_gains = np.zeros_like(self.gains)
        else:
            self.points = self._step(eta, h)
            node_dots(self.points, h, n.offsets, self.hint_gains)
        return self.play()
