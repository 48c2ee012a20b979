"""The numba core of :mod:`.rounding` (the scheme is stated in that module's
docstring; this is the same scheme, made fast).

Where the time goes and why it is laid out so. Per node, the coordinates
still fractional are kept in order (decreasing size, ties shuffled) in three
work arrays (y, size, index); a coordinate that reaches 0 or 1 is dropped
from them, so no later step scans it again, and the pivot is always the
first entry. A pool step makes one pass for the caps (a vectorized sum) and
one for the move; how far the step can go needs no pass of its own except
when the shares are scaled up (caps and slack short of 1), since shares at
most the caps let the pivot reach 0 or 1 first. A DepRound step on two equal
sizes works in units of y (no division). The size order of every node is
computed once per rounding object: only the runs of equal sizes are
shuffled per draw, by an inside-out Fisher-Yates shuffle driven by the tie
keys, O(n).
"""

from __future__ import annotations

import numpy as np
from numba import njit

BUDGET_RTOL = 1e-9
_SNAP = 1e-12  # a coordinate this close to 0 or 1 is integral


# ----------------------------------------------------------------- the core
@njit(cache=True)
def _snapped(v, size, b, tol):
    """y clipped to [0, 1] and snapped; 0 for a model larger than the budget."""
    v = min(1.0, max(0.0, v))
    if size > b + tol or v < _SNAP:
        return 0.0
    return 1.0 if v > 1.0 - _SNAP else v


@njit(cache=True)
def _snap(v):
    if v < _SNAP:
        return 0.0
    return 1.0 if v > 1.0 - _SNAP else v


@njit(cache=True)
def _tie_order(by_size, run_start, keys, order):
    """Per node, local indices by decreasing size, each run of equal sizes in
    a uniformly random order: an inside-out Fisher-Yates shuffle of the run
    in ``by_size`` (the same order with ties by index; ``run_start``: the
    first position of each position's run; both computed once), one key per
    position. The same law as sorting the ties by iid keys, in O(n)."""
    for r in range(by_size.size):
        j = min(r, run_start[r] + int(keys[r] * (r - run_start[r] + 1)))  # uniform on the run up to r
        order[r] = order[j]
        order[j] = by_size[r]


@njit(cache=True)
def _round_one(y_in, s, b, coins, order, x, ys, ss, idx):
    """One node. coins: n + 2 uniforms (one per step, the last for step 4);
    order: local indices by decreasing size, ties in random order. Sets the
    chosen entries of x (uint8, zero on entry). ys, ss, idx: work arrays of
    n or more, holding the fractional coordinates still to round, in order,
    from position f (the pivot) to e: integral ones are dropped as they
    appear, so no step scans them again."""
    n = y_in.size
    tol = BUDGET_RTOL * max(1.0, b)
    mass = 0.0
    for m in range(n):
        mass += s[m] * _snapped(y_in[m], s[m], b, tol)
    slack = b - mass
    if slack <= tol:
        slack = 0.0
    ones = 0.0  # MB of the models at 1
    e = 0
    for r in range(n):
        m = order[r]
        v = _snapped(y_in[m], s[m], b, tol)
        if v == 1.0:
            x[m] = 1
            ones += s[m]
        elif v > 0.0:
            ys[e], ss[e], idx[e] = v, s[m], m
            e += 1
    f = step = 0
    final = -1
    while f < e:
        yi, si = ys[f], ss[f]
        coin = coins[min(step, coins.size - 2)]
        step += 1
        if f + 1 < e and ss[f + 1] == si:
            # DepRound step on a pair of equal sizes, in units of y: it keeps
            # sigma = y_i + y_j; one of the two ends at 0 (sigma <= 1) or at 1
            # (sigma > 1) and the other, the keeper, carries the rest
            yj = ys[f + 1]
            sigma = yi + yj
            if sigma <= 1.0:  # i takes sigma with probability y_i / sigma
                i_keeps = coin * sigma < yi
                end, v = 0.0, sigma
            else:  # i ends at 1 with probability (1 - y_j) / (2 - sigma)
                i_keeps = coin * (2.0 - sigma) >= 1.0 - yj
                end, v = 1.0, sigma - 1.0
            keeper, ender = (idx[f], idx[f + 1]) if i_keeps else (idx[f + 1], idx[f])
            if end == 1.0:
                x[ender] = 1
                ones += si
            v = _snap(v)
            if v == 0.0 or v == 1.0:  # both end
                if v == 1.0:
                    x[keeper] = 1
                    ones += si
                f += 2
            else:  # the keeper is the next pivot
                ys[f + 1], idx[f + 1] = v, keeper
                f += 1
            continue
        if f + 1 < e and abs(ss[f + 1] - si) <= 1e-12 * si:
            # the same up to rounding error: s_i dy_i = -s_j dy_j
            yj, sj = ys[f + 1], ss[f + 1]
            a1 = min(si * (1.0 - yi), sj * yj)  # mass into i
            a2 = min(si * yi, sj * (1.0 - yj))  # mass out of i
            if coin * (a1 + a2) < a2:
                yi, yj = (1.0 if si * (1.0 - yi) <= a1 else yi + a1 / si), (0.0 if sj * yj <= a1 else yj - a1 / sj)
            else:
                yi, yj = (0.0 if si * yi <= a2 else yi - a2 / si), (1.0 if sj * (1.0 - yj) <= a2 else yj + a2 / sj)
            yi, yj = _snap(yi), _snap(yj)
            i_done, j_done = yi == 0.0 or yi == 1.0, yj == 0.0 or yj == 1.0
            if yi == 1.0:
                x[idx[f]] = 1
                ones += si
            if yj == 1.0:
                x[idx[f + 1]] = 1
                ones += sj
            if i_done and j_done:
                f += 2
            elif i_done:  # j is the next pivot
                ys[f + 1] = yj
                f += 1
            elif j_done:  # i stays the pivot, in j's place
                ys[f + 1], ss[f + 1], idx[f + 1] = yi, si, idx[f]
                f += 1
            else:
                ys[f], ys[f + 1] = yi, yj
            continue
        # pivot against the pool (positions f+1..e) + slack. Sizes decrease
        # along the pool, so the members too large to fit beside the pivot
        # once it is in come first: positions f+1..k
        need_up = si * (1.0 - yi)
        need_down = si * yi
        after = b + tol - si - ones
        k = f + 1
        while k < e and ss[k] > after:
            k += 1
        inv_up, inv_down = 1.0 / need_up, 1.0 / need_down
        cap_big = _pool_caps(ys, ss, f + 1, k, inv_up, inv_down)
        cap_small = _pool_caps(ys, ss, k, e, inv_up, inv_down)
        cap_slack = slack / need_up
        if cap_big + cap_small + cap_slack == 0.0:
            final = f  # no pool, no slack: step 4
            break
        # shares, filled in this order up to a total of 1: the models that the
        # pivot would shut out (their mass is lost if they keep it), the other
        # models, the slack (kept for the models rounded after this one)
        scale_big = scale_small = 1.0
        w_slack = 0.0
        t_up, t_down = 1.0 - yi, yi
        if cap_big >= 1.0:
            scale_big, scale_small = 1.0 / cap_big, 0.0
        elif cap_big + cap_small >= 1.0:
            scale_small = (1.0 - cap_big) / cap_small
        elif cap_big + cap_small + cap_slack >= 1.0:
            w_slack = 1.0 - cap_big - cap_small
        else:
            total = cap_big + cap_small + cap_slack
            scale_big = scale_small = 1.0 / total
            w_slack = cap_slack / total
            # how far the step can go each way: member j (share w_j) stops i
            # at s_j y_j / (s_i w_j) = max(need_up, need_down y_j / (1 - y_j))
            # / (s_i scale) going up, and symmetrically going down, so the
            # least and the largest y of each group settle it. (With shares
            # at most the caps, none stops i before 0 or 1, nor does the slack.)
            if k > f + 1:
                t_up, t_down = _pool_reach(ys, f + 1, k, need_up, need_down, si * scale_big, t_up, t_down)
            if e > k:
                t_up, t_down = _pool_reach(ys, k, e, need_up, need_down, si * scale_small, t_up, t_down)
            t_up = min(t_up, slack / (si * w_slack)) if w_slack > 0.0 else t_up
        gives = coin * (t_up + t_down) < t_down  # the pool gives mass, i goes up
        if gives:
            t = t_up
            yi = 1.0 if t >= 1.0 - yi else yi + t
        else:
            t = t_down
            yi = 0.0 if t >= yi else yi - t
        ended = _pool_move(ys, f + 1, k, si * t * scale_big, inv_up, inv_down, gives)
        if scale_small > 0.0:
            ended += _pool_move(ys, k, e, si * t * scale_small, inv_up, inv_down, gives)
        if ended > 0:
            e, ones = _drop_ended(ys, ss, idx, x, f + 1, e, ones)
        if w_slack > 0.0:
            slack += (-1.0 if gives else 1.0) * si * t * w_slack
            if slack <= tol:
                slack = 0.0
        yi = _snap(yi)
        if yi == 0.0 or yi == 1.0:
            if yi == 1.0:
                x[idx[f]] = 1
                ones += si
            f += 1
        else:
            ys[f] = yi
    used = 0.0
    for m in range(n):
        if x[m] == 1:
            used += s[m]
    if final >= 0 and coins[coins.size - 1] < ys[final]:
        used = _make_room(x, s, b + tol, used, idx[final], order, y_in, b, tol)
    # guard against floating-point drift only: drop the smallest-y items
    while used > b + tol:
        worst = -1
        for m in range(n):
            if x[m] == 1 and (worst < 0 or y_in[m] < y_in[worst]):
                worst = m
        x[worst] = 0
        used -= s[worst]


@njit(cache=True, fastmath={"reassoc"})  # reassociating the sum lets it vectorize
def _pool_caps(ys, ss, a, e, inv_up, inv_down):
    """Sum of cap_j = s_j min(y_j / need_up, (1 - y_j) / need_down) over
    positions a..e."""
    cap = 0.0
    for r in range(a, e):
        cap += ss[r] * min(ys[r] * inv_up, (1.0 - ys[r]) * inv_down)
    return cap


@njit(cache=True)
def _pool_reach(ys, a, e, need_up, need_down, scaled, t_up, t_down):
    """t_up, t_down capped where a member at positions a..e reaches 0 or 1."""
    lo, hi = 1.0, 0.0
    for r in range(a, e):
        lo = min(lo, ys[r])
        hi = max(hi, ys[r])
    t_up = min(t_up, max(need_up, need_down * lo / (1.0 - lo)) / scaled)
    return t_up, min(t_down, max(need_up * (1.0 - hi) / hi, need_down) / scaled)


@njit(cache=True)
def _pool_move(ys, a, e, g, inv_up, inv_down, gives):
    """Moves the members at positions a..e by their share of the step,
    dy_j = s_i t w_j / s_j = g min(y_j / need_up, (1 - y_j) / need_down),
    down if the pool gives. Returns how many ended at 0 or 1. (Branch-free
    loop bodies: a member going down cannot reach 1, nor one going up 0.)"""
    ended = 0
    if gives:
        for r in range(a, e):
            y = ys[r]
            dy = g * min(y * inv_up, (1.0 - y) * inv_down)
            v = y - dy
            v = 0.0 if (y <= dy * (1 + 1e-12) or v < _SNAP) else v
            ys[r] = v
            ended += v == 0.0
    else:
        for r in range(a, e):
            y = ys[r]
            dy = g * min(y * inv_up, (1.0 - y) * inv_down)
            v = y + dy
            v = 1.0 if (1.0 - y <= dy * (1 + 1e-12) or v > 1.0 - _SNAP) else v
            ys[r] = v
            ended += v == 1.0
    return ended


@njit(cache=True)
def _drop_ended(ys, ss, idx, x, a, e, ones):
    """Sets x for the members at positions a..e that ended at 1 and drops
    every ended one, keeping the order. Returns the new end and the MB at 1."""
    w = a
    for r in range(a, e):
        if ys[r] == 1.0:
            x[idx[r]] = 1
            ones += ss[r]
        elif ys[r] > 0.0:
            ys[w], ss[w], idx[w] = ys[r], ss[r], idx[r]
            w += 1
    return w, ones


@njit(cache=True)
def _make_room(x, s, cap, used, f, order, y_in, b, tol):
    """Step 4, f drawn up: add f, evicting the smallest chosen models (then
    putting back, largest first, those that fit again) if it does not fit;
    keep f out instead when that would evict s_f MB or more, or when the room
    cannot be made. Models at 1 in the input y are never evicted: the state
    is sure of them, and E[x_m] = 1 must hold for them."""
    n = x.size
    room = cap - used - s[f]
    if room >= 0.0:
        x[f] = 1
        return used + s[f]
    out = np.zeros(n, np.uint8)
    for r in range(n - 1, -1, -1):  # increasing size
        j = order[r]
        if room >= 0.0:
            break
        if x[j] == 1 and _snapped(y_in[j], s[j], b, tol) != 1.0:
            out[j] = 1
            room += s[j]
    evicted = 0.0
    for r in range(n):
        j = order[r]
        if out[j] == 1:
            if s[j] <= room:
                room -= s[j]
                out[j] = 0
            else:
                evicted += s[j]
    if room < 0.0 or evicted >= s[f]:
        return used
    for j in range(n):
        if out[j] == 1:
            x[j] = 0
    x[f] = 1
    return cap - room


@njit(cache=True)
def _round_nodes(y, s, offsets, budgets, coins, order):
    """One draw for every node; order from ``_tie_order``. Returns x as uint8."""
    x = np.zeros(y.size, np.uint8)
    width = 0
    for v in range(offsets.size - 1):
        width = max(width, offsets[v + 1] - offsets[v])
    ys, ss, idx = np.empty(width), np.empty(width), np.empty(width, np.int64)
    for v in range(offsets.size - 1):
        a, e = offsets[v], offsets[v + 1]
        if e > a:
            _round_one(y[a:e], s[a:e], budgets[v], coins[a + 2 * v : e + 2 * v + 2], order[a:e], x[a:e], ys, ss, idx)
    return x


@njit(cache=True)
def _round_many(y, s, b, coins, keys, by_size, run_start):
    """coins.shape[0] draws for one node (one row of coins and keys each)."""
    n = y.size
    out = np.zeros((coins.shape[0], n), np.uint8)
    order = np.empty(n, np.int64)
    ys, ss, idx = np.empty(n), np.empty(n), np.empty(n, np.int64)
    for d in range(coins.shape[0]):
        _tie_order(by_size, run_start, keys[d], order)
        _round_one(y, s, b, coins[d], order, out[d], ys, ss, idx)
    return out


def _size_order(s, offsets):
    """(by_size, run_start) for ``_tie_order``: per node, local indices by
    decreasing size, ties by index; the first position of each run of equal
    sizes, for every position (flat)."""
    counts = np.diff(offsets)
    node = np.repeat(np.arange(counts.size), counts)
    by_size = np.lexsort((-s, node))
    first = np.ones(s.size, bool)
    first[1:] = (s[by_size][1:] != s[by_size][:-1]) | (node[1:] != node[:-1])
    run_start = np.maximum.accumulate(np.where(first, np.arange(s.size), 0))
    return by_size - offsets[node], run_start


@njit(cache=True)
def _y_is_feasible(y, s, offsets, budgets):
    """y in [0, 1] (to 1e-9) and within every budget (to 1e-7 relative): the
    one-pass check of a y for nodes validated once; ``_check_nodes`` names
    the culprit when it fails."""
    for v in range(offsets.size - 1):
        used = 0.0
        for m in range(offsets[v], offsets[v + 1]):
            if not (y[m] >= -1e-9 and y[m] <= 1.0 + 1e-9):
                return False
            used += s[m] * min(1.0, max(0.0, y[m]))
        if used > budgets[v] + 1e-7 * max(1.0, budgets[v]):
            return False
    return True
