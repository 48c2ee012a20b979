"""The allocation problem as a linear program: the program behind the exact
static optimum (a MILP, :mod:`idn.policies.offline.optimum`) and the LP
bounds (:mod:`idn.upper_bounds.lp`) of design page section 9.

G is piecewise linear: G_rho(x) = sum_k delta_k min(r, sum_{k'<=k} l^{k'} x^{k'}).
Per row (one request type in one slot, rows with r > 0 only) and per
candidate k before the fallback, a variable u_k stands for min(r, cum_k) via

    0 <= u_k <= r,   u_k <= u_{k-1} + l^k x^{p_k}   (u_0 := 0),

and the program is max sum delta_k u_k subject to sum_m s_m x_vm <= b_v. The
chained form needs 3 nonzeros per u instead of k: the largest feasible u_k is
min(r, u_{k-1} + l^k x) = min(r, cum_k) by induction, and since every delta_k
>= 0 the optimum takes it, so the program's value is exactly F(x) =
sum_t G_t(x) at the best x. With x binary it is the static optimum; with x in
[0, 1] it is the concave relaxation's maximum, an upper bound on the total
gain of any static allocation. Solving each slot on its own and summing
bounds every policy, dynamic ones included.

Size: one u per (slot, type with requests, entry before the fallback), one x
per listed pair. min(r_t, .) differs per slot, so slots cannot simply be
summed; rows of a type with equal shares per request can, exactly
(:func:`merge_rows`). Long traces (past ``STATIC_LP_MAX_VARIABLES``) also
merge runs of alike rows: still a valid upper bound, and a tight one
(measured: 3M variables merged to 200k moved the bound by 1e-6 relative).
Measured on a 40-node tree, 270 types, 3300 entries, 1000 slots: static
bound 2-7 s, per-slot bound ~18 ms a slot (HiGHS dual simplex; its interior
point was 100x slower here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from ..model.request_types import RequestTypes
from .objective import Rows, build_rows, layout, slot_shares

STATIC_LP_MAX_VARIABLES = 200_000  # a few seconds of dual simplex; see idn.upper_bounds.lp.static_lp_bound


@dataclass
class Program:
    rows: Rows
    c: np.ndarray  # minimize c @ [u, x]
    A: sp.csr_matrix
    b_ub: np.ndarray
    upper: np.ndarray  # variable upper bounds (lower bounds are 0)
    n_u: int
    x_pairs: np.ndarray  # flat pair of each x column

    @property
    def n_x(self) -> int:
        return len(self.x_pairs)


def n_continuous(rt: RequestTypes, trace: np.ndarray) -> int:
    """How many u variables the program of this trace has before any merge."""
    return int((trace > 0).sum(axis=0) @ (rt.list_length - 1))


def merge_rows(rows: Rows, list_length: np.ndarray, group: int = 1) -> Rows:
    """Rows of each request type merged into fewer rows (type layout only).

    Two rows of a type with the same shares per request, l_t / r_t, are one
    row with r and l summed, exactly: then cum_t = r_t phi(y) for the same
    phi and sum_t min(r_t, r_t phi) = min(sum r_t, sum_t r_t phi). That is
    group=1. With group > 1, runs of ``group`` distinct vectors l/r
    (lexicographic order, so alike ones meet) are summed too: since
    sum_t min(a_t, b_t) <= min(sum a_t, sum b_t), the merged program's value
    is then an upper bound of the exact one, not equal to it."""
    offsets, pair, cost, share, counts, row_type = [[0]], [], [], [], [], []
    for rho in np.unique(rows.row_type):
        r0, r1 = np.searchsorted(rows.row_type, [rho, rho + 1])  # type layout: rows sorted by type
        k = int(list_length[rho])
        e0 = rows.offsets[r0]
        mat = rows.share[e0 : e0 + (r1 - r0) * k].reshape(r1 - r0, k)
        _, which = np.unique(mat[:, :-1] / rows.counts[r0:r1, None], axis=0, return_inverse=True)
        gid = which.reshape(-1) // group
        n = int(gid.max()) + 1
        order = np.argsort(gid, kind="stable")
        starts = np.searchsorted(gid[order], np.arange(n))
        share.append(np.add.reduceat(mat[order], starts, axis=0).reshape(-1))
        counts.append(np.add.reduceat(rows.counts[r0:r1][order], starts))
        pair.append(np.tile(rows.pair[e0 : e0 + k], n))
        cost.append(np.tile(rows.cost[e0 : e0 + k], n))
        offsets.append(offsets[-1][-1] + k * np.arange(1, n + 1))
        row_type.append(np.full(n, rho))
    cat = lambda parts, dt=float: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
    row_type = cat(row_type, np.int64)
    block_rows = np.searchsorted(row_type, np.arange(len(rows.block_rows)))
    return Rows(
        offsets=cat([np.asarray(o) for o in offsets], np.int64), pair=cat(pair, np.int64), cost=cat(cost),
        share=cat(share), counts=cat(counts), row_type=row_type, block_rows=block_rows,
        pair_blocks=rows.pair_blocks, n_pairs=rows.n_pairs,
    )  # fmt: skip


def build_program(rt: RequestTypes, rows: Rows) -> Program:
    idn = rt.idn
    lengths = np.diff(rows.offsets)
    row_of = np.repeat(np.arange(rows.n_rows), lengths)
    is_u = np.ones(len(rows.pair), dtype=bool)
    is_u[rows.offsets[1:] - 1] = False  # the fallback's term is always 0
    e = np.flatnonzero(is_u)
    n_u = len(e)
    x_pairs, x_col = np.unique(rows.pair[e], return_inverse=True)
    n_x = len(x_pairs)

    j = np.arange(n_u)
    has_prev = e != rows.offsets[row_of[e]]
    chain = sp.coo_matrix(
        (
            np.concatenate([np.ones(n_u), -np.ones(int(has_prev.sum())), -rows.share[e]]),
            (np.concatenate([j, j[has_prev], j]), np.concatenate([j, j[has_prev] - 1, n_u + x_col])),
        ),
        shape=(n_u, n_u + n_x),
    )
    node = x_pairs // idn.n_models
    budget_nodes, b_row = np.unique(node, return_inverse=True)
    budget = sp.coo_matrix(
        (idn.size_mb[x_pairs % idn.n_models], (b_row, n_u + np.arange(n_x))), shape=(len(budget_nodes), n_u + n_x)
    )
    return Program(
        rows=rows,
        c=np.concatenate([-(rows.cost[e + 1] - rows.cost[e]), np.zeros(n_x)]),
        A=sp.vstack([chain, budget]).tocsr(),
        b_ub=np.concatenate([np.zeros(n_u), idn.budget_mb[budget_nodes]]),
        upper=np.concatenate([rows.counts[row_of[e]], np.ones(n_x)]),
        n_u=n_u,
        x_pairs=x_pairs,
    )


def solve(prog: Program, integral: bool, who: str, time_limit: float | None = None, mip_rel_gap: float = 1e-9):
    """(objective value, x values of the listed pairs). LPs go to HiGHS' dual
    simplex (much faster here than its interior point), MILPs to HiGHS' MIP."""
    if prog.n_u == 0:  # no request can be served better than at the fallback
        return 0.0, np.zeros(prog.n_x)
    bounds = np.stack([np.zeros(len(prog.c)), prog.upper], axis=1)
    if integral:
        options = {"presolve": True, "mip_rel_gap": float(mip_rel_gap)}
        if time_limit is not None:
            options["time_limit"] = float(time_limit)
        res = milp(
            prog.c,
            constraints=LinearConstraint(prog.A, -np.inf, prog.b_ub),
            integrality=np.concatenate([np.zeros(prog.n_u), np.ones(prog.n_x)]),
            bounds=Bounds(bounds[:, 0], bounds[:, 1]),
            options=options,
        )
    else:
        options = {} if time_limit is None else {"time_limit": float(time_limit)}
        res = linprog(prog.c, A_ub=prog.A, b_ub=prog.b_ub, bounds=bounds, method="highs-ds", options=options)
    if res.status != 0 or res.x is None:
        raise ValueError(f"{who}: HiGHS stopped without an optimal solution ({str(res.message).strip()})")
    return -float(res.fun), np.clip(res.x[prog.n_u :], 0.0, 1.0)


def dense_allocation(rt: RequestTypes, prog: Program, x_vals: np.ndarray) -> np.ndarray:
    y = rt.idn.permanent.astype(float).reshape(-1)
    y[prog.x_pairs] = x_vals
    return y.reshape(rt.idn.n_nodes, rt.idn.n_models)


def exact_rows(rt: RequestTypes, trace: np.ndarray) -> Rows:
    """The trace's rows with the exact merges only (group=1)."""
    rows = build_rows(rt, trace, slot_shares(rt, trace), layout(rt, "type"))
    return merge_rows(rows, rt.list_length, 1)
