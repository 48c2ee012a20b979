"""From a scenario and a trace to what the slot loop needs: the request types
(one per source and task, the trace's sources included) and the dense
(T, R) count matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..model.network import IDN
from ..model.request_types import RequestTypes, build_request_types
from ..workloads import from_spec, to_matrix

DEFAULT_WORKLOAD = {"kind": "stationary"}


def check_trace_names(idn: IDN, trace: pd.DataFrame) -> None:
    """One-line error for the first row naming an unknown node or task."""
    for col, known, what in (("source", idn.node_index, "node"), ("task", idn.task_index, "task")):
        bad = ~trace[col].astype(str).isin(list(known))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            origin = trace.attrs.get("origin", "trace")  # the file, when read from one
            raise ValueError(f"{origin} row {i + 1}: unknown {what} {trace[col].iloc[i]!r} in column {col!r}")


def request_types_for(idn: IDN, trace: pd.DataFrame | None = None) -> RequestTypes:
    sources = list(idn.sources)
    if trace is not None and len(trace):
        check_trace_names(idn, trace)
        seen = set(sources)
        for s in pd.unique(trace["source"].astype(str)):
            if s not in seen:
                sources.append(s)
                seen.add(s)
    return build_request_types(idn, sources)


def count_matrix(rt: RequestTypes, trace: pd.DataFrame, slots: int | None = None) -> np.ndarray:
    idn = rt.idn
    return to_matrix(
        trace, rt.key_index, rt.n_types, slots=slots, known_sources=set(idn.node_index), known_tasks=set(idn.tasks)
    )


def default_trace(idn: IDN, slots: int, seed: int = 0, spec: dict | None = None) -> pd.DataFrame:
    """The scenario's own workload (its ``workload:`` key), or a stationary one."""
    spec = dict(spec or idn.workload or DEFAULT_WORKLOAD)
    return from_spec(spec, list(idn.sources), list(idn.tasks), slots, seed)
