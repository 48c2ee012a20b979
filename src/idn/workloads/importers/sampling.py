"""Arrivals drawn inside a window from its fitted inter-arrival distribution:
a renewal process whose gaps follow the window's Weibull or Gamma fit (its
shape, so its burstiness), with the scale set so the mean gap is 1 / rate
(the window's recorded rate decides the volume; a fit's own mean is off by
orders of magnitude on a few ServeGen windows). A window with a rate but no
fit gets exponential gaps (Poisson arrivals).

The window's start is an arbitrary moment of a process already running:
the first arrival is at U * X* (U uniform, X* a length-biased gap: Gamma(k + 1)
for a Gamma(k) law, scale * Gamma(1 + 1/k)^(1/k) for a Weibull(k)), the
stationary renewal process's first arrival, so that the expected arrivals
in a window are exactly rate x window length, however bursty the law. Every arrival
is drawn (no approximation), a few million gaps at a time, so the cost is
the number of arrivals: a scaled import draws only the scaled volume.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gamma as gamma_fn

MAX_DRAWS = 1 << 22  # gaps drawn at once


def _gaps(rng: np.random.Generator, dist: np.ndarray, shape: np.ndarray, mean: np.ndarray, biased: bool = False) -> np.ndarray:
    """One gap per entry: dist 1 Weibull, 2 Gamma, 0 exponential, each with
    its shape and mean; ``biased``: length-biased gaps (density x f(x) / mean)."""
    out = np.empty(len(dist))
    for code in (0, 1, 2):
        sel = dist == code
        if not sel.any():
            continue
        k, mu = shape[sel], mean[sel]
        if code == 0:
            out[sel] = rng.gamma(2.0, mu) if biased else rng.exponential(mu)
        elif code == 1:
            unit = rng.gamma(1.0 + 1.0 / k) ** (1.0 / k) if biased else rng.weibull(k)
            out[sel] = unit * (mu / gamma_fn(1.0 + 1.0 / k))
        else:
            out[sel] = rng.gamma(k + 1.0 if biased else k, mu / k)
    return out


def renewal_counts(
    rate: np.ndarray, dist: np.ndarray, shape: np.ndarray, window_seconds: float, parts: int, rng: np.random.Generator
) -> np.ndarray:
    """(n, parts) arrivals in each of ``parts`` equal sub-slots of n windows,
    given each window's rate (requests/s), distribution code and shape."""
    n = len(rate)
    counts = np.zeros(n * parts, dtype=np.int64)
    live = np.flatnonzero(rate > 0)
    if live.size == 0:
        return counts.reshape(n, parts)
    # gamma and weibull draws need a shape; with none (or an unusable one) fall back to Poisson
    dist = np.where(np.isfinite(shape) & (shape > 0), dist, 0).astype(np.int8)
    mean = np.zeros(n)
    mean[live] = 1.0 / rate[live]
    now = np.zeros(n)
    first = np.ones(n, dtype=bool)
    part_len = window_seconds / parts
    while live.size:
        left = (window_seconds - now[live]) / mean[live]  # expected arrivals still to come
        want = np.minimum(np.ceil(left + 3.0 * np.sqrt(left) + 4.0), MAX_DRAWS).astype(np.int64)
        # as many windows as fit in one batch of draws (at least one)
        fit = max(1, int(np.searchsorted(np.cumsum(want), MAX_DRAWS, side="right")))
        batch, want = live[:fit], want[:fit]
        seg = np.repeat(np.arange(len(batch)), want)
        win = batch[seg]
        gaps = _gaps(rng, dist[win], shape[win], mean[win])
        starts = np.concatenate(([0], np.cumsum(want)[:-1]))
        # the first gap of a window is the residual of a length-biased one: U * X*
        firsts = starts[first[batch]]
        w1 = win[firsts]
        gaps[firsts] = rng.random(len(firsts)) * _gaps(rng, dist[w1], shape[w1], mean[w1], biased=True)
        first[batch] = False
        t = np.cumsum(gaps)
        base = np.concatenate(([0.0], t[starts[1:] - 1]))  # cumulated gaps before each segment
        t = t - base[seg] + now[win]
        inside = t < window_seconds
        part = np.minimum((t[inside] / part_len).astype(np.int64), parts - 1)
        counts += np.bincount(win[inside] * parts + part, minlength=n * parts)
        now[batch] = t[starts + want - 1]
        live = np.concatenate((batch[now[batch] < window_seconds], live[fit:]))
    return counts.reshape(n, parts)
