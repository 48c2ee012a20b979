"""The static problem's rows over a long trace: max over one allocation of
sum_t G_t, as rows (type, slot) in CSR form, with the slots of a type merged
by request count past ``MAX_STATIC_ENTRIES`` stacked entries.

A merged row has r = sum r_t and l = sum l_t; since sum_t min(a_t, b_t) <=
min(sum a_t, sum b_t), its G bounds the sum of the merged rows' G from above
for every y, so a bound computed on the merged rows stays valid, and the
greedy (:mod:`idn.policies.offline.static_greedy`) maximizes a tight
surrogate. Slots with the same count and the same capacity shares per request
merge exactly. Rows are accumulated slot by slot: no (T, E) array. Used by
the fast bound (:mod:`idn.upper_bounds.fast`) and static greedy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

from .. import serving
from ..model.request_types import RequestTypes

MAX_STATIC_ENTRIES = 4_000_000  # stacked (type, slot) entries kept exactly; past it, rows merge by count
Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class RowSet:
    """Rows in CSR form over the free layout of :class:`idn.problem.mirror.NodeStates`:
    entry e of row j (offsets[j] <= e < offsets[j+1], the last one the
    fallback) has state coordinate index[e], cost cost[e] and share share[e]."""

    offsets: np.ndarray
    index: np.ndarray
    cost: np.ndarray
    share: np.ndarray
    counts: np.ndarray
    row_type: np.ndarray | None = None  # request type of each row, when known

    @property
    def n_rows(self) -> int:
        return len(self.counts)



@njit(cache=True, nogil=True)
def _accumulate(type_offsets, row_of_type, row_offsets, share, counts, m_share, m_counts):  # pragma: no cover - numba
    """Add one slot's shares and counts into the merged rows (row_of_type[rho] < 0: no requests)."""
    for rho in range(len(type_offsets) - 1):
        j = row_of_type[rho]
        if j < 0:
            continue
        m_counts[j] += counts[rho]
        a, b = type_offsets[rho], row_offsets[j]
        for k in range(type_offsets[rho + 1] - a - 1):  # the fallback's share stays 0: never read
            m_share[b + k] += share[a + k]


def _row_keys(trace: np.ndarray, exact: bool) -> np.ndarray:
    """(T, R) row key per (slot, type) with requests, -1 without: the slot
    itself (exact) or the request count (merged)."""
    T = trace.shape[0]
    key = np.broadcast_to(np.arange(T)[:, None], trace.shape) if exact else np.rint(trace).astype(np.int64)
    return np.where(trace > 0, key, -1)


def static_rows(rt: RequestTypes, trace: np.ndarray, index: np.ndarray, max_entries: int, progress: Progress | None):
    """The static problem's rows (see the module docstring) and whether they
    merge. index maps each entry to the state coordinate its rows read (the
    free layout for the bound, rt.pair for a flat (V*M) allocation)."""
    T, R = trace.shape
    exact = int((trace > 0).sum(axis=0) @ rt.list_length) <= max_entries
    keys = _row_keys(trace, exact)
    # one row per distinct (type, key): type-major, so a type's rows are contiguous
    flat = np.where(keys >= 0, np.arange(R)[None, :] * (keys.max() + 2) + keys, -1)
    uniq, inv = np.unique(flat, return_inverse=True)
    inv = inv.reshape(T, R)
    if uniq.size and uniq[0] == -1:
        inv = inv - 1  # -1 marks (slot, type) without requests
        uniq = uniq[1:]
    row_type = (uniq // (keys.max() + 2)).astype(np.int64)
    lengths = rt.list_length[row_type]
    offsets = np.zeros(len(row_type) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    src = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1] - rt.offsets[row_type], lengths)
    share = np.zeros(offsets[-1])
    counts = np.zeros(len(row_type))
    for t in range(T):
        _accumulate(rt.offsets, inv[t], offsets, serving.capacity_share(rt, trace[t]), trace[t], share, counts)
        if progress and (t % 50 == 49 or t == T - 1):
            progress("static rows", t + 1, T)
    rows = RowSet(offsets, index[src], rt.cost[src], share, counts)
    rows.row_type = row_type  # type-major: a type's rows are contiguous
    return rows, not exact
