"""Synthetic request traces (design page, sections 3 and 10).

Every generator takes plain inputs: the source node ids where requests enter,
the task ids, the number of slots and a seed, plus its own parameters, and
returns a canonical trace (see ``traces``). All randomness comes from one
``numpy.random.default_rng(seed)``: the same inputs give the same trace.

Common model: requests of task i entering at source s in slot t are
Poisson(rate * w_s * p_t(i) * ...), where
- ``rate`` is the mean number of requests per source per slot,
- w_s are the ``source_weights`` (per-source multipliers, e.g. from a
  topology's demand data; normalized to mean 1, so ``rate`` stays the mean),
- p_t is the task popularity: Zipf with exponent ``zipf`` over a ranking of
  the tasks, p(rank k) proportional to k**-zipf. **Decision**: the ranking is
  a seeded random permutation (``ranking="random"``), so which task is popular
  does not follow the catalog order; ``ranking="order"`` ranks the tasks in
  the order given.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .traces import _frame

DEFAULT_RATE = 10.0
DEFAULT_ZIPF = 0.8


# ---- checks ---------------------------------------------------------------
MAX_PARAMETER = 1e12


def _number(name: str, value, low: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(min(abs(value), 1e300)):
        raise ValueError(f"workload parameter {name!r} must be a finite number, got {value!r}")
    if abs(value) > MAX_PARAMETER:  # numpy's Poisson draws refuse rates past ~1e18, and nothing real is near
        raise ValueError(f"workload parameter {name!r} must be at most {MAX_PARAMETER:g}, got {value!r}")
    if value < low or (strict and value == low):
        raise ValueError(f"workload parameter {name!r} must be {'>' if strict else '>='} {low:g}, got {value!r}")
    return float(value)


def _integer(name: str, value, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"workload parameter {name!r} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"workload parameter {name!r} must be >= {low}, got {value!r}")
    if value > MAX_PARAMETER:  # numpy's int64 arithmetic overflows not far beyond
        raise ValueError(f"workload parameter {name!r} must be at most {MAX_PARAMETER:g}, got {value!r}")
    return int(value)


def _ids(name: str, ids) -> list[str]:
    if isinstance(ids, str) or not isinstance(ids, Sequence) or len(ids) == 0:
        raise ValueError(f"{name} must be a non-empty list of ids, got {ids!r}")
    ids = [str(x) for x in ids]
    dup = pd.Index(ids).duplicated()
    if dup.any():
        raise ValueError(f"{name}: duplicate id {ids[int(np.flatnonzero(dup)[0])]!r}")
    return ids


def _setup(sources, tasks, slots, rate, zipf=0.0):
    return _ids("sources", sources), _ids("tasks", tasks), _integer("slots", slots), _number("rate", rate), _number("zipf", zipf)


def source_weight_vector(source_weights, sources: list[str]) -> np.ndarray:
    """Per-source multipliers in ``sources`` order, normalized to mean 1.
    Accepts None (all 1), a list aligned with ``sources`` or a mapping
    source id -> weight covering every source."""
    if source_weights is None:
        return np.ones(len(sources))
    if isinstance(source_weights, Mapping):
        extra = [k for k in source_weights if str(k) not in set(sources)]
        if extra:
            raise ValueError(f"source_weights: unknown source node {extra[0]!r}")
        by_id = {str(k): v for k, v in source_weights.items()}
        missing = [s for s in sources if s not in by_id]
        if missing:
            raise ValueError(f"source_weights: no weight for source node {missing[0]!r}")
        values = [by_id[s] for s in sources]
    else:
        values = list(source_weights)
        if len(values) != len(sources):
            raise ValueError(f"source_weights: {len(values)} weights for {len(sources)} sources")
    w = np.array([_number(f"source_weights[{s}]", v) for s, v in zip(sources, values)])
    if w.sum() <= 0:
        raise ValueError("source_weights: all weights are 0")
    return w / w.mean()


# ---- popularity -----------------------------------------------------------
def zipf_popularity(n: int, exponent: float) -> np.ndarray:
    """p[k] for ranks k = 1..n, proportional to k**-exponent, summing to 1."""
    p = np.arange(1, n + 1, dtype=float) ** -float(exponent)
    return p / p.sum()


def _first_ranking(rng: np.random.Generator, n: int, ranking: str) -> np.ndarray:
    """ranking[k] = index of the task at rank k + 1."""
    if ranking == "random":
        return rng.permutation(n)
    if ranking == "order":
        return np.arange(n)
    raise ValueError(f"workload parameter 'ranking' must be 'random' or 'order', got {ranking!r}")


def _popularity(ranking: np.ndarray, exponent: float) -> np.ndarray:
    p = np.empty(len(ranking))
    p[ranking] = zipf_popularity(len(ranking), exponent)
    return p


def _fresh_ranking(rng: np.random.Generator, previous: np.ndarray) -> np.ndarray:
    # a reshuffle that keeps the same top task would be an invisible shift
    r = rng.permutation(len(previous))
    if len(r) > 1 and r[0] == previous[0]:
        j = rng.integers(1, len(r))
        r[0], r[j] = r[j], r[0]
    return r


def shifting_popularity(
    rng: np.random.Generator, n_tasks: int, slots: int, zipf: float, period: int, mode: str, ranking: str
) -> np.ndarray:
    """(slots, n_tasks) popularity of the ``shifting`` workload."""
    if mode not in ("rotate", "reshuffle", "drift"):
        raise ValueError(f"workload parameter 'mode' must be 'rotate', 'reshuffle' or 'drift', got {mode!r}")
    epochs = -(-slots // period) + 1  # the epoch after the last one is drift's target
    rankings = [_first_ranking(rng, n_tasks, ranking)]
    for e in range(1, epochs):
        if mode == "rotate":
            rankings.append(np.roll(rankings[0], -e))
        else:
            rankings.append(_fresh_ranking(rng, rankings[-1]))
    pops = np.array([_popularity(r, zipf) for r in rankings])  # (epochs, N)
    t = np.arange(slots)
    epoch = t // period
    if mode != "drift":
        return pops[epoch]
    frac = ((t % period) / period)[:, None]
    return (1.0 - frac) * pops[epoch] + frac * pops[epoch + 1]


# ---- drawing --------------------------------------------------------------
def _draw(rng: np.random.Generator, mean: np.ndarray, sources: list[str], tasks: list[str]) -> pd.DataFrame:
    """Poisson counts for a (T, S, N) mean, as a canonical trace.

    Axes are put in string order first so np.nonzero already yields rows
    sorted by slot, source, task. Memory is O(T * S * N): fine for the
    studies here (thousands of slots, tens of sources and tasks)."""
    s_order = np.array(sorted(range(len(sources)), key=sources.__getitem__))
    t_order = np.array(sorted(range(len(tasks)), key=tasks.__getitem__))
    counts = rng.poisson(mean[:, s_order][:, :, t_order])
    t, s, n = np.nonzero(counts)
    src = np.asarray(sources, dtype=object)[s_order]
    tsk = np.asarray(tasks, dtype=object)[t_order]
    return _frame(t, src[s], tsk[n], counts[t, s, n])


def _mean(rate: float, weights: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """rate * w_s * p_t(i) as a (T, S, N) array; popularity is (N,) or (T, N)."""
    pop = np.atleast_2d(popularity)
    return rate * weights[None, :, None] * pop[:, None, :]


# ---- generators -----------------------------------------------------------
# Every generator spells out its whole signature (sources, tasks, slots, seed, rate, zipf, source_weights,
# ranking, then its own), although they repeat: workloads.spec checks a workload file's parameters
# against inspect.signature, and the signature is what docs and --help show. **kwargs would hide them.
def stationary(
    sources: Sequence[str],
    tasks: Sequence[str],
    slots: int,
    seed: int,
    rate: float = DEFAULT_RATE,
    zipf: float = DEFAULT_ZIPF,
    source_weights=None,
    ranking: str = "random",
) -> pd.DataFrame:
    """Same Zipf popularity in every slot."""
    sources, tasks, slots, rate, zipf = _setup(sources, tasks, slots, rate, zipf)
    w = source_weight_vector(source_weights, sources)
    rng = np.random.default_rng(seed)
    pop = _popularity(_first_ranking(rng, len(tasks), ranking), zipf)
    return _draw(rng, np.broadcast_to(_mean(rate, w, pop), (slots, len(sources), len(tasks))), sources, tasks)


def shifting(
    sources: Sequence[str],
    tasks: Sequence[str],
    slots: int,
    seed: int,
    rate: float = DEFAULT_RATE,
    zipf: float = DEFAULT_ZIPF,
    source_weights=None,
    ranking: str = "random",
    period: int = 250,
    mode: str = "rotate",
) -> pd.DataFrame:
    """Popularity that changes every ``period`` slots.

    - rotate: at each multiple of ``period`` every task moves up one rank and
      the top task drops to the bottom;
    - reshuffle: a fresh random ranking, whose top task always differs from
      the previous one;
    - drift: popularity slides linearly from one (reshuffled) ranking to the
      next over each period, equal to a ranking exactly at multiples of period.
    """
    sources, tasks, slots, rate, zipf = _setup(sources, tasks, slots, rate, zipf)
    period = _integer("period", period, low=1)
    w = source_weight_vector(source_weights, sources)
    rng = np.random.default_rng(seed)
    pop = shifting_popularity(rng, len(tasks), slots, zipf, period, mode, ranking)
    return _draw(rng, _mean(rate, w, pop), sources, tasks)


def diurnal_profile(slots: int, day_slots: int, peak_to_trough: float, peak_slot: int) -> np.ndarray:
    """Rate multiplier 1 + a cos(2 pi (t - peak_slot) / day_slots) with
    a = (R - 1) / (R + 1): max / min = R and the mean over a day is 1."""
    a = (peak_to_trough - 1.0) / (peak_to_trough + 1.0)
    return 1.0 + a * np.cos(2.0 * np.pi * (np.arange(slots) - peak_slot) / day_slots)


def diurnal(
    sources: Sequence[str],
    tasks: Sequence[str],
    slots: int,
    seed: int,
    rate: float = DEFAULT_RATE,
    zipf: float = DEFAULT_ZIPF,
    source_weights=None,
    ranking: str = "random",
    day_slots: int = 288,
    peak_to_trough: float = 4.0,
    peak_slot: int | None = None,
    phases: int = 1,
    blend: float = 0.25,
) -> pd.DataFrame:
    """Total rate following a day-shaped cosine; ``rate`` is the mean over a
    day, the peak at ``peak_slot`` (default: mid-day, so the trace starts at
    the trough). Default day: 288 slots of 5 minutes.

    ``phases`` > 1 also gives the day that many parts with their own
    popularity ranking (morning, office hours, evening, night...), the same
    every day: the first from ``ranking``, each next a reshuffle with another
    top task. Over the last ``blend`` fraction of each part the popularity
    slides linearly into the next part's, the last part's into the first's.
    With 1 phase (the default) the popularity never changes."""
    sources, tasks, slots, rate, zipf = _setup(sources, tasks, slots, rate, zipf)
    day_slots = _integer("day_slots", day_slots, low=2)
    ratio = _number("peak_to_trough", peak_to_trough, low=1.0)
    peak = day_slots // 2 if peak_slot is None else _integer("peak_slot", peak_slot)
    phases = _integer("phases", phases, low=1)
    if phases > day_slots:
        raise ValueError(f"workload parameter 'phases' must be at most day_slots ({day_slots}), got {phases}")
    blend = _number("blend", blend)
    if blend > 1.0:
        raise ValueError(f"workload parameter 'blend' must be between 0 and 1, got {blend!r}")
    w = source_weight_vector(source_weights, sources)
    rng = np.random.default_rng(seed)
    rankings = [_first_ranking(rng, len(tasks), ranking)]
    for _ in range(1, phases):
        rankings.append(_fresh_ranking(rng, rankings[-1]))
    pops = np.array([_popularity(r, zipf) for r in rankings])  # (phases, N)
    pop = daily_popularity(pops, slots, day_slots, blend)
    profile = diurnal_profile(slots, day_slots, ratio, peak)
    return _draw(rng, _mean(rate, w, pop * profile[:, None]), sources, tasks)


def daily_popularity(pops: np.ndarray, slots: int, day_slots: int, blend: float) -> np.ndarray:
    """(slots, N) popularity cycling through the rows of ``pops`` once a day,
    each held for its part of the day and slid into the next over the
    part's last ``blend`` fraction."""
    phases = len(pops)
    u = phases * (np.arange(slots) % day_slots) / day_slots  # position in the day, in parts
    part = np.floor(u).astype(int)
    into = u - part  # 0..1 through the part
    frac = np.clip((into - (1.0 - blend)) / blend, 0.0, 1.0) if blend > 1e-9 else np.zeros(slots)
    frac = frac[:, None]
    return (1.0 - frac) * pops[part] + frac * pops[(part + 1) % phases]


def flash_crowd(
    sources: Sequence[str],
    tasks: Sequence[str],
    slots: int,
    seed: int,
    rate: float = DEFAULT_RATE,
    zipf: float = DEFAULT_ZIPF,
    source_weights=None,
    ranking: str = "random",
    start: int = 0,
    duration: int = 100,
    task: str | None = None,
    source: str | Sequence[str] | None = None,
    factor: float = 10.0,
) -> pd.DataFrame:
    """Stationary workload where, in slots [start, start + duration), the
    requests of ``task`` (from every source), of ``source`` (one node id or a
    list: a region; every task) or of both (that task from those sources)
    are multiplied by ``factor``. With neither given, the least popular task
    spikes: the classic flash crowd of something nobody asked for before."""
    sources, tasks, slots, rate, zipf = _setup(sources, tasks, slots, rate, zipf)
    start = _integer("start", start)
    duration = _integer("duration", duration, low=1)
    factor = _number("factor", factor)
    w = source_weight_vector(source_weights, sources)
    rng = np.random.default_rng(seed)
    rank = _first_ranking(rng, len(tasks), ranking)
    pop = _popularity(rank, zipf)
    mean = np.array(np.broadcast_to(_mean(rate, w, pop), (slots, len(sources), len(tasks))))

    task_mask = np.ones(len(tasks), dtype=bool)
    src_mask = np.ones(len(sources), dtype=bool)
    if task is None and source is None:
        task_mask[:] = False
        task_mask[rank[-1]] = True
    if task is not None:
        if str(task) not in tasks:
            raise ValueError(f"workload parameter 'task': unknown task {task!r}")
        task_mask = np.array([t == str(task) for t in tasks])
    if source is not None:
        region = [str(source)] if isinstance(source, str) else [str(s) for s in source]
        for s in region:
            if s not in sources:
                raise ValueError(f"workload parameter 'source': unknown source node {s!r}")
        src_mask = np.isin(np.asarray(sources, dtype=object), region)
    window = slice(start, start + duration)
    mean[window] *= np.where(src_mask[:, None] & task_mask[None, :], factor, 1.0)
    return _draw(rng, mean, sources, tasks)


def adversarial_schedule(tasks: Sequence[str], slots: int, block: int = 1) -> list[str]:
    """Task requested in each slot by ``adversarial``: the tasks in the given
    order, ``block`` slots each, cycling."""
    tasks = _ids("tasks", tasks)
    idx = (np.arange(_integer("slots", slots)) // _integer("block", block, low=1)) % len(tasks)
    return [tasks[i] for i in idx]


def adversarial(
    sources: Sequence[str],
    tasks: Sequence[str],
    slots: int,
    seed: int,
    rate: float = DEFAULT_RATE,
    source_weights=None,
    block: int = 1,
) -> pd.DataFrame:
    """Round robin over tasks: every block of ``block`` slots requests one task
    only (Poisson(rate * w_s) per source), cycling through the tasks in the
    given order. In the long run every task is equally frequent, so a cache
    that counts frequencies keeps the wrong models for the next slot."""
    sources, tasks, slots, rate, _ = _setup(sources, tasks, slots, rate)
    block = _integer("block", block, low=1)
    w = source_weight_vector(source_weights, sources)
    rng = np.random.default_rng(seed)
    pop = np.zeros((slots, len(tasks)))
    pop[np.arange(slots), (np.arange(slots) // block) % len(tasks)] = 1.0
    return _draw(rng, _mean(rate, w, pop), sources, tasks)
