"""Randomized rounding of INFIDA's fractional state (design page, section 8,
step 4): from y in [0,1]^M with s.y <= b, draw x in {0,1}^M with s.x <= b and
E[x] = y as closely as the sizes allow.

The scheme ("largest first, pooled dependent rounding")
--------------------------------------------------------
Coordinates are put in order of decreasing size (ties in a random order). A
slack variable holds the unused budget, b - s.y >= 0. The loop keeps
s.y + slack = b and moves y only along lines that conserve that mass; each
move goes one way or the other with the probabilities that keep E[y]
unchanged (a martingale), and each makes one more coordinate 0 or 1 (or
empties the slack, once):
1. The pivot i is the first fractional coordinate in the order.
2. If the next fractional coordinate j has the same size: a plain DepRound
   step on the pair, s_i dy_i = -s_j dy_j, until one of them hits 0 or 1.
3. Otherwise i is larger than every other fractional coordinate. Paired with
   one small model at a time (the design page's literal scheme) only the
   small one would ever reach 0 or 1: the pivot creeps by s_j / s_i per step
   and ends as the last fractional coordinate, rounded down -- the starved
   large model (tests/test_rounding.py shows it losing most of y = 0.65). So
   i is paired with the pool of all other fractional coordinates: the pool
   takes -s_i dy_i, model j at most
       cap_j = min(s_j y_j / (s_i (1 - y_i)), s_j (1 - y_j) / (s_i y_i)),
   the largest share with which j stays in [0,1] while i goes all the way to
   1 or to 0. Shares are handed out up to a total of 1, in this order: first
   the models too large to fit beside i once i is in (mass they keep in
   that branch is mostly lost), then the other models, then the slack (it can
   give up to its size and take without limit; it comes last because
   spending it on a large pivot leaves no room for the smaller coordinates
   rounded after it). If that reaches 1, i is rounded in this one step, both
   ways; otherwise all shares are scaled to sum to 1, the step goes as far as
   pool and slack allow and the loop repeats.
4. A last fractional coordinate f (no pool, no slack left) is drawn up with
   probability y_f. If it does not fit next to the models already chosen,
   the smallest chosen models that were fractional in y (rounded up on the
   way) are evicted to make room (and those that then fit again put back,
   largest first) -- unless that would evict s_f MB or more, or cannot make
   the room: then f is rounded down. Models at 1 in y are never evicted: the
   state is sure of them (the projection caps exactly the models with the
   most gain per MB), and evicting them to fit f cost INFIDA up to 40% of its
   gain on small instances (tests/test_guarantee.py; docs/model.md).
Models larger than the whole budget are set to 0 first and their mass
becomes slack (they can never be hosted; the others are not affected).

What is guaranteed (exactly, up to floating point)
--------------------------------------------------
- Budget, always: s.x <= b + tol, tol = 1e-9 * max(1, b) (the same slack as
  the network's own allocation check). In exact arithmetic s.x <= b; a final
  guard drops items if rounding error ever pushed s.x above b + tol.
- No model is over-selected: E[x_m] <= y_m for every m. Steps 1-3 are exact
  martingales, so the whole bias comes from step 4 and from models larger
  than b: f keeps E[x_f] = y_f when it is drawn up (and loses y_f when it
  must go down), evicted models lose what they were evicted for; models at
  1 in y keep E[x_m] = 1 exactly.
- The total bias in MB, sum_m s_m (y_m - E[x_m]) (models larger than b aside),
  is at most E[y_f s_f] < max_m s_m: less than one model.
- Exact marginals, E[x] = y, whenever step 4 is not reached with a
  coordinate that does not fit; in particular:
  * equal sizes s and integer b / s: this is exactly DepRound, and if
    sum y = b / s exactly b / s models are chosen in every draw;
  * everything fits together (sum s <= b);
  * a lone fractional coordinate beside integral ones with room for it (the
    150 MB model at y = 0.65 next to five 10 MB models at 1, b = 200);
  * a large model whose rounding the smaller ones can absorb (caps summing to
    >= 1 at each pivot), e.g. sizes [150] + 20 x [10], b = 200, y_0 = 0.65.
- Residual bias: the knapsack can make y unreachable (no mix of feasible
  sets has marginals y: sizes [150, 100, 100], b = 200, y = (.5, .625, .625));
  then the loss falls on the last pivot or on the smallest chosen models.
  Measured against a linear program over all feasible sets on 2000 random
  nodes of 2-6 models: where y is reachable the rounding is exact in 97% of
  them, and the MB it loses exceed the least possible loss (the largest
  s.E[x] of any law on feasible sets with E[x] <= y) by 0.2% of b on
  average, 6% at worst (tests/test_rounding.py keeps a smaller version).

Randomness: every draw takes its uniforms from the ``numpy.random.Generator``
given (n + 2 coins and n tie keys per node of n coordinates), so the same
seed gives the same x. The coins drive the steps in turn (the last one step
4); the tie keys drive a Fisher-Yates shuffle of each run of equal sizes,
i.e. ties are put in a uniformly random order. ``CoupledRounding`` keeps
those uniforms (and the order they give) between slots so that x is a fixed
function of y and changes only where y moved (low churn); ``FreshRounding``
draws new ones every slot.

The numba kernels are in :mod:`.rounding_core` (how they are made fast is
said there); this module checks the input and draws the uniforms.
"""

from __future__ import annotations

import numpy as np

from .rounding_core import (  # noqa: F401  (BUDGET_RTOL: part of this module's API)
    BUDGET_RTOL,
    _round_many,
    _round_nodes,
    _size_order,
    _tie_order,
    _y_is_feasible,
)


# ------------------------------------------------------------- public API
def round_allocation(y, sizes, budget: float, rng: np.random.Generator) -> np.ndarray:
    """One draw x in {0,1}^M (bool) from y for one node; see the module docstring."""
    y, s, b = _check_one(y, sizes, budget)
    coins, keys = rng.random(y.size + 2), rng.random(y.size)
    return _round_many(y, s, b, coins[None], keys[None], *_size_order(s, np.array([0, s.size])))[0].view(bool)


def round_many(y, sizes, budget: float, rng: np.random.Generator, n: int) -> np.ndarray:
    """n independent draws for one node, shape (n, M) bool."""
    y, s, b = _check_one(y, sizes, budget)
    if int(n) < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    coins, keys = rng.random((int(n), y.size + 2)), rng.random((int(n), y.size))
    return _round_many(y, s, b, coins, keys, *_size_order(s, np.array([0, s.size]))).view(bool)


def round_nodes(y_flat, sizes_flat, node_offsets, budgets, rng: np.random.Generator) -> np.ndarray:
    """One draw for every node at once (flat arrays, CSR ``node_offsets``)."""
    y, s, off, b = _check_nodes(y_flat, sizes_flat, node_offsets, budgets)
    coins, keys = rng.random(y.size + 2 * (off.size - 1)), rng.random(y.size)
    order = np.empty(y.size, np.int64)
    _tie_order(*_size_order(s, off), keys, order)
    return _round_nodes(y, s, off, b, coins, order).view(bool)


class FreshRounding:
    """Independent rounding every slot. Built for one node (``sizes``,
    scalar ``budgets``) or for many (flat ``sizes``, ``budgets`` per node and
    CSR ``node_offsets``); ``round(y, rng)`` takes y in the same layout.

    ``draw_layout`` (from :func:`slice_draw_layout`) makes a rounding of some
    nodes draw exactly the uniforms those nodes get in a rounding of a larger
    layout with the same generator: a live node rounds its own slice with the
    numbers the simulator's whole-network rounding gives it."""

    name = "fresh"

    def __init__(self, sizes, budgets, node_offsets=None, draw_layout=None):
        s = np.asarray(sizes, dtype=float)
        self._single = node_offsets is None
        off = np.array([0, s.size]) if self._single else node_offsets
        b = np.atleast_1d(np.asarray(budgets, dtype=float)) if self._single else budgets
        _, self.sizes, self.node_offsets, self.budgets = _check_nodes(np.zeros(s.size), s, off, b)
        self._size_order = _size_order(self.sizes, self.node_offsets)  # the sizes never change
        self._draw_layout = draw_layout

    def round(self, y, rng: np.random.Generator) -> np.ndarray:
        y = self._check_y(y)
        coins, order = self._draw(rng)
        return _round_nodes(y, self.sizes, self.node_offsets, self.budgets, coins, order).view(bool)

    def _draw(self, rng):
        """The coins and the order they go with (ties by the random keys)."""
        n = self.sizes.size
        if self._draw_layout is None:
            coins, keys = rng.random(n + 2 * (self.node_offsets.size - 1)), rng.random(n)
        else:  # a slice of a larger layout: draw the whole layout's uniforms, keep this slice's
            n_coins, n_keys, coin_index, key_index = self._draw_layout
            coins, keys = rng.random(n_coins)[coin_index], rng.random(n_keys)[key_index]
        order = np.empty(n, np.int64)
        _tie_order(*self._size_order, keys, order)
        return coins, order

    def _check_y(self, y):
        y = np.ascontiguousarray(y, dtype=float)
        if y.shape != self.sizes.shape or not _y_is_feasible(y, self.sizes, self.node_offsets, self.budgets):
            y, _, _, _ = _check_nodes(y, self.sizes, self.node_offsets, self.budgets)  # names the culprit
        return y


class CoupledRounding(FreshRounding):
    """Low-churn rounding: the same scheme and the same per-slot guarantees
    as ``FreshRounding`` (the uniforms are still uniform and independent of
    y), but the uniforms are drawn once, on the first call, and reused every
    slot; x is then a fixed function of y, so it changes only where a move of
    y crosses one of the fixed thresholds. The per-slot law is exact as long
    as y does not depend on the uniforms, i.e. on past draws of x (INFIDA's
    y depends only on the requests). Slots are strongly correlated instead
    of independent; ``refresh_every`` (slots, None = never) redraws the
    uniforms now and then, which decorrelates slots far apart."""

    name = "coupled"

    def __init__(self, sizes, budgets, node_offsets=None, refresh_every: int | None = None, draw_layout=None):
        super().__init__(sizes, budgets, node_offsets, draw_layout)
        if refresh_every is not None and int(refresh_every) < 1:
            raise ValueError(f"refresh_every must be >= 1 or None, got {refresh_every}")
        self.refresh_every = refresh_every
        self.reset()

    def reset(self) -> None:
        self._coins = self._order = None
        self._slot = 0

    def round(self, y, rng: np.random.Generator) -> np.ndarray:
        y = self._check_y(y)
        if self._coins is None or (self.refresh_every and self._slot % int(self.refresh_every) == 0):
            self._coins, self._order = self._draw(rng)
        self._slot += 1
        return _round_nodes(y, self.sizes, self.node_offsets, self.budgets, self._coins, self._order).view(bool)


def slice_draw_layout(full_offsets, local_offsets) -> tuple:
    """(n_coins, n_keys, coin_index, key_index) for a rounding over
    ``local_offsets``: the same nodes as ``full_offsets`` (CSR), each either
    whole or empty. A node's coins sit at [a + 2v, e + 2v + 2) and its tie
    keys at [a, e) of the draw, so the slice's positions map one to one."""
    full, local = np.asarray(full_offsets, dtype=np.int64), np.asarray(local_offsets, dtype=np.int64)
    if full.shape != local.shape:
        raise ValueError(f"offsets of {full.size - 1} and {local.size - 1} nodes: not the same nodes")
    n_local, n_full = np.diff(local), np.diff(full)
    if np.any((n_local != 0) & (n_local != n_full)):
        raise ValueError("a node of the slice keeps part of its coordinates: slices hold nodes whole")
    v = np.arange(n_full.size)
    coin_index = np.concatenate([np.arange(full[i] + 2 * i, full[i] + 2 * i + n_local[i] + 2) for i in v] or [np.zeros(0, np.int64)])
    key_index = np.concatenate([np.arange(full[i], full[i] + n_local[i]) for i in v] or [np.zeros(0, np.int64)])
    return int(full[-1] + 2 * n_full.size), int(full[-1]), coin_index.astype(np.int64), key_index.astype(np.int64)


ROUNDINGS = {"fresh": FreshRounding, "coupled": CoupledRounding}


def make_rounding(name: str, sizes, budgets, node_offsets=None, **options):
    """The rounding called ``name`` ("fresh" or "coupled") for these nodes."""
    if name not in ROUNDINGS:
        raise ValueError(f"unknown rounding {name!r}, expected one of {sorted(ROUNDINGS)}")
    return ROUNDINGS[name](sizes, budgets, node_offsets, **options)


# ------------------------------------------------------------- validation
def _check_one(y, sizes, budget):
    y = np.asarray(y, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}")
    y, s, _, b = _check_nodes(y, sizes, np.array([0, y.size]), np.array([budget], dtype=float))
    return y, s, float(b[0])


def _check_nodes(y, sizes, node_offsets, budgets):
    y = np.ascontiguousarray(y, dtype=float)
    s = np.ascontiguousarray(sizes, dtype=float)
    off = np.ascontiguousarray(node_offsets, dtype=np.int64)
    b = np.ascontiguousarray(budgets, dtype=float)
    if y.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"y {y.shape} and sizes {s.shape} must be 1-D of the same length")
    if off.ndim != 1 or off.size < 1 or off[0] != 0 or off[-1] != y.size or np.any(np.diff(off) < 0):
        raise ValueError(f"node_offsets must rise from 0 to {y.size}")
    if b.shape != (off.size - 1,):
        raise ValueError(f"budgets has shape {b.shape}, expected ({off.size - 1},)")
    if np.any(~np.isfinite(s)) or np.any(s <= 0):
        bad = int(np.flatnonzero(~np.isfinite(s) | (s <= 0))[0])
        raise ValueError(f"sizes must be finite and > 0, entry {bad} is {s[bad]}")
    if np.any(~np.isfinite(b)) or np.any(b < 0):
        bad = int(np.flatnonzero(~np.isfinite(b) | (b < 0))[0])
        raise ValueError(f"budgets must be finite and >= 0, node {bad} has {b[bad]}")
    if np.any(~np.isfinite(y)) or np.any(y < -1e-9) or np.any(y > 1 + 1e-9):
        bad = int(np.flatnonzero(~np.isfinite(y) | (y < -1e-9) | (y > 1 + 1e-9))[0])
        raise ValueError(f"y must lie in [0, 1], entry {bad} is {y[bad]}")
    seg = np.repeat(np.arange(b.size), np.diff(off))
    used = np.bincount(seg, s * np.clip(y, 0, 1), b.size)
    over = used > b + 1e-7 * np.maximum(1.0, b)
    if over.any():
        v = int(np.flatnonzero(over)[0])
        raise ValueError(f"y uses {used[v]:g} MB on node {v}, over its budget of {b[v]:g} MB")
    return y, s, off, b
