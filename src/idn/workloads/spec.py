"""Workloads named in scenario and experiment files.

A spec is a mapping such as ``{"kind": "stationary", "rate": 20, "zipf": 0.8}``:
``kind`` picks a function of ``WORKLOAD_KINDS`` (or names a plug-in,
``package.module:function``: see ``generator``) and the other keys are its
keyword parameters. Sources, tasks, the number of slots and the seed come
from the caller (the scenario / experiment), never from the spec.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

import pandas as pd

from ..plugins import is_reference, load_reference
from . import generators
from .importers import servegen_workload
from .traces import bin_requests, check_known, read_trace, validate_trace

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
    "servegen": servegen_workload,  # real demand: a ServeGen directory (idn.workloads.importers)
}


def generator(kind) -> Callable[..., pd.DataFrame]:
    """The function a workload kind names: a built-in kind, or a plug-in
    ``package.module:function`` called as ``function(sources, tasks, slots,
    seed, **params)`` and returning a trace (``slot, source, task, count``).
    One-line ValueError for an unknown kind or a bad plug-in."""
    if isinstance(kind, str) and kind in WORKLOAD_KINDS:
        return WORKLOAD_KINDS[kind]
    if not is_reference(kind):
        raise ValueError(f"unknown workload kind {kind!r} (known: {', '.join(WORKLOAD_KINDS)}, or package.module:function)")
    fn = load_reference(kind, "workload generator")
    if isinstance(fn, type) or not callable(fn):
        raise ValueError(f"workload generator {kind!r}: a {type(fn).__name__}, not a function")
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return fn
    if params[:4] != list(_CALLER_ARGS):
        raise ValueError(
            f"workload generator {kind!r}: its first parameters must be {', '.join(_CALLER_ARGS)}, got {', '.join(params[:4]) or 'none'}"
        )
    return fn


def workload_parameters(kind: str) -> tuple[str, ...] | None:
    """Parameters a spec of this kind may set (None: any, the generator takes **kwargs)."""
    params = inspect.signature(generator(kind)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return tuple(p for p in params if p not in _CALLER_ARGS)


def check_spec(spec) -> str:
    """Validate the keys of a spec (not the values); return its kind."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"workload spec must be a mapping with a 'kind' key, got {spec!r}")
    if "kind" not in spec:
        raise ValueError(f"workload spec has no 'kind' (one of {', '.join(WORKLOAD_KINDS)})")
    kind = spec["kind"]
    allowed = workload_parameters(kind)  # an unknown kind or a bad plug-in fails here
    for key in spec:
        if key == "kind":
            continue
        if key in _CALLER_ARGS:
            raise ValueError(f"workload parameter {key!r} is set by the scenario/experiment, not by the workload spec")
        if allowed is not None and key not in allowed:
            raise ValueError(f"unknown parameter {key!r} for workload kind {kind!r} (known: {', '.join(allowed)})")
    return kind


def from_spec(spec: Mapping, sources: Sequence[str], tasks: Sequence[str], slots: int, seed: int) -> pd.DataFrame:
    """Trace described by ``spec``; unknown kind or parameter -> ValueError."""
    from .. import limits

    kind = check_spec(spec)
    params = {k: v for k, v in spec.items() if k != "kind"}
    if isinstance(slots, int):
        rows = float(slots) * len(sources) * len(tasks)
        limits.check(f"workload {kind}", f"{slots:,} slots of {len(sources)} sources x {len(tasks)} tasks", rows * limits.PER_TRACE_ROW)
    trace = generator(kind)(sources, tasks, slots, seed, **params)
    if kind in WORKLOAD_KINDS:
        return trace
    # a plug-in's output is checked like a trace file's, and must name known sources and tasks
    if not isinstance(trace, pd.DataFrame):
        raise ValueError(f"workload generator {kind!r} returned a {type(trace).__name__}, not a pandas DataFrame")
    trace = validate_trace(trace, origin=f"workload generator {kind!r}")
    check_known(trace, sources, tasks, origin=f"workload generator {kind!r}")
    return trace[trace["slot"] < slots].reset_index(drop=True)
