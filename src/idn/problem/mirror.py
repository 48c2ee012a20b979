"""Mirror ascent on the budget polytopes, the machinery INFIDA (design page,
section 8) and the fast bound (:mod:`idn.upper_bounds.lagrange`) both run.

Each node v keeps its free coordinates (non-permanent pairs that fit its
budget) in one flat array, CSR by node (:class:`NodeStates`). A step is
``mirror_logits`` (z = log y + eta_v g / s, the log of y_hat), then the Bregman
projection of :mod:`.projection`; ``dual_norms`` gives the per-node dual norm
max_m |g_m| / s_m that the step sizes are tuned with.
"""

from __future__ import annotations

import numpy as np
from numba import njit


class NodeStates:
    """The flat layout of every node's free coordinates (CSR by node); with
    ``nodes``, of those nodes only (the others keep no coordinates): the
    slice a live node learns on."""

    def __init__(self, idn, nodes=None):
        self.mask = idn.fits  # (V, M): non-permanent pairs that fit the budget
        # the whole network's layout, which a slice's rounding draws its uniforms from
        self.full_offsets = np.concatenate([[0], np.cumsum(self.mask.sum(axis=1))]).astype(np.int64)
        if nodes is not None:
            keep = np.zeros(idn.n_nodes, bool)
            keep[np.asarray(nodes, dtype=np.int64)] = True
            self.mask = self.mask & keep[:, None]
        self.sizes = np.broadcast_to(idn.size_mb, self.mask.shape)[self.mask].copy()
        self.node = np.nonzero(self.mask)[0]
        counts = self.mask.sum(axis=1)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.budgets = idn.budget_mb.copy()
        total = np.bincount(self.node, self.sizes, idn.n_nodes)
        self.budgets = np.minimum(self.budgets, total)
        self.log_ratio = np.log(np.where(self.budgets > 0, total / np.where(self.budgets > 0, self.budgets, 1), 1.0))
        self.permanent = idn.permanent.astype(float)
        self.flat_index = np.flatnonzero(self.mask.ravel())  # free coordinate -> flat (V*M) pair

    def entry_index(self, rt) -> np.ndarray:
        """(E,) position in the flat free layout of each candidate entry's
        pair (0 at the fallbacks, whose state is never read)."""
        free_of_pair = np.full(self.mask.size, -1, dtype=np.int64)
        free_of_pair[self.flat_index] = np.arange(self.flat_index.size)
        index = free_of_pair[rt.pair]
        index[rt.is_fallback] = 0
        if np.any(index < 0):  # the lists hold only pairs that fit: a broken RequestTypes
            e = int(np.flatnonzero(index < 0)[0])
            raise ValueError(f"candidate entry {e} lists node {rt.node[e]}, model {rt.model[e]}, which cannot host it")
        return index

    def uniform(self) -> np.ndarray:
        total = np.bincount(self.node, self.sizes, len(self.budgets))
        ratio = np.where(total > 0, self.budgets / np.where(total > 0, total, 1), 0.0)
        return np.minimum(1.0, ratio[self.node])

    def dense(self, flat: np.ndarray) -> np.ndarray:
        flat = np.asarray(flat)
        if flat.shape != self.flat_index.shape:
            raise ValueError(f"a free-layout state has shape {flat.shape}, expected {self.flat_index.shape}")
        out = self.permanent.copy()
        scatter(out.reshape(-1), self.flat_index, flat)  # numba: ~4x numpy's fancy assignment, every slot
        return out


@njit(cache=True, nogil=True)
def scatter(out, index, values):  # pragma: no cover - numba
    for k in range(index.size):
        out[index[k]] = values[k]


@njit(cache=True, nogil=True)
def dual_norms(g, sizes, offsets):  # pragma: no cover - numba
    """max_m |g_m| / s_m per node (0 for a node without free coordinates)."""
    out = np.zeros(offsets.size - 1)
    for v in range(offsets.size - 1):
        for m in range(offsets[v], offsets[v + 1]):
            d = abs(g[m]) / sizes[m]
            if d > out[v]:
                out[v] = d
    return out


@njit(cache=True, nogil=True)
def mirror_logits(y, g, sizes, offsets, eta, z):  # pragma: no cover - numba
    """z = log y + eta_v g / s (the log of y_hat). Returns the first entry
    that is not finite, or -1."""
    for v in range(offsets.size - 1):
        for m in range(offsets[v], offsets[v + 1]):
            z[m] = np.log(max(y[m], 1e-300)) + eta[v] * g[m] / sizes[m]
            if not np.isfinite(z[m]):
                return m
    return -1
