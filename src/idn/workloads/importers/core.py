"""``import_trace``: a real trace (a ServeGen directory or a per-request log)
to a trace of a scenario (``slot, source, task, count``), and the mapping
that says how (docs/workloads.md).

The steps, each deterministic for a seed:

1. **Demand per slot.** ServeGen: requests in a window = rate x 600 s, in
   expectation; slots of k windows add k windows up. With ``sample``,
   arrivals are drawn from each window's fitted inter-arrival distribution
   (:mod:`.sampling`), for slots that divide a window. A request log:
   its rows counted per slot.
2. **Volume.** By default counts are scaled by one factor so that the mean
   requests per source and slot equal ``rate`` (``scale=False``: the raw
   counts). Scaled expectations become integers by cumulative rounding
   along each stream, so each stream's total is kept to within one request
   and every slot is within one request of its expectation.
3. **Streams to tasks**, by popularity rank: the k-th most requested
   stream (over the imported slots; ties by name) goes to the k-th task,
   wrapping around when there are more streams than tasks. The task order
   is a seeded permutation of the scenario's tasks (``task_order="random"``,
   as the synthetic generators rank tasks), or the scenario's own order
   (``"given"``).
4. **Clients to sources.** Each client (a ServeGen stream; in a request log
   the source column's value, else the stream) gets a home source, drawn
   once, uniformly, seeded. Each of its requests enters at its home with
   probability 1 - ``spill``, else at one of the other sources, evenly
   (drawn per request, seeded). A log whose source column holds only the
   scenario's source ids keeps them, with no spill.

One slot of the import is one slot of the scenario: the time compression
is the import's slot length over the scenario's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from . import requests as request_logs
from . import sampling, servegen
from .assemble import assemble, cumulative_round

FORMATS = ("servegen", "requests")
TASK_ORDERS = ("random", "given")
DEFAULT_SPILL = 0.5


class ImportResult(NamedTuple):
    trace: pd.DataFrame
    mapping: dict


@dataclass
class _Demand:
    """Requests per (cell, slot) of a cell = (stream, client), slots 0..T-1."""

    row_cell: np.ndarray
    row_slot: np.ndarray
    value: np.ndarray  # float expectations, or int counts (sampled, or a log's)
    cell_stream: np.ndarray
    cell_client: np.ndarray
    streams: list[str]
    clients: list[str]
    slots: int
    raw_total: float  # requests of the imported slots, in expectation (before scaling)
    stream_total: np.ndarray  # (K,) raw requests per stream over the imported slots
    integral: bool  # value already integer
    notes: dict


def _positive(name: str, value, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name}: must be a {'non-negative' if allow_zero else 'positive'} finite number, got {value!r}")
    return v


# ---------------------------------------------------------------- step 1: demand
def _servegen_demand(path, slot_seconds, start, slots, sample, rng, rate, n_sources) -> tuple[_Demand, float]:
    st = servegen.read_streams(path)
    W = st.window_seconds
    if start % W:
        raise ValueError(f"start: {start:g} s is not a multiple of the {W} s window")
    w0 = int(start // W)
    if slot_seconds >= W:
        if slot_seconds % W:
            raise ValueError(f"slot_seconds: {slot_seconds:g} is neither a multiple of the {W} s window nor (with sampling) a divisor of it")
        k, parts = int(slot_seconds // W), 1
        available = (st.rate.shape[1] - w0) // k
    else:
        if not sample:
            raise ValueError(f"slot_seconds: {slot_seconds:g} s is shorter than the {W} s window: add --sample (arrivals drawn within each window)")
        parts = W / slot_seconds
        if abs(parts - round(parts)) > 1e-9:
            raise ValueError(f"slot_seconds: {slot_seconds:g} does not divide the {W} s window")
        k, parts = 1, int(round(parts))
        available = (st.rate.shape[1] - w0) * parts
    T = available if slots is None else int(slots)
    if T <= 0 or T > available:
        raise ValueError(
            f"{path}: the trace holds {max(available, 0)} slots of {slot_seconds:g} s from {start:g} s; asked for {T}"
        )
    n_win = -(-T // parts) * k  # windows the slots cover
    rate_w = st.rate[:, w0 : w0 + n_win]
    expected = rate_w * W  # (K, n_win)
    # the raw expectation of the imported slots (a last window cut by `slots` counts its part)
    per_slot = expected.reshape(len(st.names), -1, k).sum(axis=2) if parts == 1 else np.repeat(expected / parts, parts, axis=1)[:, :T]
    stream_total = per_slot.sum(axis=1)
    raw_total = float(stream_total.sum())
    factor = 1.0 if rate is None else rate * n_sources * T / raw_total if raw_total > 0 else 0.0
    notes = {"windows": int(n_win), "window_seconds": W, "files": len(st.files)}
    if sample:
        dist = st.distribution[:, w0 : w0 + n_win].ravel()
        shape = st.shape[:, w0 : w0 + n_win].ravel()
        sub = parts if parts > 1 else 1
        counts = sampling.renewal_counts(rate_w.ravel() * factor, dist, shape, W, sub, rng)  # (K * n_win, sub)
        value = counts.reshape(len(st.names), n_win * sub)
        if k > 1:
            value = value.reshape(len(st.names), -1, k).sum(axis=2)
        value = value[:, :T]
        integral = True
    else:
        value, integral = per_slot, False
    cell, slot = np.nonzero(value)
    K = len(st.names)
    demand = _Demand(
        cell, slot, value[cell, slot], np.arange(K), np.arange(K), list(st.names), list(st.names), T,
        raw_total, stream_total, integral, notes,
    )  # fmt: skip
    return demand, factor


def _request_demand(path, slot_seconds, start, slots, time_column, task_column, source_column, rate, n_sources):
    for name, col in (("--time-column", time_column), ("--task-column", task_column)):
        if not col:
            raise ValueError(f"a request log needs {name} (which column holds the {'time' if 'time' in name else 'stream'})")
    counts = request_logs.read_requests(path, slot_seconds, time_column, task_column, source_column)
    if start % slot_seconds:
        raise ValueError(f"start: {start:g} s is not a multiple of slot_seconds ({slot_seconds:g})")
    s0 = int(start // slot_seconds)
    available = int(counts.slot.max()) + 1 - s0
    T = available if slots is None else int(slots)
    if T <= 0 or T > available:
        raise ValueError(f"{path}: the log spans {max(available, 0)} slots of {slot_seconds:g} s from {start:g} s; asked for {T}")
    keep = (counts.slot >= s0) & (counts.slot < s0 + T)
    slot, k, c, n = counts.slot[keep] - s0, counts.stream[keep], counts.client[keep], counts.count[keep]
    K = len(counts.streams)
    clients = counts.clients
    if clients is None:  # every stream is its own client
        c, clients = k, list(counts.streams)
    pair, cell = np.unique(np.stack([k, c], axis=1), axis=0, return_inverse=True) if len(k) else (np.zeros((0, 2), np.int64), np.zeros(0, np.int64))
    stream_total = np.bincount(k, weights=n, minlength=K)
    raw_total = float(n.sum())
    factor = 1.0 if rate is None else rate * n_sources * T / raw_total if raw_total > 0 else 0.0
    notes = {"rows_read": counts.rows}
    demand = _Demand(cell.ravel(), slot, n, pair[:, 0], pair[:, 1], counts.streams, clients, T, raw_total,
                     stream_total, True, notes)  # fmt: skip
    return demand, factor


def import_trace(
    fmt: str, path: str | Path, sources, tasks, *, scenario_slot_seconds: float = 1.0, default_rate: float = 10.0,
    slot_seconds: float | None = None, seed: int = 0, rate: float | None = None, scale: bool = True,
    sample: bool = False, spill: float = DEFAULT_SPILL, start: float = 0.0, slots: int | None = None,
    time_column: str | None = None, task_column: str | None = None, source_column: str | None = None,
    task_order: str = "random", scenario: str | None = None,
) -> ImportResult:  # fmt: skip
    """A real trace as a trace of the scenario with these sources and tasks,
    and its mapping (a JSON-ready dict). See the module docstring."""
    t0 = time.perf_counter()
    if fmt not in FORMATS:
        raise ValueError(f"unknown trace format {fmt!r} (known: {', '.join(FORMATS)})")
    sources, tasks = [str(s) for s in sources], [str(t) for t in tasks]
    if not sources or not tasks:
        raise ValueError("the scenario needs at least one source and one task")
    if task_order not in TASK_ORDERS:
        raise ValueError(f"task_order: must be one of {', '.join(TASK_ORDERS)}, got {task_order!r}")
    spill = _positive("spill", spill, allow_zero=True)
    if spill > 1:
        raise ValueError(f"spill: must be between 0 and 1, got {spill!r}")
    start = _positive("start", start, allow_zero=True)
    if slots is not None and (isinstance(slots, bool) or int(slots) != slots or slots < 1):
        raise ValueError(f"slots: must be a positive integer, got {slots!r}")
    if scale:
        rate = _positive("rate", default_rate if rate is None else rate, allow_zero=True)
    elif rate is not None:
        raise ValueError("rate: give a rate or no scaling (--no-scale), not both")
    else:
        rate = None
    if sample and fmt != "servegen":
        raise ValueError("sample: only a ServeGen trace has inter-arrival fits to sample from")
    slot_seconds = _positive("slot_seconds", (servegen.WINDOW_SECONDS if fmt == "servegen" else scenario_slot_seconds) if slot_seconds is None else slot_seconds)
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed: must be >= 0, got {seed}")
    rng_task, rng_home, rng_split, rng_sample = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))
    S, N = len(sources), len(tasks)

    if fmt == "servegen":
        d, factor = _servegen_demand(path, slot_seconds, start, slots, sample, rng_sample, rate, S)
    else:
        d, factor = _request_demand(path, slot_seconds, start, slots, time_column, task_column, source_column, rate, S)
    if sample or (d.integral and factor == 1.0):  # counts already (sampled at the scaled rate, or raw)
        n = np.asarray(d.value, dtype=np.int64)
    else:
        n = cumulative_round(d.row_cell, d.row_slot, d.value * factor)

    # streams -> tasks, by rank
    K = len(d.streams)
    rank_of = np.lexsort((np.asarray(d.streams, dtype=object).astype(str), -d.stream_total))  # most requested first
    rank = np.empty(K, np.int64)
    rank[rank_of] = np.arange(K)
    order = rng_task.permutation(N) if task_order == "random" else np.arange(N)
    task_of_stream = order[rank % N]
    # clients -> sources
    direct = fmt == "requests" and source_column is not None and set(d.clients) <= set(sources)
    client_names = list(d.clients)
    if direct:
        source_of_client = pd.Index(sources).get_indexer(client_names)
    else:  # homes drawn in name order, so a client's home does not depend on the files' order
        by_name = np.argsort(np.asarray(client_names, dtype=object).astype(str), kind="stable")
        source_of_client = np.empty(len(client_names), np.int64)
        source_of_client[by_name] = rng_home.integers(0, S, size=len(client_names))
    from ... import limits

    rows = min(float(d.slots) * S * N, float(n.sum()))  # a trace row per (slot, source, task) at most, and per request
    limits.check(str(path), f"a trace of up to {rows:,.0f} rows ({d.slots:,} slots x {S} sources x {N} tasks)", rows * limits.PER_TRACE_ROW)
    keep = n > 0
    cell = d.row_cell[keep]
    trace = assemble(d.row_slot[keep], task_of_stream[d.cell_stream[cell]], source_of_client[d.cell_client[cell]],
                     n[keep], d.slots, direct, spill, sources, tasks, rng_split)  # fmt: skip
    mapping = _mapping(fmt, path, scenario, seed, sources, tasks, d, n, factor, rate, slot_seconds,
                       scenario_slot_seconds, start, sample, spill, direct, task_order, order, rank,
                       task_of_stream, source_of_client, trace, time.perf_counter() - t0)  # fmt: skip
    return ImportResult(trace, mapping)


def _mapping(fmt, path, scenario, seed, sources, tasks, d, n, factor, rate, slot_seconds, scenario_slot_seconds,
             start, sample, spill, direct, task_order, order, rank, task_of_stream, source_of_client, trace, seconds) -> dict:  # fmt: skip
    S, N, K = len(sources), len(tasks), len(d.streams)
    compression = slot_seconds / scenario_slot_seconds
    own_client = d.clients == d.streams  # each stream is its own client
    order_words = f"a permutation of the scenario's {N} tasks drawn with seed {seed}" if task_order == "random" else f"the scenario's {N} tasks in their order"
    spill_words = (
        "all of its requests enter there" if spill == 0 or S == 1
        else f"each request enters there with probability {1 - spill:g}, else at one of the other {S - 1} sources, evenly"
    )  # fmt: skip
    rules = {
        "volume": (
            f"counts x {factor:.6g}, so that the mean requests per source and slot is {rate:g}" if rate is not None
            else "raw counts (no scaling)"
        ) + (
            "; arrivals drawn at the scaled rate" if sample
            else "; the log's counts" + (", scaled, then rounded cumulatively along each (stream, client)" if factor != 1 else "")
            if d.integral
            else "; expectations (rate x window length, scaled) rounded cumulatively along each stream: each stream's "
            "total kept to within one request, each slot within one of its expectation"
        ),
        "time": f"one imported slot ({slot_seconds:g} s of the trace, from {start:g} s) is one scenario slot ({scenario_slot_seconds:g} s): time compressed {compression:g}x",
        "streams_to_tasks": f"the k-th most requested stream (over the imported slots; ties by name) goes to the k-th task of {order_words}, wrapping around every {N} streams",
        "clients_to_sources": (
            "the log's source column names the scenario's sources: kept as they are" if direct
            else f"each client ({'a stream' if own_client else 'a value of the source column'}) has a home source drawn uniformly "
            f"with seed {seed} (clients in name order); {spill_words}"
        ),
    }  # fmt: skip
    if sample:
        rules["sampling"] = (
            "arrivals drawn within each window from its fitted inter-arrival distribution (its shape; the scale set so the "
            "mean gap is 1 / (rate x scale factor)), seeded; windows with a rate but no fit: Poisson arrivals"
        )
    written = np.bincount(d.cell_stream[d.row_cell], weights=n, minlength=K).astype(np.int64)
    streams = []
    for i in np.argsort(rank):
        entry = {
            "stream": d.streams[i], "rank": int(rank[i]) + 1, "raw_requests": round(float(d.stream_total[i]), 3),
            "requests": int(written[i]), "task": tasks[int(task_of_stream[i])],
            "why_task": f"rank {int(rank[i]) + 1} of {K} -> position {int(rank[i]) % N + 1} of the task order",
        }  # fmt: skip
        if own_client:
            entry["home_source" if not direct else "source"] = sources[int(source_of_client[i])]
            entry["why_source"] = "its home, drawn uniformly (seeded)" if not direct else "named in the log"
        streams.append(entry)
    out = {
        "format": fmt, "path": str(path), "scenario": scenario, "seed": seed,
        "slot_seconds": slot_seconds, "scenario_slot_seconds": scenario_slot_seconds, "time_compression": compression,
        "start_seconds": start, "slots": d.slots, "mode": "sampled" if sample else ("counted" if fmt == "requests" else "expected"),
        "rate": rate, "scale_factor": factor, "spill": spill if not direct else 0.0,
        "raw_requests": round(d.raw_total, 3), "requests": int(trace["count"].sum()), "rows": int(len(trace)),
        "streams_count": K, "clients_count": len(d.clients), "seconds": round(seconds, 3),
        "sources": sources, "task_order": [tasks[int(j)] for j in order], "rules": rules, **d.notes,
        "streams": streams,
    }  # fmt: skip
    if not own_client:
        out["clients"] = [
            {"client": c, ("source" if direct else "home_source"): sources[int(source_of_client[j])],
             "why_source": "named in the log" if direct else "its home, drawn uniformly (seeded)"}
            for j, c in sorted(enumerate(d.clients), key=lambda x: x[1])
        ]  # fmt: skip
    return out


def scenario_rate(workload) -> float:
    """The default --rate: the scenario's own workload rate (the generators' default without one)."""
    from ..generators import DEFAULT_RATE

    rate = (workload or {}).get("rate", DEFAULT_RATE)
    return float(rate) if isinstance(rate, (int, float)) and not isinstance(rate, bool) else DEFAULT_RATE


def mapping_path(out: str | Path) -> Path:
    """Where the mapping of a trace written to ``out`` goes: beside it, ``<stem>.mapping.json``."""
    out = Path(out)
    name = out.name
    for ext in (".csv.gz", ".csv", ".parquet", ".pq"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return out.with_name(name + ".mapping.json")


def servegen_workload(
    sources, tasks, slots: int, seed: int, path: str | None = None, slot_seconds: float = 600, rate: float = 10.0,
    scale: bool = True, sample: bool = False, spill: float = DEFAULT_SPILL, start: float = 0.0, task_order: str = "random",
) -> pd.DataFrame:  # fmt: skip
    """The workload kind ``servegen``: the first ``slots`` slots (from
    ``start``) of a ServeGen directory, imported for these sources and
    tasks with this seed (the seed draws the mapping, and the arrivals with
    ``sample``). ``path`` defaults to the environment's IDN_SERVEGEN, so
    that an experiment file need not say where the data lives."""
    path = path or servegen.default_root()
    if not path:
        raise ValueError(
            "workload servegen: no ServeGen data: set IDN_SERVEGEN=DIR (or --servegen DIR), or give the workload a path"
        )
    return import_trace(
        "servegen", path, sources, tasks, slot_seconds=slot_seconds, seed=seed, rate=rate if scale else None,
        scale=scale, sample=sample, spill=spill, start=start, slots=slots, task_order=task_order,
    ).trace  # fmt: skip
