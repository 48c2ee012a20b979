"""The fast bound: a Lagrangian upper bound on max_y sum_rows G_row(y) over
the budget polytope, with no LP solver (docs/model.md, "The fast bound").

A row is one request type in one slot (or a merge of several, see
:mod:`idn.problem.static_rows`). Per row j, with w_k = C^K - C^k >= 0 (non-increasing
along the list), G_j(y) = max { sum_k w_k z_k : 0 <= z_k <= l_k y_k, sum_k z_k <= r_j }.
Dualizing z_k <= l_k y_k with mu_k = (w_k - lambda_j)^+ for one scalar
lambda_j per row gives, for ANY lambda >= 0,

    D(lambda) = sum_j r_j min(lambda_j, w_1j) + sum_v KS_v(g(lambda)),
    g_p(lambda) = sum over entries (j, k) of pair p of l_k (w_k - lambda_j)^+,

KS_v = max { g.y : y in [0, 1], s.y <= b_v } (a fractional knapsack), an
upper bound on the LP value: certified by construction, whatever lambda the
search below finds. min_lambda D(lambda) is the LP value (strong duality).

The search: mirror ascent on y (INFIDA's step and projection, full
supergradients), each iterate's best response lambda_j(y) = C^K - C^{k*}
(k*: where the prefix sum of l y reaches r), whose D equals
F(y) + KS(g) - g.y (the Frank-Wolfe gap), and the average of the best
responses over the last half of the iterates, whose D tends to the LP value
at the rate of the regret (section "The fast bound" of docs/model.md).
Work per iteration: one pass over the entries, one sort per node.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .. import serving
from ..problem.mirror import NodeStates, dual_norms, mirror_logits
from ..problem.projection import project_nodes_unchecked
from ..problem.static_rows import RowSet


@njit(cache=True, nogil=True)
def _dual_rows(offsets, index, cost, share, counts, lam, g):  # pragma: no cover - numba
    """sum_j r_j min(lam_j, w_1j); adds g(lam) into g."""
    total = 0.0
    for j in range(len(offsets) - 1):
        r = counts[j]
        if r <= 0.0:
            continue
        start, last = offsets[j], offsets[j + 1] - 1
        top = cost[last]
        lj = lam[j]
        w1 = top - cost[start]
        total += r * (lj if lj < w1 else w1)
        for e in range(start, last):
            w = top - cost[e] - lj
            if w <= 0.0:
                break  # w only falls along the list
            g[index[e]] += share[e] * w
    return total


@njit(cache=True, nogil=True)
def _knapsacks(g, y, sizes, offsets, budgets):  # pragma: no cover - numba
    """(sum_v KS_v(g), sum_v KS_v(g) - g.y): KS_v = max { g.y' : y' in [0,1],
    s.y' <= b_v } over node v's free coordinates, filled by decreasing g/s."""
    total = 0.0
    dot = 0.0
    for v in range(len(offsets) - 1):
        a, e = offsets[v], offsets[v + 1]
        left = budgets[v]
        if e == a:
            continue
        ratio = np.empty(e - a)
        for i in range(e - a):
            ratio[i] = -g[a + i] / sizes[a + i]
            dot += g[a + i] * y[a + i]
        for i in np.argsort(ratio):
            gi = g[a + i]
            if gi <= 0.0 or left <= 0.0:
                break
            s = sizes[a + i]
            if s <= left:
                total += gi
                left -= s
            else:
                total += gi * left / s
                left = 0.0
    return total, total - dot


@dataclass
class Solution:
    upper: float  # a certified upper bound on the LP value
    lower: float  # F at the best fractional point found (<= the LP value)
    y: np.ndarray  # the best fractional point (free layout)
    lam: np.ndarray  # the multipliers of the upper bound
    iterations: int


class Lagrangian:
    """The fast bound's machinery for one scenario (its free layout)."""

    def __init__(self, idn, eta_scale: float = 4.0):
        self.nodes = NodeStates(idn)
        self.eta_scale = eta_scale

    def entry_index(self, rt) -> np.ndarray:
        return self.nodes.entry_index(rt)

    def knapsack(self, g: np.ndarray, y: np.ndarray | None = None) -> tuple[float, float]:
        """(sum_v KS_v(g), that minus g.y): the Frank-Wolfe gap at y."""
        n = self.nodes
        return _knapsacks(g, n.sizes if y is None else y, n.sizes, n.offsets, n.budgets)

    def dual(self, rows: RowSet, lam: np.ndarray) -> float:
        """D(lam): valid for every lam >= 0 (module docstring)."""
        g = np.zeros(self.nodes.sizes.size)
        head = _dual_rows(rows.offsets, rows.index, rows.cost, rows.share, rows.counts, lam, g)
        return float(head) + self.knapsack(g)[0]

    def solve(
        self,
        rows: RowSet,
        y0: np.ndarray | None = None,
        lam0: np.ndarray | None = None,
        tol: float = 1e-3,
        max_iter: int = 500,
        min_iter: int = 1,
        history: list | None = None,
    ) -> Solution:
        """Search lambda until the certified gap (upper - lower) / lower is at
        most tol or max_iter iterations. y0 / lam0 warm-start (e.g. from the
        previous slot); lam0 also enters the average."""
        n = self.nodes
        y = n.uniform() if y0 is None else np.array(y0, dtype=float)
        lam_t = np.empty(rows.n_rows)
        lam_sum = np.zeros(rows.n_rows) if lam0 is None else np.array(lam0, dtype=float)
        n_avg = 0 if lam0 is None else 1
        upper, lower = np.inf, -np.inf
        best_y, best_lam = y, lam_t
        grad_sq = np.zeros(len(n.budgets))
        g = np.empty(n.sizes.size)
        z = np.empty(n.sizes.size)
        it = 0
        if lam0 is not None:
            upper, best_lam = self.dual(rows, lam0), np.array(lam0, dtype=float)
        for it in range(1, max_iter + 1):
            g[:] = 0.0
            f = serving._gain_kernel(rows.offsets, rows.index, rows.cost, rows.share, rows.counts, y, True, g, lam_t)
            if f > lower:
                lower, best_y = f, y
            d = f + self.knapsack(g, y)[1]  # = D(lambda(y)), docs/model.md
            if d < upper:
                upper, best_lam = d, lam_t.copy()
            if it & (it - 1) == 0 and it > 2:  # restart the average at powers of 2: it covers the last half
                lam_sum[:] = 0.0
                n_avg = 0
            lam_sum += lam_t
            n_avg += 1
            if n_avg > 1 and (it % 4 == 0 or it == max_iter):  # a pass and a sort per node: not every time
                avg = lam_sum / n_avg
                d = self.dual(rows, avg)
                if d < upper:
                    upper, best_lam = d, avg
            if history is not None:
                history.append((upper, lower))
            if it >= min_iter and upper - lower <= tol * max(lower, 1e-300):
                break
            # mirror-ascent step, INFIDA's adaptive per-node rate (scaled: offline, full gradients)
            dual = dual_norms(g, n.sizes, n.offsets)
            grad_sq += dual**2
            with np.errstate(divide="ignore", invalid="ignore"):
                eta = np.where(grad_sq > 0, self.eta_scale * np.sqrt(2.0 * n.log_ratio / grad_sq), 0.0)
            mirror_logits(y, g, n.sizes, n.offsets, eta, z)
            y = project_nodes_unchecked(z, n.sizes, n.offsets, n.budgets, np.empty(y.size), log_input=True)
        return Solution(float(upper), float(lower), best_y, best_lam, it)
