"""The objective of a whole trace (or a window of it), F(x) = sum_t G(r^t, l^t, x),
as one stack of *rows*: a row is the term of one request type in one slot,
with that slot's counts and capacity shares (design page, sections 5-7).

Rows with no requests add nothing and are left out. Rows are grouped into
*blocks* (contiguous runs of rows) so that the change of F when one pair
(v, m) is set only needs the blocks that list the pair:

- ``by="type"``: one block per request type (every slot of it). A pair lies in
  the blocks of all the types listing it. Each row appears once: used for
  static problems over long traces, where memory matters.
- ``by="node-task"``: one block per (node v, task i) holding the rows of every
  type whose path passes v with task i. A pair (v, m) lies in exactly one
  block, so a marginal gain is one kernel call; rows are repeated once per
  path node, which is fine for a short window (online greedy). Blocks are
  node-major, so the rows of node v's blocks are contiguous and hold each
  type through v exactly once: a supergradient over them is exact for v's pairs.

The gain itself is computed by :mod:`idn.serving`'s kernel, called on the
stacked arrays: one source of truth for G.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from .. import serving
from ..model.request_types import RequestTypes


def check_trace(rt: RequestTypes, trace: np.ndarray, who: str) -> np.ndarray:
    """The (T, R) count matrix as floats, or a one-line error naming who asked."""
    trace = np.asarray(trace, dtype=float)
    if trace.ndim != 2 or trace.shape[1] != rt.n_types:
        raise ValueError(f"{who}: the trace has shape {trace.shape}, expected (slots, {rt.n_types} request types)")
    if not np.all(np.isfinite(trace)) or (trace < 0).any():
        raise ValueError(f"{who}: the trace has a negative or non-finite request count")
    return np.ascontiguousarray(trace)


def slot_shares(rt: RequestTypes, trace: np.ndarray) -> np.ndarray:
    """l^t per candidate entry for every slot, shape (T, E)."""
    out = np.empty((trace.shape[0], rt.n_entries))
    for t in range(trace.shape[0]):
        out[t] = serving.capacity_share(rt, trace[t])
    return out


@dataclass
class Rows:
    offsets: np.ndarray  # (n_rows+1,) entry offsets of each row (fallback last)
    pair: np.ndarray  # (n,) flat pair index v*M + m of each entry
    cost: np.ndarray  # (n,) C^k
    share: np.ndarray  # (n,) l^k of the row's slot, inf at the fallback
    counts: np.ndarray  # (n_rows,) r of the row
    row_type: np.ndarray  # (n_rows,) request type of the row
    block_rows: np.ndarray  # (n_blocks+1,) row offsets of each block
    pair_blocks: list[np.ndarray]  # per flat pair: the blocks whose rows list it (non-fallback)
    n_pairs: int

    @property
    def n_rows(self) -> int:
        return len(self.counts)

    @property
    def n_blocks(self) -> int:
        return len(self.block_rows) - 1

    def _kernel(self, y: np.ndarray, r0: int, r1: int, grad: np.ndarray | None) -> float:
        return serving._gain_kernel(
            self.offsets[r0 : r1 + 1], self.pair, self.cost, self.share, self.counts[r0:r1], y,
            grad is not None, np.empty(0) if grad is None else grad,
        )  # fmt: skip

    def gain(self, y: np.ndarray) -> float:
        """F(y) over all rows; y is a flat (V*M,) allocation."""
        return float(self._kernel(y, 0, self.n_rows, None))

    def block_gain(self, y: np.ndarray, b0: int, b1: int | None = None) -> float:
        """Sum of the terms of blocks b0 .. b1-1 (default: block b0 alone)."""
        b1 = b0 + 1 if b1 is None else b1
        return float(self._kernel(y, int(self.block_rows[b0]), int(self.block_rows[b1]), None))

    def supergradient(self, y: np.ndarray, b0: int = 0, b1: int | None = None) -> np.ndarray:
        """A supergradient (flat) of the terms of blocks b0 .. b1-1 at y."""
        b1 = self.n_blocks if b1 is None else b1
        grad = np.zeros(self.n_pairs)
        self._kernel(y, int(self.block_rows[b0]), int(self.block_rows[b1]), grad)
        return grad


@dataclass
class Layout:
    """How rows are grouped into blocks; depends on the request types only."""

    by: str
    member_type: np.ndarray  # request types of all blocks, concatenated block by block
    member_block: np.ndarray  # block of each member
    block_node: np.ndarray  # node of each block (-1 for by="type")
    pair_blocks: list[np.ndarray]  # per flat pair: the blocks whose rows list it (before the fallback)

    @property
    def n_blocks(self) -> int:
        return len(self.block_node)


def layout(rt: RequestTypes, by: str = "type") -> Layout:
    """Blocks by request type or by (node, task); see the module docstring."""
    idn = rt.idn
    if by == "type":
        member_type = np.arange(rt.n_types, dtype=np.int64)
        member_block = member_type.copy()
        block_node = np.full(rt.n_types, -1, dtype=np.int64)
    elif by == "node-task":
        path_type = np.repeat(np.arange(rt.n_types), np.diff(rt.path_offsets))
        on_path = np.zeros((idn.n_nodes, rt.n_types), dtype=bool)
        on_path[rt.path_nodes, path_type] = True
        on_path[idn.repository] = False
        # block key (node, task), node-major; members sorted by type inside a block
        v, rho = np.nonzero(on_path)
        key = v * len(idn.tasks) + rt.task[rho]
        order = np.lexsort((rho, key))
        key, member_type = key[order], rho[order]
        keys, member_block = np.unique(key, return_inverse=True)
        block_node = keys // len(idn.tasks)
    else:
        raise ValueError(f"rows: unknown grouping {by!r} (known: type, node-task)")

    n_pairs = idn.n_nodes * idn.n_models
    listed = np.flatnonzero(~rt.is_fallback)
    if by == "type":
        ep, eb = rt.pair[listed], rt.entry_type[listed]
    else:  # the one block (node of the entry, task of its type)
        ekey = rt.node[listed] * len(idn.tasks) + rt.task[rt.entry_type[listed]]
        ep, eb = rt.pair[listed], np.searchsorted(keys, ekey)
    pb = np.unique(np.stack([ep, eb], axis=1), axis=0) if len(ep) else np.zeros((0, 2), dtype=np.int64)
    cuts = np.searchsorted(pb[:, 0], np.arange(n_pairs + 1))
    pair_blocks = [pb[cuts[p] : cuts[p + 1], 1] for p in range(n_pairs)]
    return Layout(by, member_type, member_block.astype(np.int64), block_node.astype(np.int64), pair_blocks)


@numba.njit(cache=True, nogil=True)
def _gather(row_type, row_slot, type_offsets, rt_pair, rt_cost, shares, offsets, pair, cost, share):  # pragma: no cover - numba
    """The stacked entries of each row: one pass, no index arrays of the
    stacked size (numpy's repeat / arange / 2-D gather took 4 passes)."""
    for i in range(len(row_type)):
        a = type_offsets[row_type[i]]
        o = offsets[i]
        t = row_slot[i]
        for k in range(offsets[i + 1] - o):
            pair[o + k] = rt_pair[a + k]
            cost[o + k] = rt_cost[a + k]
            share[o + k] = shares[t, a + k]


def build_rows(rt: RequestTypes, trace: np.ndarray, shares: np.ndarray, lay: Layout) -> Rows:
    """Stack the non-empty rows of a (T, R) trace with its (T, E) shares, block by block."""
    sub = trace[:, lay.member_type]  # (T, members)
    mi, slot = np.nonzero(sub.T > 0)  # member-major, so block-major
    row_type = lay.member_type[mi]
    block_rows = np.zeros(lay.n_blocks + 1, dtype=np.int64)
    np.cumsum(np.bincount(lay.member_block[mi], minlength=lay.n_blocks), out=block_rows[1:])
    offsets = np.zeros(len(row_type) + 1, dtype=np.int64)
    np.cumsum(rt.list_length[row_type], out=offsets[1:])
    n = int(offsets[-1])
    pair, cost, share = np.empty(n, dtype=rt.pair.dtype), np.empty(n), np.empty(n)
    _gather(row_type, slot, rt.offsets, rt.pair, rt.cost, np.ascontiguousarray(shares, dtype=float), offsets, pair, cost, share)
    return Rows(
        offsets=offsets,
        pair=pair,
        cost=cost,
        share=share,
        counts=np.ascontiguousarray(trace[slot, row_type]),
        row_type=row_type,
        block_rows=block_rows,
        pair_blocks=lay.pair_blocks,
        n_pairs=rt.idn.n_nodes * rt.idn.n_models,
    )
