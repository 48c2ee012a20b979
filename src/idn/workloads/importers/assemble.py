"""The last steps of an import: integer counts from scaled expectations
(cumulative rounding along each stream), and the trace itself, each request
placed at its client's home source or spilled to another (docs/workloads.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..traces import _frame, empty_trace

BLOCK_CELLS = 1 << 23  # (slot, source, task) cells counted at once
MAX_DRAWS = 1 << 22  # random numbers drawn at once


def cumulative_round(cell: np.ndarray, slot: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Integers n with, along each cell in slot order, round(cumulative sum):
    each cell's total is kept to within 0.5 and each entry is within 1 of
    its value. Returns n in the input order."""
    order = np.lexsort((slot, cell))
    v = value[order].astype(float)
    cum = np.cumsum(v)
    new = np.ones(len(v), dtype=bool)
    new[1:] = cell[order][1:] != cell[order][:-1]
    base = np.maximum.accumulate(np.where(new, np.arange(len(v)), 0))  # first row of each cell
    before = cum[base] - v[base]  # cumulated value before the cell
    r = np.floor(cum - before + 0.5)
    prev = np.where(new, 0.0, np.concatenate(([0.0], r[:-1])))
    out = np.empty(len(v), dtype=np.int64)
    out[order] = (r - prev).astype(np.int64)
    return out


def assemble(slot, task, home, n, slots: int, direct: bool, spill: float, sources, tasks, rng) -> pd.DataFrame:
    """The trace from n requests per row (slot, task index, home source
    index): each request at its home with probability 1 - spill, else at
    one of the other sources, evenly (``direct``: all at the given source).
    Built a block of slots at a time, as dense (slot, source, task) counts."""
    S, N = len(sources), len(tasks)
    if direct or S == 1 or spill == 0:
        at_home = n
    else:
        at_home = rng.binomial(n, 1.0 - spill)
    away = n - at_home
    # canonical order: sources and tasks by string, so np.nonzero of a dense block is sorted
    s_rank = np.empty(S, np.int64)
    s_rank[np.argsort(np.asarray(sources, dtype=object), kind="stable")] = np.arange(S)
    t_rank = np.empty(N, np.int64)
    t_rank[np.argsort(np.asarray(tasks, dtype=object), kind="stable")] = np.arange(N)
    s_sorted = np.asarray(sorted(sources), dtype=object)
    t_sorted = np.asarray(sorted(tasks), dtype=object)
    order = np.argsort(slot, kind="stable")
    slot, task, home, at_home, away = slot[order], task[order], home[order], at_home[order], away[order]
    block = max(1, BLOCK_CELLS // (S * N))
    out = []
    for a in range(0, slots, block):
        lo, hi = np.searchsorted(slot, [a, a + block])
        shape = (min(block, slots - a), S, N)
        rel, src_home, tsk = slot[lo:hi] - a, s_rank[home[lo:hi]], t_rank[task[lo:hi]]
        cells = np.bincount((rel * S + src_home) * N + tsk, weights=at_home[lo:hi], minlength=int(np.prod(shape)))
        if not direct and S > 1:
            cells += _spilled(away[lo:hi], rel, home[lo:hi], tsk, s_rank, S, N, cells.size, rng)
        t, s, k = np.unravel_index(np.flatnonzero(cells), shape)
        out.append((t + a, s_sorted[s], t_sorted[k], cells[(t * S + s) * N + k].astype(np.int64)))
    if not out:
        return empty_trace()
    t, s, k, c = (np.concatenate(x) for x in zip(*out))
    return _frame(t, s, k, c)


def _spilled(m, rel, home, tsk, s_rank, S, N, size, rng) -> np.ndarray:
    """Counts per (slot, source, task) cell of the requests that leave their
    home: each goes to one of the other S - 1 sources, evenly. A row with at
    least S - 1 of them draws a multinomial over the others, a smaller one
    draws its requests one by one: either way at most ~2 min(m, S) numbers
    per row, a bounded number at a time."""
    cells = np.zeros(size)
    big = np.flatnonzero(m >= S - 1)
    per = max(1, MAX_DRAWS // (S - 1))
    for r0 in range(0, len(big), per):
        rows = big[r0 : r0 + per]
        drawn = rng.multinomial(m[rows], np.full(S - 1, 1.0 / (S - 1)))  # (rows, S - 1)
        other = np.arange(S - 1)[None, :]
        src = other + (other >= home[rows][:, None])
        key = (rel[rows][:, None] * S + s_rank[src]) * N + tsk[rows][:, None]
        cells += np.bincount(key.ravel(), weights=drawn.ravel(), minlength=size)
    small = np.flatnonzero((m > 0) & (m < S - 1))
    cum = np.cumsum(m[small])
    cuts = np.searchsorted(cum, np.arange(MAX_DRAWS, int(cum[-1]) + MAX_DRAWS, MAX_DRAWS), side="right") if len(small) else []
    r0 = 0
    for r1 in [*cuts, len(small)]:
        rows = small[r0:r1]
        r0 = r1
        if len(rows) == 0:
            continue
        row = np.repeat(rows, m[rows])
        other = rng.integers(0, S - 1, size=len(row))
        src = other + (other >= home[row])
        cells += np.bincount((rel[row] * S + s_rank[src]) * N + tsk[row], minlength=size)
    return cells
