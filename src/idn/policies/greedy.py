"""Lazy greedy for the allocation problem of section 7: maximize a monotone
submodular F (a stack of rows, :mod:`idn.policies.objective`) under one
knapsack per node.

Laziness: a candidate's key is an upper bound of its marginal gain; only the
top of the priority queue is re-evaluated exactly, and it is taken when it is
still on top once fresh. Two facts keep the keys valid upper bounds:
- the first key is the supergradient of the concave relaxation at the
  starting point (F(x + e_p) <= F(x) + g_p, by concavity of G in y);
- a marginal gain only shrinks as the allocation grows (submodularity).
An exact marginal gain is F(x + e_p) - F(x) over the blocks that list p only.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from ..serving import _gain_kernel
from .objective import Rows

FIT_SLACK_MB = 1e-9


@dataclass
class GreedyRun:
    x: np.ndarray  # flat allocation after the run
    added: list[int] = field(default_factory=list)  # pairs set, in order
    overflow: list[int] = field(default_factory=list)  # overflow mode: the pair that closed each node


def lazy_greedy(
    rows: Rows,
    x: np.ndarray,
    candidates: np.ndarray,
    size: np.ndarray,
    left: np.ndarray,
    n_models: int,
    ratio: bool = True,
    overflow: bool = False,
    upper: np.ndarray | None = None,
    tol: float = 0.0,
) -> GreedyRun:
    """Greedy from x (flat, copied) over the candidate pairs (flat indices, not
    set in x): each step sets the pair of largest marginal gain per MB
    (ratio=True) or largest marginal gain, among the pairs that fit their
    node's remaining budget ``left`` (per node, copied); stops when no
    candidate gains more than tol.

    overflow=True is the analysis' variant: the best pair is taken even when
    it does not fit (it goes to ``overflow`` and its node takes nothing more).
    upper: initial upper bounds of the marginal gains (default: a supergradient
    of F at x)."""
    x = np.array(x, dtype=float)
    left = np.array(left, dtype=float)
    size = np.maximum(np.asarray(size, dtype=float), 1e-12)
    run = GreedyRun(x)
    if len(candidates) == 0:
        return run
    if upper is None:
        upper = rows.supergradient(x)
    block_value = np.full(rows.n_blocks, np.nan)
    closed = np.zeros(len(left), dtype=bool)

    def value(b: int) -> float:
        if np.isnan(block_value[b]):
            block_value[b] = rows.block_gain(x, b)
        return block_value[b]

    def marginal(p: int) -> tuple[float, list[float]]:
        blocks = rows.pair_blocks[p]
        before = [value(b) for b in blocks]
        x[p] = 1.0
        after = [rows.block_gain(x, b) for b in blocks]
        x[p] = 0.0
        return sum(after) - sum(before), after

    def key(gain: float, p: int) -> float:
        return gain / size[p] if ratio else gain

    heap = [(-key(float(upper[p]), int(p)), int(p), -1) for p in candidates]
    heapq.heapify(heap)
    version, fresh_after = 0, {}
    while heap:
        neg, p, stamp = heapq.heappop(heap)
        if -neg <= 0.0:
            break  # an upper bound of every remaining marginal gain
        v = p // n_models
        if closed[v]:
            continue
        fits = size[p] <= left[v] + FIT_SLACK_MB
        if not fits and not overflow:
            continue  # budgets only shrink: it never fits again
        if stamp != version:
            gain, after = marginal(p)
            if gain > tol:
                fresh_after[p] = after
                heapq.heappush(heap, (-key(gain, p), p, version))
            continue  # else: it can only gain less later
        x[p] = 1.0
        for b, val in zip(rows.pair_blocks[p], fresh_after.pop(p)):
            block_value[b] = val
        version += 1
        if fits:
            left[v] -= size[p]
            run.added.append(p)
        else:
            run.overflow.append(p)
            closed[v] = True
    return run


@njit(cache=True, nogil=True)
def _lazy_greedy_one_block(
    offsets, pair, cost, share, counts, block_rows, pair_block, x, candidates, size, left, n_models, ratio, upper, tol
):  # pragma: no cover - numba
    """:func:`lazy_greedy` (overflow=False) when every pair lies in exactly
    one block (the node-task layout), compiled: the same queue, the same
    keys and the same arithmetic (one block's gain by serving's kernel), so
    the same picks, without a Python call per marginal gain. x and left are
    updated in place."""
    block_value = np.full(len(block_rows) - 1, np.nan)
    fresh = np.full(len(x), np.nan)  # the block's value after setting p, from p's last fresh evaluation
    empty = np.empty(0)
    heap = []
    for p in candidates:
        g = upper[p] / size[p] if ratio else upper[p]
        heap.append((-g, p, -1))
    heapq.heapify(heap)
    version = 0
    while len(heap) > 0:
        neg, p, stamp = heapq.heappop(heap)
        if -neg <= 0.0:
            break
        v = p // n_models
        if not size[p] <= left[v] + FIT_SLACK_MB:
            continue  # budgets only shrink: it never fits again
        b = pair_block[p]
        r0, r1 = block_rows[b], block_rows[b + 1]
        if stamp != version:
            if np.isnan(block_value[b]):
                block_value[b] = _gain_kernel(offsets[r0 : r1 + 1], pair, cost, share, counts[r0:r1], x, False, empty)
            x[p] = 1.0
            after = _gain_kernel(offsets[r0 : r1 + 1], pair, cost, share, counts[r0:r1], x, False, empty)
            x[p] = 0.0
            gain = after - block_value[b]
            if gain > tol:
                fresh[p] = after
                heapq.heappush(heap, (-(gain / size[p] if ratio else gain), p, version))
            continue
        x[p] = 1.0
        block_value[b] = fresh[p]
        version += 1
        left[v] -= size[p]

