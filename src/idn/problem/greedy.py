"""Lazy greedy for the allocation problem of section 7: maximize a monotone
submodular F (a stack of rows, :mod:`.objective`) under one
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
TOL = 1e-12  # marginal gains below TOL * G_max count as zero (rounding noise)


def listed_candidates(rows: Rows, fits: np.ndarray) -> np.ndarray:
    """Flat pairs that may be set (fit their node) and appear on some list."""
    listed = np.array([len(b) > 0 for b in rows.pair_blocks])
    return np.flatnonzero(fits.reshape(-1) & listed)


def rows_gain_max(rows: Rows) -> float:
    first, last = rows.offsets[:-1], rows.offsets[1:] - 1
    return float(rows.counts @ (rows.cost[last] - rows.cost[first]))



@dataclass
class GreedyRun:
    x: np.ndarray  # flat allocation after the run
    added: list[int] = field(default_factory=list)  # pairs set, in order
    overflow: list[int] = field(default_factory=list)  # overflow mode: the pair that closed each node


def pair_block_csr(pair_blocks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair block lists (:class:`Rows`' pair_blocks) as CSR: offsets per flat pair, blocks."""
    lengths = np.fromiter((len(b) for b in pair_blocks), dtype=np.int64, count=len(pair_blocks))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    blocks = np.concatenate(pair_blocks).astype(np.int64) if offsets[-1] else np.zeros(0, dtype=np.int64)
    return offsets, blocks


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
    in_place: bool = False,
    pair_csr: tuple[np.ndarray, np.ndarray] | None = None,
) -> GreedyRun:
    """Greedy from x (flat, copied unless in_place) over the candidate pairs
    (flat indices, not set in x): each step sets the pair of largest marginal
    gain per MB (ratio=True) or largest marginal gain, among the pairs that
    fit their node's remaining budget ``left`` (per node, copied); stops when
    no candidate gains more than tol.

    overflow=True is the analysis' variant: the best pair is taken even when
    it does not fit (it goes to ``overflow`` and its node takes nothing more).
    upper: initial upper bounds of the marginal gains (default: a supergradient
    of F at x). pair_csr: :func:`pair_block_csr` of rows.pair_blocks, for
    callers that run many greedies on one layout. The queue runs compiled
    (:func:`_lazy_greedy_kernel`)."""
    x = np.ascontiguousarray(x, dtype=float) if in_place else np.array(x, dtype=float)
    left = np.array(left, dtype=float)
    size = np.maximum(np.asarray(size, dtype=float), 1e-12)
    candidates = np.asarray(candidates, dtype=np.int64)
    if len(candidates) == 0:
        return GreedyRun(x)
    if upper is None:
        upper = rows.supergradient(x)
    pb_offsets, pb_blocks = pair_block_csr(rows.pair_blocks) if pair_csr is None else pair_csr
    added = np.empty(len(candidates), dtype=np.int64)
    over = np.empty(len(left), dtype=np.int64)
    n_added, n_over = _lazy_greedy_kernel(
        rows.offsets, rows.pair, rows.cost, rows.share, rows.counts, rows.block_rows, pb_offsets, pb_blocks, x,
        candidates, size, left, int(n_models), bool(ratio), bool(overflow), np.ascontiguousarray(upper, dtype=float),
        float(tol), added, over,
    )  # fmt: skip
    return GreedyRun(x, added[:n_added].tolist(), over[:n_over].tolist())


@njit(cache=True, nogil=True)
def _block_gain(offsets, pair, cost, share, counts, block_rows, b, x, empty):  # pragma: no cover - numba
    r0, r1 = block_rows[b], block_rows[b + 1]
    return _gain_kernel(offsets[r0 : r1 + 1], pair, cost, share, counts[r0:r1], x, False, empty)


@njit(cache=True, nogil=True)
def _lazy_greedy_kernel(
    offsets, pair, cost, share, counts, block_rows, pb_offsets, pb_blocks, x, candidates, size, left, n_models, ratio,
    overflow, upper, tol, added, over,
):  # pragma: no cover - numba
    """The queue of :func:`lazy_greedy`. A key is (-gain [/ size], pair,
    version it was computed at); a pair popped with a stale version is
    re-evaluated exactly (F(x + e_p) - F(x) over the blocks listing p, each
    block's value cached) and pushed back, one popped fresh is taken. x and
    left change in place; returns (pairs added, overflow pairs)."""
    block_value = np.full(len(block_rows) - 1, np.nan)
    fresh = np.empty(len(pb_blocks))  # per (pair, block): the block's value with p set, at p's last evaluation
    closed = np.zeros(len(left), dtype=np.bool_)
    empty = np.empty(0)
    heap = []
    for p in candidates:
        heap.append((-(upper[p] / size[p] if ratio else upper[p]), p, -1))
    heapq.heapify(heap)
    version = 0
    n_added = 0
    n_over = 0
    while len(heap) > 0:
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
            before = 0.0
            for i in range(pb_offsets[p], pb_offsets[p + 1]):
                b = pb_blocks[i]
                if np.isnan(block_value[b]):
                    block_value[b] = _block_gain(offsets, pair, cost, share, counts, block_rows, b, x, empty)
                before += block_value[b]
            x[p] = 1.0
            after = 0.0
            for i in range(pb_offsets[p], pb_offsets[p + 1]):
                a = _block_gain(offsets, pair, cost, share, counts, block_rows, pb_blocks[i], x, empty)
                fresh[i] = a
                after += a
            x[p] = 0.0
            gain = after - before
            if gain > tol:
                heapq.heappush(heap, (-(gain / size[p] if ratio else gain), p, version))
            continue  # else: it can only gain less later
        x[p] = 1.0
        for i in range(pb_offsets[p], pb_offsets[p + 1]):
            block_value[pb_blocks[i]] = fresh[i]
        version += 1
        if fits:
            left[v] -= size[p]
            added[n_added] = p
            n_added += 1
        else:
            over[n_over] = p
            n_over += 1
            closed[v] = True
    return n_added, n_over
