"""INFIDA (design page, section 8) and INFIDA-offline.

Each node v keeps y_v on Y_v = {y in [0,1]^M : s.y = b_v}, over the models
that fit its budget at all. Every slot: the supergradient of the concave
relaxation at y (computed by :mod:`idn.serving`; the control messages that a
real deployment exchanges for it are counted, see :mod:`.messages`), a
mirror-ascent step under the weighted negative entropy, the exact Bregman
projection, and a randomized rounding to the allocation of the next slot.

Learning rate. The linearized regret sum_t g_t.(y* - y_t) splits exactly into
one term per node, so each node runs its own mirror ascent and its own step
size. Phi_v(y) = sum s y log y is (1/b_v)-strongly convex on Y_v in the norm
||z|| = sum_m s_m |z_m| (Pinsker), whose dual is max_m |g_m| / s_m, and Y_v's
Bregman diameter is D_v^2 = b_v log(S_v / b_v) (S_v: total size of the
models that fit). The mirror-ascent bound D^2/eta + eta/(2 sigma) sum ||g||^2
is minimized by eta_v = sqrt(2 log(S_v / b_v) / sum_{tau<=t} ||g_v,tau||^2):
the default, adaptive form (no horizon or gradient bound to guess, and the
same O(sqrt T) regret). ``eta`` sets a constant rate instead; ``eta_scale``
multiplies either.
"""

from __future__ import annotations

import numpy as np

from .. import serving
from .base import Policy, register
from .messages import message_bytes
from .projection import project_nodes
from .rounding import make_rounding


class _NodeStates:
    """The flat layout of every node's free coordinates (CSR by node)."""

    def __init__(self, idn):
        self.mask = idn.fits  # (V, M): non-permanent pairs that fit the budget
        self.sizes = np.broadcast_to(idn.size_mb, self.mask.shape)[self.mask].copy()
        self.node = np.nonzero(self.mask)[0]
        counts = self.mask.sum(axis=1)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.budgets = idn.budget_mb.copy()
        total = np.bincount(self.node, self.sizes, idn.n_nodes)
        self.budgets = np.minimum(self.budgets, total)
        self.log_ratio = np.log(np.where(self.budgets > 0, total / np.where(self.budgets > 0, self.budgets, 1), 1.0))
        self.permanent = idn.permanent.astype(float)

    def uniform(self) -> np.ndarray:
        total = np.bincount(self.node, self.sizes, len(self.budgets))
        ratio = np.where(total > 0, self.budgets / np.where(total > 0, total, 1), 0.0)
        return np.minimum(1.0, ratio[self.node])

    def dense(self, flat: np.ndarray) -> np.ndarray:
        out = self.permanent.copy()
        out[self.mask] = flat
        return out


@register
class Infida(Policy):
    """INFIDA: online mirror ascent on the concave relaxation, then rounding."""

    name = "infida"
    defaults = {"eta": None, "eta_scale": 1.0, "rounding": "fresh"}

    def _start(self, trace):
        idn = self.rt.idn
        self.nodes = _NodeStates(idn)
        self.y = self.nodes.uniform()
        self.grad_sq = np.zeros(idn.n_nodes)  # sum over slots of ||g_v||_*^2
        self.rounding = make_rounding(self.params["rounding"], self.nodes.sizes, self.nodes.budgets, self.nodes.offsets)
        self._path_length = np.diff(self.rt.path_offsets)
        self.x = self._round()

    def state(self) -> np.ndarray:
        """The fractional state y as a (V, M) array (permanent pairs at 1)."""
        return self.nodes.dense(self.y)

    def propose(self) -> np.ndarray:
        return self.x

    def learn(self, counts: np.ndarray, share: np.ndarray) -> None:
        _, g = serving.gain_and_supergradient(self.rt, counts, self.state(), share)
        self.y = self.step(self.y, g[self.nodes.mask])
        self.x = self._round()
        active = counts > 0
        self.control_messages = int(2 * np.sum(np.maximum(self._path_length - 1, 0)[active]))
        self.control_bytes = message_bytes(self.rt.list_length, self._path_length, active)

    def step(self, y: np.ndarray, g: np.ndarray) -> np.ndarray:
        """One mirror-ascent step and projection for every node (flat layout)."""
        n = self.nodes
        eta = self.learning_rate(g)
        z = np.log(np.maximum(y, 1e-300)) + eta[n.node] * g / n.sizes
        return project_nodes(z, n.sizes, n.offsets, n.budgets, log_input=True)

    def learning_rate(self, g: np.ndarray) -> np.ndarray:
        """eta_v per node (module docstring)."""
        n = self.nodes
        scale = float(self.params["eta_scale"])
        if self.params["eta"] is not None:
            return np.full(len(n.budgets), scale * float(self.params["eta"]))
        dual = np.zeros(len(n.budgets))
        np.maximum.at(dual, n.node, np.abs(g) / n.sizes)
        self.grad_sq += dual**2
        with np.errstate(divide="ignore", invalid="ignore"):
            eta = np.sqrt(2.0 * n.log_ratio / self.grad_sq)
        return scale * np.where(self.grad_sq > 0, eta, 0.0)

    def _round(self) -> np.ndarray:
        return self.nodes.dense(self.rounding.round(self.y, self.rng).astype(float))


@register
class InfidaOffline(Infida):
    """INFIDA-offline (section 8, last paragraph): mirror ascent on the whole
    trace's objective (1/T) sum_t G_t(y), on a random batch of slots per
    iteration (stochastic mirror ascent), averaging the iterates; then one
    rounding, kept for every slot: a static allocation with the (1 - 1/e)
    guarantee in expectation."""

    name = "infida-offline"
    offline = True
    defaults = {"iterations": 300, "batch": 16, "eta": None, "eta_scale": 1.0, "rounding": "fresh"}

    def _start(self, trace):
        super()._start(None)
        T = trace.shape[0]
        shares = {}
        y_sum = np.zeros_like(self.y)
        iterations = int(self.params["iterations"])
        for it in range(iterations):
            batch = self.rng.choice(T, size=min(int(self.params["batch"]), T), replace=False)
            g = np.zeros(self.rt.idn.n_nodes * self.rt.idn.n_models)
            dense = self.state()
            for t in batch:
                if t not in shares:
                    shares[t] = serving.capacity_share(self.rt, trace[t])
                g += serving.gain_and_supergradient(self.rt, trace[t], dense, shares[t])[1].ravel()
            g = g.reshape(self.nodes.mask.shape)[self.nodes.mask] / len(batch)
            self.y = self.step(self.y, g)
            if it >= iterations // 2:  # average the second half of the iterates
                y_sum += self.y
        self.y = y_sum / max(1, iterations - iterations // 2)
        self.x = self._round()

    def learn(self, counts, share) -> None:
        pass
