"""Workloads named in scenario and experiment files.

A spec is a mapping such as ``{"kind": "stationary", "rate": 20, "zipf": 0.8}``:
``kind`` picks a function of ``WORKLOAD_KINDS`` and the other keys are its
keyword parameters. Sources, tasks, the number of slots and the seed come
from the caller (the scenario / experiment), never from the spec.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

import pandas as pd

from . import generators
from .traces import bin_requests, check_known, read_trace

_CALLER_ARGS = ("sources", "tasks", "slots", "seed")


def from_file(
    sources: Sequence[str],
    tasks: Sequence[str],
    slots: int,
    seed: int,
    path: str,
    slot_seconds: float | None = None,
) -> pd.DataFrame:
    """A recorded trace: a per-slot file, or with ``slot_seconds`` a per-request
    log (``time,source,task``) binned into slots. Every source and task must
    be known; slots from ``slots`` on are dropped. The seed is unused."""
    trace = read_trace(path) if slot_seconds is None else bin_requests(path, slot_seconds)
    check_known(trace, sources, tasks, origin=str(path))
    return trace[trace["slot"] < slots].reset_index(drop=True)


WORKLOAD_KINDS = {
    "stationary": generators.stationary,
    "shifting": generators.shifting,
    "diurnal": generators.diurnal,
    "flash_crowd": generators.flash_crowd,
    "adversarial": generators.adversarial,
    "trace": from_file,
}


def workload_parameters(kind: str) -> tuple[str, ...]:
    """Parameters a spec of this kind may set."""
    params = inspect.signature(WORKLOAD_KINDS[kind]).parameters
    return tuple(p for p in params if p not in _CALLER_ARGS)


def check_spec(spec) -> str:
    """Validate the keys of a spec (not the values); return its kind."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"workload spec must be a mapping with a 'kind' key, got {spec!r}")
    if "kind" not in spec:
        raise ValueError(f"workload spec has no 'kind' (one of {', '.join(WORKLOAD_KINDS)})")
    kind = spec["kind"]
    if kind not in WORKLOAD_KINDS:
        raise ValueError(f"unknown workload kind {kind!r} (known: {', '.join(WORKLOAD_KINDS)})")
    allowed = workload_parameters(kind)
    for key in spec:
        if key == "kind":
            continue
        if key in _CALLER_ARGS:
            raise ValueError(f"workload parameter {key!r} is set by the scenario/experiment, not by the workload spec")
        if key not in allowed:
            raise ValueError(f"unknown parameter {key!r} for workload kind {kind!r} (known: {', '.join(allowed)})")
    return kind


def from_spec(spec: Mapping, sources: Sequence[str], tasks: Sequence[str], slots: int, seed: int) -> pd.DataFrame:
    """Trace described by ``spec``; unknown kind or parameter -> ValueError."""
    kind = check_spec(spec)
    params = {k: v for k, v in spec.items() if k != "kind"}
    return WORKLOAD_KINDS[kind](sources, tasks, slots, seed, **params)
