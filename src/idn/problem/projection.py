"""INFIDA's Bregman projection (design page, section 8, step 3).

Each node v keeps a fractional state in
    Y_v = {y in [0,1]^M : sum_m s_m y_m = b_v}.
After the multiplicative step y_hat = y * exp(eta * g / s), the state goes back
to Y_v by the Bregman projection under Phi(y) = sum_m s_m y_m log y_m:
    y' = argmin_{y in Y_v} D_Phi(y, y_hat),
    D_Phi(y, y_hat) = sum_m s_m (y_m log(y_m / y_hat_m) - y_m + y_hat_m).
The KKT conditions give s_m log(y_m / y_hat_m) + lambda s_m + mu_m = 0 with
mu_m >= 0 only where y_m = 1; the size s_m cancels, so
    y'_m = min(1, c * y_hat_m)
with one scalar c such that sum_m s_m min(1, c y_hat_m) = b_v. The left side is
continuous and non-decreasing in c, its breakpoints are c = 1 / y_hat_m, so
sorting y_hat in decreasing order and counting how many breakpoints stay
within the budget gives the number of capped coordinates k and then
c = (b - sum of the k largest' sizes) / (sum of s y_hat over the others):
exact, O(M log M).

Edge cases (all documented decisions):
- b_v >= sum_m s_m: everything fits, y' = 1 (the design page's "if all models
  fit, y_v = 1").
- b_v == 0: y' = 0, the only point of Y_v.
- y_hat is scale invariant: project(a * y_hat) == project(y_hat) for a > 0.
  ``log_input=True`` takes log(y_hat) instead and shifts it per node before
  exponentiating, so INFIDA never overflows exp.
- Zeros of y_hat. D_Phi(y, y_hat) is infinite unless y_m = 0 where
  y_hat_m = 0, so the exact projection keeps such a coordinate at 0 when the
  positive coordinates can fill the budget; otherwise (they cannot) we take the
  limit of the projection as the zeros tend to 0+: positives at 1 and the zeros
  sharing the rest equally, (b - S_pos) / S_zero. A coordinate at 0 would stay
  there forever under the multiplicative update, so every result is then
  mixed with the uniform point u of Y_v, y <- (1 - lam) y + lam u, with the
  smallest lam that lifts every coordinate to at least ``min_y``
  (default 1e-12; capped at u / 2 for a tiny budget). The mixture stays in
  Y_v (it is convex) and moves each coordinate by at most lam, which is about
  min_y * sum(s) / b. lam = 0 whenever y' is already above the floor, which is
  every case INFIDA meets in practice (its state starts at u and only ever
  gets multiplied by exp(...) > 0).

Many nodes at once: ``project_nodes`` takes flat arrays with CSR-style
``node_offsets`` (node v owns entries node_offsets[v]:node_offsets[v+1]), all
nodes in one vectorized pass; ``project_dense`` wraps it for (V, M) arrays
with a mask of the coordinates that are free to move.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MIN_Y = 1e-12


def uniform_point(sizes, budget: float) -> np.ndarray:
    """INFIDA's starting state, the uniform point of Y_v: the constant vector
    y_m = min(1, b / sum_m s_m) for every m. It is in Y_v (s.y = b unless
    everything fits, then y = 1), and it minimizes Phi over Y_v (the KKT
    condition s_m (log y_m + 1) = lambda s_m makes y constant): the usual
    start of mirror ascent, from which the Bregman diameter
    D^2 = b log(sum s / b) of the regret bound is measured."""
    s = _check_sizes(np.asarray(sizes, dtype=float), "sizes")
    b = _check_budget(budget, "budget")
    total = s.sum()
    if s.size == 0:
        return np.zeros(0)
    return np.full(s.size, min(1.0, b / total))


def project_capped_simplex(
    y_hat, sizes, budget: float, *, min_y: float = MIN_Y, log_input: bool = False
) -> np.ndarray:
    """Bregman projection of y_hat >= 0 onto {y in [0,1]^M : s.y = b} under
    the weighted negative entropy: min(1, c * y_hat). See the module docstring
    for zeros, the floor ``min_y`` and ``log_input``."""
    y_hat = np.asarray(y_hat, dtype=float)
    s = _check_sizes(np.asarray(sizes, dtype=float), "sizes")
    if y_hat.ndim != 1 or s.shape != y_hat.shape:
        raise ValueError(f"y_hat {y_hat.shape} and sizes {s.shape} must be 1-D of the same length")
    return project_nodes(
        y_hat, s, np.array([0, y_hat.size]), np.array([budget], dtype=float),
        min_y=min_y, log_input=log_input,
    )


def project_nodes(
    y_hat_flat, sizes_flat, node_offsets, budgets, *, min_y: float = MIN_Y, log_input: bool = False
) -> np.ndarray:
    """``project_capped_simplex`` for every node at once; node v owns the flat
    entries node_offsets[v]:node_offsets[v+1] and has budget budgets[v]."""
    z = np.asarray(y_hat_flat, dtype=float)
    s = _check_sizes(np.asarray(sizes_flat, dtype=float), "sizes_flat")
    off = np.asarray(node_offsets, dtype=np.int64)
    b = np.asarray(budgets, dtype=float)
    n_nodes = off.size - 1
    if z.shape != s.shape or z.ndim != 1:
        raise ValueError(f"y_hat_flat {z.shape} and sizes_flat {s.shape} must be 1-D of the same length")
    if off.ndim != 1 or off.size < 1 or off[0] != 0 or off[-1] != z.size or np.any(np.diff(off) < 0):
        raise ValueError(f"node_offsets must rise from 0 to {z.size}")
    if b.shape != (n_nodes,):
        raise ValueError(f"budgets has shape {b.shape}, expected ({n_nodes},)")
    if np.any(~np.isfinite(b)) or np.any(b < 0):
        raise ValueError(f"budgets must be finite and >= 0, node {int(np.flatnonzero(~(b >= 0) | ~np.isfinite(b))[0])}")
    _check_y_hat(z, log_input)
    y = np.empty(z.size)
    _project_kernel(np.ascontiguousarray(z), np.ascontiguousarray(s), np.ascontiguousarray(off), np.ascontiguousarray(b),
                    float(min_y), bool(log_input), y)  # fmt: skip
    return y


def project_nodes_unchecked(z, sizes, node_offsets, budgets, out, *, min_y: float = MIN_Y, log_input: bool = False):
    """``project_nodes`` into ``out`` without checking anything: for per-slot
    loops (INFIDA) whose sizes, offsets and budgets were checked once and
    whose y_hat is finite by construction. float64 / int64 contiguous arrays."""
    _project_kernel(z, sizes, node_offsets, budgets, float(min_y), bool(log_input), out)
    return out


def project_dense(Y_hat, sizes, budgets, mask=None, **kwargs) -> np.ndarray:
    """Projection of a (V, M) state row by row over the coordinates where
    ``mask`` is True (the free, non-permanent pairs that fit); entries off the
    mask come back as 0. ``sizes`` is (M,) or (V, M)."""
    Y_hat = np.asarray(Y_hat, dtype=float)
    if Y_hat.ndim != 2:
        raise ValueError(f"Y_hat must be (V, M), got shape {Y_hat.shape}")
    S = np.broadcast_to(np.asarray(sizes, dtype=float), Y_hat.shape)
    mask = np.ones(Y_hat.shape, bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != Y_hat.shape:
        raise ValueError(f"mask has shape {mask.shape}, expected {Y_hat.shape}")
    offsets = np.concatenate([[0], np.cumsum(mask.sum(axis=1))])
    out = np.zeros_like(Y_hat)
    out[mask] = project_nodes(Y_hat[mask], S[mask], offsets, budgets, **kwargs)
    return out


def bregman_divergence(y, y_hat, sizes) -> float:
    """D_Phi(y, y_hat) = sum s (y log(y / y_hat) - y + y_hat), with 0 log 0 = 0."""
    y, y_hat, s = (np.asarray(a, dtype=float) for a in (y, y_hat, sizes))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(y > 0, y * np.log(y / y_hat), 0.0)
    return float(np.sum(s * (t - y + y_hat)))


# ---------------------------------------------------------------- internals
def _check_y_hat(z, log_input):
    if log_input:
        if np.any(np.isnan(z)) or np.any(z == np.inf):
            bad = int(np.flatnonzero(np.isnan(z) | (z == np.inf))[0])
            raise ValueError(f"log y_hat must be < +inf and not NaN, entry {bad} is {z[bad]}")
    elif np.any(~np.isfinite(z)) or np.any(z < 0):
        bad = int(np.flatnonzero(~np.isfinite(z) | (z < 0))[0])
        raise ValueError(f"y_hat must be finite and >= 0, entry {bad} is {z[bad]}")


# One numba pass per node. The capped set is found by a fixed point rather
# than by sorting: it is exact (see _capped_scale), takes 2-4 passes on
# INFIDA's states, and never forms the long prefix sums whose differences
# lose every digit when y_hat spans many orders of magnitude (a sorted
# prefix-sum version returned s.y far from b, even negative y, on such input).
_FIXED_POINT_ROUNDS = 16


@njit(cache=True, nogil=True)
def _project_kernel(z, s, off, b, min_y, log_input, y):  # pragma: no cover - numba
    """project_nodes' arithmetic, one node at a time; y receives the result."""
    for v in range(off.size - 1):
        project_segment(z, s, off[v], off[v + 1], b[v], min_y, log_input, y)


@njit(cache=True, nogil=True)
def project_segment(z, s, a, e, bv, min_y, log_input, y):  # pragma: no cover - numba
    """One node's projection: entries a:e of z (y_hat, or its log) into the
    same entries of y (y may be z itself when not log_input)."""
    if e == a:
        return
    # y first holds the linear y_hat (>= 0), shifted per node when in logs
    if log_input:
        top = -np.inf
        for m in range(a, e):
            if z[m] > top:
                top = z[m]
        shift = top if np.isfinite(top) else 0.0
        for m in range(a, e):
            y[m] = np.exp(z[m] - shift)
    else:
        for m in range(a, e):
            y[m] = z[m]
    s_total = s_pos = mass = 0.0
    for m in range(a, e):
        s_total += s[m]
        if y[m] > 0.0:
            s_pos += s[m]
            mass += s[m] * y[m]
    if bv >= s_total:
        for m in range(a, e):
            y[m] = 1.0
    elif s_pos <= bv:  # positives cannot fill the budget: the zeros-to-0+ limit
        share = (bv - s_pos) / (s_total - s_pos if s_total > s_pos else 1.0)
        for m in range(a, e):
            y[m] = 1.0 if y[m] > 0.0 else share
    elif bv > 0.0:
        c = _capped_scale(y, s, a, e, bv, mass)
        for m in range(a, e):
            y[m] = min(1.0, c * y[m])
    else:
        for m in range(a, e):
            y[m] = 0.0
    if min_y > 0.0:
        _lift(y, a, e, min(1.0, bv / (s_total if s_total > 0.0 else 1.0)), min_y)


@njit(cache=True, nogil=True)
def _capped_scale(z, s, a, e, b, mass):  # pragma: no cover - numba
    """The c of min(1, c z) = projection, z >= 0, 0 < b < s.[z > 0].

    Fixed point from below: c_0 = b / sum s z makes sum s min(1, c z) <= b,
    and c_{k+1} = (b - s(capped at c_k)) / (mass not capped at c_k) stays
    <= c* while the capped set only grows (each coordinate capped at c_k is
    capped at c*), so it stops at the exact capped set in a few rounds; far
    from the usual case (many rounds) it falls back to sorting. The last c is
    from plain sums over the capped set, as the sorted form's is."""
    c = b / mass
    n_capped = 0
    for _ in range(_FIXED_POINT_ROUNDS):
        capped_s = rest = 0.0
        count = 0
        z_low = np.inf  # smallest capped z: c must stay >= 1 / z_low
        for m in range(a, e):
            if z[m] > 0.0:
                if c * z[m] >= 1.0:
                    capped_s += s[m]
                    count += 1
                    z_low = min(z_low, z[m])
                else:
                    rest += s[m] * z[m]
        c = (b - capped_s) / (rest if rest > 0.0 else 1.0)
        if count == n_capped:
            # exact arithmetic keeps the capped set capped; cancellation in
            # b - capped_s must not un-cap it (y would lose the budget)
            return max(c, 1.0 / z_low) if count > 0 else c
        n_capped = count
    return _capped_scale_sorted(z, s, a, e, b, mass)


@njit(cache=True, nogil=True)
def _capped_scale_sorted(z, s, a, e, b, mass):  # pragma: no cover - numba
    """The module docstring's O(M log M) form: sort z down, cap the largest
    while the breakpoint c = 1 / z_k keeps the budget. The mass left
    uncapped is summed from the small end (never as a difference of sums)."""
    order = np.argsort(-z[a:e], kind="mergesort")
    n_pos = 0
    for m in range(a, e):
        if z[m] > 0.0:
            n_pos += 1
    rest_from = np.zeros(n_pos + 1)  # mass of the positives after position i in the order
    for i in range(n_pos - 1, -1, -1):
        j = a + order[i]
        rest_from[i] = rest_from[i + 1] + s[j] * z[j]
    capped_s = 0.0
    k = 0
    for i in range(n_pos - 1):  # at least one coordinate stays uncapped
        j = a + order[i]
        # budget used at c = 1 / z_j: positions 0..i capped, the rest at c z
        if capped_s + s[j] + rest_from[i + 1] / z[j] > b:
            break
        capped_s += s[j]
        k += 1
    c = (b - capped_s) / rest_from[k]
    if k > 0:  # the capped ones stay capped even when b - capped_s cancels to ~0
        c = max(c, 1.0 / z[a + order[k - 1]])
    return c


@njit(cache=True, nogil=True)
def _lift(y, a, e, u, min_y):  # pragma: no cover - numba
    floor = min(min_y, 0.5 * u)
    lam = 0.0
    for m in range(a, e):
        if y[m] < floor:
            lam = max(lam, (floor - y[m]) / (u - y[m]))
    if lam > 0.0:
        for m in range(a, e):
            y[m] = (1.0 - lam) * y[m] + lam * u


def _check_sizes(s, name):
    if np.any(~np.isfinite(s)) or np.any(s <= 0):
        bad = int(np.flatnonzero(~np.isfinite(s) | (s <= 0))[0])
        raise ValueError(f"{name} must be finite and > 0, entry {bad} is {s.flat[bad]}")
    return s


def _check_budget(b, name):
    b = float(b)
    if not np.isfinite(b) or b < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {b}")
    return b
