"""idn as a library: the small public API that ``idn/__init__.py`` exports
(documented, with examples that the tests run, on docs/api.md).

Thin wrappers over the modules that do the work, so that a script needs one
import: scenarios (``model.scenario``), traces (``workloads``, ``sim.inputs``),
the slot loop (``sim.loop``), the bounds (``upper_bounds``). What is new
here is ``IDNView``, the read-only view of the IDN and its request types that
a policy is written against, and ``run``, which runs several policies on the
same counts and returns one row per (policy, slot).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

# what this module imports only to export it: ``idn/__init__.py`` lists the public names once (its
# __all__) and takes them from here on first use
from .model.network import IDN, TIERS  # noqa: F401
from .model.request_types import RequestTypes
from .model.scenario import ScenarioError, scenario_from_dict  # noqa: F401
from .policies.base import Policy
from .policies.registry import ENTRY_POINT_GROUP, make_policy, policy_class, policy_names, register  # noqa: F401
from .sim.inputs import count_matrix, default_trace, request_types_for  # noqa: F401
from .sim.loop import SLOT_COLUMNS, RunResult, run_policy  # noqa: F401
from .workloads import bin_requests, read_trace, write_trace  # noqa: F401


# ---------------------------------------------------------------- scenarios and traces
def load_scenario(path: str | Path = "default") -> IDN:
    """A scenario file (YAML or JSON), or ``"default"``: the built-in GEANT
    scenario ``idn demo`` uses. Problems raise ``ScenarioError`` (``.errors``:
    one line each)."""
    from .model.scenario import load_default_scenario
    from .model.scenario import load_scenario as _load

    return load_default_scenario() if str(path) == "default" else _load(path)


def request_types(net: IDN, trace: pd.DataFrame | None = None) -> RequestTypes:
    """One request type per (source, task), with its path and candidate list;
    sources a trace adds (beyond the scenario's) get types too."""
    return request_types_for(net, trace)


def generate_trace(net: IDN, slots: int, seed: int = 0, workload: Mapping | None = None) -> pd.DataFrame:
    """A trace (``slot, source, task, count``) from the scenario's own workload,
    or from ``workload`` (a spec such as ``{"kind": "shifting", "period": 50}``,
    or ``{"kind": "package.module:function", ...}`` for a plug-in generator)."""
    return default_trace(net, slots, seed, dict(workload) if workload is not None else None)


def import_trace(
    format: str, path: str | Path, scenario: IDN | str | Path = "default", out: str | Path | None = None, *,
    slot_seconds: float | None = None, seed: int = 0, rate: float | None = None, no_scale: bool = False,
    sample: bool = False, spill: float = 0.5, start: float = 0.0, slots: int | None = None,
    time_column: str | None = None, task_column: str | None = None, source_column: str | None = None,
    task_order: str = "random",
):  # fmt: skip
    """A real trace as a trace of ``scenario`` (an IDN, a scenario file or
    ``"default"``): ``idn trace import`` as a function, with the same
    arguments. ``format``: ``"servegen"`` (a directory of ``*-trace.csv``) or
    ``"requests"`` (a per-request log, CSV or Parquet, with ``time_column``,
    ``task_column`` and optionally ``source_column``). Returns
    ``(trace, mapping)``: the trace (``slot, source, task, count``) and the
    mapping as a dict (which stream went to which task and source and why,
    the scale factor, the time compression). With ``out``, writes both: the
    trace to ``out`` and the mapping beside it (``<stem>.mapping.json``).
    Bad input raises ValueError, one line naming the file and the line."""
    import json

    from .workloads.importers import import_trace as _import
    from .workloads.importers import mapping_path, scenario_rate

    net = scenario if isinstance(scenario, IDN) else load_scenario(scenario)
    result = _import(
        format, path, net.sources, net.tasks, scenario_slot_seconds=net.slot_seconds,
        default_rate=scenario_rate(net.workload), slot_seconds=slot_seconds, seed=seed, rate=rate,
        scale=not no_scale, sample=sample, spill=spill, start=start, slots=slots, time_column=time_column,
        task_column=task_column, source_column=source_column, task_order=task_order, scenario=net.name,
    )  # fmt: skip
    if out is not None:
        write_trace(result.trace, out)
        mapping_path(out).write_text(json.dumps(result.mapping, indent=1) + "\n")
    return result


def bounds(rt: RequestTypes, counts: np.ndarray) -> dict[str, float]:
    """LP upper bounds on the total gain over the counts: ``static_lp_bound``
    (no static allocation gains more) and ``per_slot_lp_bound`` (no policy
    at all does)."""
    from .upper_bounds import bounds as _bounds

    return _bounds(rt, counts)


# ---------------------------------------------------------------- what a policy sees
def _read_only(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


class IDNView:
    """The IDN and its request types as a policy sees them, read-only (arrays
    are views that refuse writes; the allocation a policy proposes is its
    own array). Nodes and models are positions 0..n_nodes-1 and
    0..n_models-1; ids are for people.

    Candidate lists are flat (CSR style, as the simulator holds them): the
    entries of request type ``rho`` are ``offsets[rho]:offsets[rho + 1]``,
    sorted by increasing cost, the last one the fallback (a permanent pair).
    """

    def __init__(self, rt: RequestTypes):
        net = rt.idn
        self.n_nodes: int = net.n_nodes
        self.n_models: int = net.n_models
        self.n_types: int = rt.n_types
        self.node_ids: tuple[str, ...] = tuple(n.id for n in net.nodes)
        self.node_tiers: tuple[str, ...] = tuple(n.tier for n in net.nodes)
        self.model_ids: tuple[str, ...] = tuple(m.id for m in net.models)
        self.tasks: tuple[str, ...] = tuple(net.tasks)
        self.model_tasks: tuple[str, ...] = tuple(m.task for m in net.models)
        self.alpha: float = float(net.alpha)
        self.slot_seconds: float = float(net.slot_seconds)
        # (V, M) / (M,) / (V,)
        self.permanent = _read_only(net.permanent)
        self.size_mb = _read_only(net.size_mb)
        self.budget_mb = _read_only(net.budget_mb)
        self.accuracy = _read_only(net.accuracy)
        self.capacity = _read_only(net.capacity)
        self.tier = _read_only(net.node_tier)  # index into TIERS: access, edge, regional, cloud
        # request types (R,) and candidate entries (E,)
        self.source = _read_only(rt.source)
        self.task = _read_only(rt.task)
        self.offsets = _read_only(rt.offsets)
        self.entry_type = _read_only(rt.entry_type)
        self.entry_node = _read_only(rt.node)
        self.entry_model = _read_only(rt.model)
        self.entry_cost = _read_only(rt.cost)
        self._net = net

    def candidates(self, rho: int) -> pd.DataFrame:
        """Request type rho's candidate list, cheapest first: node, model
        (positions and ids), cost_ms and capacity (requests per slot)."""
        if not 0 <= rho < self.n_types:
            raise IndexError(f"request type {rho} out of range 0..{self.n_types - 1}")
        s = slice(int(self.offsets[rho]), int(self.offsets[rho + 1]))
        node, model = self.entry_node[s], self.entry_model[s]
        return pd.DataFrame({
            "node": node, "node_id": [self.node_ids[v] for v in node],
            "model": model, "model_id": [self.model_ids[m] for m in model],
            "cost_ms": self.entry_cost[s], "capacity": self.capacity[node, model],
        })  # fmt: skip

    def empty_allocation(self) -> np.ndarray:
        """A fresh (V, M) float allocation holding only the permanent pairs."""
        return self.permanent.astype(float)

    def allocation(self, mapping: Mapping[str, Sequence[str]]) -> np.ndarray:
        """(V, M) allocation from {node id: [model id, ...]}; ValueError on an
        unknown id or a node over its budget."""
        return self._net.allocation_from_ids({k: list(v) for k, v in mapping.items()})

    def allocation_ids(self, x: np.ndarray) -> dict[str, list[str]]:
        """{node id: [model id, ...]} of the non-permanent pairs set in x."""
        return self._net.allocation_to_ids(x)

    def __repr__(self) -> str:
        return f"IDNView({self.n_nodes} nodes, {self.n_models} models, {self.n_types} request types)"


def view(rt: RequestTypes) -> IDNView:
    """The read-only view of rt (a policy calls ``view(self.rt)`` in ``_start``)."""
    return IDNView(rt)


# ---------------------------------------------------------------- running policies
def _labelled(policies) -> list[tuple[str, Policy]]:
    """(label, Policy) pairs from a Policy, a name, a list of them, or {label: either}."""
    if isinstance(policies, (Policy, str)):
        policies = [policies]
    items = policies.items() if isinstance(policies, Mapping) else [(None, p) for p in policies]
    out, seen = [], set()
    for label, p in items:
        policy = make_policy(p) if isinstance(p, str) else p
        if not isinstance(policy, Policy):
            raise TypeError(f"expected a Policy or a policy name, got {type(p).__name__}")
        label = str(label) if label is not None else policy.name
        if label in seen:
            raise ValueError(f"two policies labelled {label!r}: pass a dict {{label: policy}}")
        seen.add(label)
        out.append((label, policy))
    return out


def run(rt: RequestTypes, counts: np.ndarray, policies, seed: int = 0) -> pd.DataFrame:
    """Run each policy on the same (T, R) counts (common random numbers), one
    after the other, each started afresh with ``seed``. ``policies``: a
    Policy, a policy name (built-in, entry point or ``package.module:Class``),
    a list of them, or {label: policy}. Returns one row per (policy, slot):
    ``policy`` (the label) then ``SLOT_COLUMNS``."""
    frames = []
    for label, policy in _labelled(policies):
        slots = run_policy(rt, policy, counts, seed=seed).slots
        slots.insert(0, "policy", label)
        frames.append(slots)
    return pd.concat(frames, ignore_index=True)


def summarize(slots: pd.DataFrame) -> pd.DataFrame:
    """One row per policy of ``run``'s per-slot table: total and time-averaged
    gain, normalized gain, mean latency and accuracy per request, model
    loads, ... (``RunResult.summary``), best total gain first."""
    rows = [
        RunResult(str(label), group.drop(columns="policy").reset_index(drop=True), np.empty(0)).summary()
        for label, group in slots.groupby("policy", sort=False)
    ]
    return pd.DataFrame(rows).sort_values("total_gain", ascending=False, kind="stable").reset_index(drop=True)

