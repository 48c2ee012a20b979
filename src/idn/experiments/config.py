"""Experiment files: what a sweep runs, validated in full before any run starts.

Format (YAML or JSON)::

    name: alpha-sweep                # default: the file's stem
    scenarios:                       # name -> scenario file (relative to this file), "default",
      tree: tree.yaml                #   or an inline scenario mapping (idn.model.scenario format)
    workloads:                       # name -> workload spec (idn.workloads.from_spec); optional:
      stationary: {kind: stationary, rate: 20, zipf: 0.8}   # without it each scenario's own workload
      shifting: {kind: shifting, period: 200, mode: rotate} # (or a stationary one), named "scenario"
    slots: 500
    seeds: [0, 1, 2]                 # a list, or one int
    policies:                        # name -> the policy's own parameters; a list is a grid axis
                                     # (a name: built-in, an idn.policies entry point, or
                                     #  package.module:ClassName: see policies.registry.policy_class)
      infida: {eta_scale: [0.5, 1, 2]}
      online-greedy: {window: [10]}
      cloud-only: {}
    grid:                            # scenario-level axes, crossed with everything
      alpha: [0.5, 2, 8]             #   allowed: alpha, budget_scale, slot_seconds
      budget_scale: [1.0]            #   (absent: the scenario's own alpha / slot length, scale 1)
    bounds: true                     # LP bounds per (scenario, workload, seed, axes); default false;
                                     #   true = auto (the LP while small, the fast bound past it), or lp, fast

Meanings and choices:
- Every list in ``policies`` or ``grid`` is an axis: all combinations run. A
  scalar is a one-value axis. A parameter whose value is itself a list must
  be written as a list of lists. An empty list is an error.
- A run is (scenario, workload, seed, alpha, budget_scale, slot_seconds,
  policy, policy parameters); its trace depends only on (scenario,
  workload, slots, seed), so every policy and axis value sees the same
  requests (common random numbers).
- Policy parameters are recorded with the policy's defaults filled in, and an
  int given for a float default is stored as a float, so ``eta_scale: 1`` and
  ``eta_scale: 1.0`` are the same run.
- Problems are reported as one line, ``<file>: <key path>: <problem>``, for
  the first problem found, before anything runs: structure (pydantic),
  unknown policy or policy parameter (``make_policy``), empty axis, unknown
  axis, unknown workload kind or parameter (``check_spec``) or a workload
  value its generator rejects, a missing or invalid scenario
  (``ScenarioError``), and ``bounds: true`` without the LP bounds module.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..model.network import IDN
from ..model.scenario_spec import MAX_MS, did_you_mean, pydantic_messages

SCENARIO_AXES = ("alpha", "budget_scale", "slot_seconds")
_AXIS_MIN = {"alpha": (0.0, False), "budget_scale": (0.0, False), "slot_seconds": (0.0, True)}  # (low, strict)
DEFAULT_WORKLOAD = {"kind": "stationary"}


class ExperimentError(ValueError):
    """A problem in an experiment file: one line naming the key."""


class ExperimentSpec(BaseModel):
    """The file's structure; the explicit checks in ``experiment_from_dict`` do the rest."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str | None = None
    scenarios: dict[str, str | dict[str, Any]]
    workloads: dict[str, dict[str, Any]] | None = None
    slots: int = Field(gt=0, le=10**9)  # the memory limit (idn.limits) then says how far a run can go
    seeds: list[Annotated[int, Field(ge=0, le=2**63 - 1)]] | Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    policies: dict[str, dict[str, Any] | None]
    grid: dict[str, Any] = Field(default_factory=dict)
    bounds: bool | str = False

    @field_validator("bounds", mode="before")
    @classmethod
    def _bounds_method(cls, v):
        if v is True or v is False or v in ("auto", "lp", "fast"):
            return v
        raise ValueError("must be true, false, auto, lp or fast")


@dataclass
class Experiment:
    """A validated experiment: scenarios loaded, every grid expanded."""

    name: str
    scenarios: dict[str, IDN]
    workloads: dict[str, dict[str, dict]]  # scenario name -> workload name -> spec
    slots: int
    seeds: list[int]
    policies: list[tuple[str, dict]]  # (policy name, its full parameters), one per grid point
    grid: dict[str, list[float | None]]  # None: the scenario's own value
    bounds: str | None  # the bounds' method (upper_bounds.certified_bounds), None: no bounds
    source: dict = field(repr=False)  # the file's content, copied into the result store
    path: Path | None = None


def _fail(origin: str, msg: str):
    raise ExperimentError(f"{origin}: {msg}")


def _axis(values, where: str, origin: str) -> list:
    """A grid axis: a list of values, or one value."""
    if not isinstance(values, list):
        return [values]
    if not values:
        _fail(origin, f"{where}: empty list")
    return values


def _scenario(name: str, entry, base_dir: Path | None, origin: str) -> IDN:
    from ..model.scenario import ScenarioError, load_default_scenario, load_scenario, scenario_from_dict

    where = f"scenarios.{name}"
    try:
        if isinstance(entry, dict):
            return scenario_from_dict(entry, base_dir=base_dir, default_name=name)
        if entry == "default":
            return load_default_scenario()
        path = Path(entry)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            _fail(origin, f"{where}: scenario file not found: {path}")
        return load_scenario(path)
    except ScenarioError as exc:
        n = len(exc.errors) - 1
        more = f" (and {n} more problem{'s' if n > 1 else ''})" if n > 0 else ""
        first = exc.errors[0] if exc.errors else str(exc)
        _fail(origin, f"{where}: {first}{more}")


def _resolve_workload(spec: dict, base_dir: Path | None) -> dict:
    """A recorded trace's path is relative to the experiment file, not the cwd."""
    path = spec.get("path")
    if isinstance(path, str) and base_dir is not None and not Path(path).is_absolute():
        return {**spec, "path": str(base_dir / path)}
    return dict(spec)


def _check_workload(spec: dict, idn: IDN, where: str, origin: str) -> None:
    """Keys by check_spec; values by generating two slots (cheap, and the same
    code path the runs take)."""
    from ..workloads import check_spec, from_spec

    try:
        check_spec(spec)
        from_spec(spec, list(idn.sources), list(idn.tasks), 2, 0)
    except (ValueError, TypeError, OSError) as exc:
        _fail(origin, f"{where}: {exc}")


def _canonical(value, default):
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _policy_grid(name: str, params, origin: str) -> list[tuple[str, dict]]:
    from ..policies.registry import make_policy

    where = f"policies.{name if str(name).isprintable() else repr(name)}"
    if params is None:
        params = {}
    if isinstance(params, dict) and not all(isinstance(k, str) for k in params):
        _fail(origin, f"{where}: parameter names must be strings, got {sorted(map(repr, params))}")
    axes = {k: _axis(v, f"{where}.{k if str(k).isprintable() else repr(k)}", origin) for k, v in params.items()}
    out = []
    for point in itertools.product(*axes.values()):
        given = dict(zip(axes, point))
        try:
            policy = make_policy(name, **given)
        except ValueError as exc:
            _fail(origin, f"{where}: {exc}")
        defaults = type(policy).defaults
        out.append((name, {k: _canonical(v, defaults.get(k)) for k, v in policy.params.items()}))
    return out


def _scenario_grid(grid: dict, origin: str) -> dict[str, list[float | None]]:
    out = {}
    for axis, values in grid.items():
        if axis not in SCENARIO_AXES:
            _fail(origin, f"grid.{axis}: unknown axis{did_you_mean(axis, SCENARIO_AXES)} (allowed: {', '.join(SCENARIO_AXES)})")
        low, strict = _AXIS_MIN[axis]
        values = _axis(values, f"grid.{axis}", origin)
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                _fail(origin, f"grid.{axis}[{i}]: must be a number, got {v!r}")
            if not math.isfinite(min(abs(v), 1e300)) or abs(v) > MAX_MS:  # inf alpha made every cost inf
                _fail(origin, f"grid.{axis}[{i}]: must be a finite number, at most {MAX_MS:g}, got {v!r}")
            if v < low or (strict and v == low):
                _fail(origin, f"grid.{axis}[{i}]: must be {'>' if strict else '>='} {low:g}, got {v!r}")
        out[axis] = [float(v) for v in values]
    for axis in SCENARIO_AXES:
        out.setdefault(axis, [1.0] if axis == "budget_scale" else [None])
    return out


def experiment_from_dict(d, base_dir: str | Path | None = None, origin: str = "experiment", name: str | None = None) -> Experiment:
    """Validate an experiment given as a dict; ``base_dir`` resolves relative
    scenario and trace paths. Raises ExperimentError (one line)."""
    base = Path(base_dir) if base_dir is not None else None
    if not isinstance(d, dict):
        _fail(origin, f"must be a mapping of keys, got {type(d).__name__}")
    try:
        spec = ExperimentSpec.model_validate(d)
    except ValidationError as exc:
        _fail(origin, pydantic_messages(exc, "", ExperimentSpec)[0])
    for key in ("scenarios", "policies"):
        if not getattr(spec, key):
            _fail(origin, f"{key}: empty (name at least one)")
    if spec.workloads is not None and not spec.workloads:
        _fail(origin, "workloads: empty (name at least one, or leave the key out)")
    seeds = _axis(spec.seeds, "seeds", origin)
    if len(set(seeds)) != len(seeds):
        _fail(origin, f"seeds: repeated seed in {seeds}")
    grid = _scenario_grid(spec.grid, origin)
    policies = [p for name_, params in spec.policies.items() for p in _policy_grid(name_, params, origin)]

    scenarios = {sname: _scenario(sname, entry, base, origin) for sname, entry in spec.scenarios.items()}
    workloads: dict[str, dict[str, dict]] = {}
    for sname, idn in scenarios.items():
        if spec.workloads is None:
            own = _resolve_workload(dict(idn.workload or DEFAULT_WORKLOAD), None)
            _check_workload(own, idn, f"scenarios.{sname}.workload", origin)
            workloads[sname] = {"scenario": own}
            continue
        workloads[sname] = {}
        for wname, wspec in spec.workloads.items():
            wspec = _resolve_workload(wspec, base)
            _check_workload(wspec, idn, f"workloads.{wname}", origin)
            workloads[sname][wname] = wspec

    if spec.bounds:
        try:
            from .. import upper_bounds  # noqa: F401
        except ImportError as exc:
            _fail(origin, f"bounds: true, but the LP bounds are not available ({exc})")
    return Experiment(
        name=spec.name or name or "experiment", scenarios=scenarios, workloads=workloads, slots=spec.slots,
        seeds=[int(s) for s in seeds], policies=policies, grid=grid, source=d,
        bounds=("auto" if spec.bounds is True else spec.bounds or None),
    )  # fmt: skip


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file (.yaml/.yml or .json)."""
    path = Path(path)
    origin = str(path)
    from ..textfiles import FileError, load_data

    if not path.exists():
        raise ExperimentError(f"experiment file not found: {path}")
    try:  # binary bytes, duplicate keys, deep nesting and syntax errors: one line naming the file
        data = load_data(path, "experiment")
    except FileError as exc:
        raise ExperimentError(str(exc).replace("YAML syntax error", "syntax error").replace("JSON syntax error", "syntax error")) from None
    if data is None:
        raise ExperimentError(f"{path}: empty experiment file")
    exp = experiment_from_dict(data, base_dir=path.parent, origin=origin, name=path.stem)
    exp.path = path
    return exp


def scenario_digest(idn: IDN) -> str:
    """A short hash of what a scenario's runs depend on, so that editing a
    scenario file makes new run ids instead of silently reusing old results."""
    edges = sorted((min(a, b), max(a, b), float(d["latency_ms"])) for a, b, d in idn.graph.edges(data=True))
    content = repr((idn.nodes, edges, idn.tasks, idn.models, float(idn.alpha), float(idn.slot_seconds), idn.sources))
    return hashlib.sha256(content.encode()).hexdigest()[:12]
