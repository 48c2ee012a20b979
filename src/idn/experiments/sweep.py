"""Sweeps: every combination of an experiment's scenarios, workloads, seeds,
scenario axes and policy grids, run on a process pool or a Ray cluster, each
finished run stored at once (``idn.experiments.store``), runs already in the
store skipped.

- A run's parameters are its columns: scenario, scenario_digest, workload,
  workload_spec (JSON), slots, seed, alpha, budget_scale, slot_seconds,
  policy, and ``param_<name>`` for each policy parameter (defaults filled
  in). ``run_id`` is a hash of them (sorted JSON): the same run has the same
  id in any sweep, so stores can be resumed and extended.
- Runs of one (scenario, workload, seed, axes) group share a ``bound_key``;
  with ``bounds: true`` each group's LP bounds are computed once, as a task
  of their own, and ``load_runs`` joins them in.
- Backends yield finished results to the parent, which does all the
  writing: a Ray cluster need not share the parent's disk. ``local`` with
  jobs=1 runs in-process (simplest to debug); jobs > 1 uses a
  ProcessPoolExecutor with spawned workers (forking under the progress
  bar's thread is unsafe). ``ray`` submits the same function as a remote
  task. The backends run identical code on identical inputs, so their tables
  are identical (wall-clock columns aside: ``seconds`` per slot and
  ``seconds_per_slot`` per run).
- A run that raises stops the sweep (SweepError naming the run); what had
  finished is stored, so fixing the cause and re-running resumes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..model.network import IDN
from .config import Experiment, experiment_from_dict, load_experiment, scenario_digest
from .store import ResultStore

BACKENDS = ("local", "ray")


class SweepError(RuntimeError):
    """A run failed; the message names it."""


@dataclass(frozen=True)
class Task:
    kind: str  # "run" or "bound"
    key: str  # run_id or bound_key
    scenario: str  # which IDN of the experiment
    params: dict  # the columns (see the module docstring)
    policy_params: dict | None = None  # a run's policy parameters; a bound's {"method": ...}
    workload: dict | None = None

    def describe(self) -> str:
        p = self.params
        what = f"{p['scenario']}/{p['workload']} seed={p['seed']} alpha={p['alpha']:g} budget_scale={p['budget_scale']:g}"
        if self.kind == "bound":
            return f"LP bound {self.key} ({what})"
        args = ", ".join(f"{k}={v!r}" for k, v in (self.policy_params or {}).items())
        return f"run {self.key} ({what}, {p['policy']}({args}))"


def _hash(d: dict) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def column_value(v):
    """Parquet-friendly: scalars as they are, anything nested as JSON."""
    return json.dumps(v, sort_keys=True) if isinstance(v, (dict, list, tuple)) else v


def expand(exp: Experiment) -> tuple[list[Task], list[Task]]:
    """(runs, bound tasks) in a stable order: scenarios, workloads, seeds,
    axes, policies, as the file lists them."""
    runs, bounds = [], []
    axes = [exp.grid[a] for a in ("alpha", "budget_scale", "slot_seconds")]
    for sname, idn in exp.scenarios.items():
        digest = scenario_digest(idn)
        for wname, wspec in exp.workloads[sname].items():
            for seed, (alpha, scale, slot_s) in itertools.product(exp.seeds, itertools.product(*axes)):
                group = {
                    "scenario": sname, "scenario_digest": digest, "workload": wname,
                    "workload_spec": json.dumps(wspec, sort_keys=True), "slots": exp.slots, "seed": seed,
                    "alpha": float(idn.alpha if alpha is None else alpha), "budget_scale": float(scale),
                    "slot_seconds": float(idn.slot_seconds if slot_s is None else slot_s),
                }  # fmt: skip
                # the method asked is part of a bound's identity, except auto's (the keys of stores made before the choice)
                bound_key = _hash(group if exp.bounds in (None, "auto") else {**group, "bounds": exp.bounds})
                if exp.bounds:
                    bounds.append(Task("bound", bound_key, sname, {**group, "bound_key": bound_key}, {"method": exp.bounds}, wspec))
                for pname, pparams in exp.policies:
                    params = {**group, "policy": pname, **{f"param_{k}": column_value(v) for k, v in pparams.items()}}
                    run_id = _hash(params)
                    runs.append(Task("run", run_id, sname, {**params, "bound_key": bound_key}, pparams, wspec))
    return runs, bounds


# ---------------------------------------------------------------- one task
def _inputs(base: IDN, task: Task):
    from ..sim.inputs import count_matrix, request_types_for
    from ..workloads import from_spec

    p = task.params
    idn = base.with_changes(alpha=p["alpha"], budget_scale=p["budget_scale"], slot_seconds=p["slot_seconds"])
    trace = from_spec(task.workload, list(idn.sources), list(idn.tasks), p["slots"], p["seed"])
    rt = request_types_for(idn, trace)
    return idn, rt, count_matrix(rt, trace, slots=p["slots"])


def execute(base: IDN, task: Task) -> tuple[Task, dict, object]:
    """Run one task: (task, row, per-slot table or None). Pure: the same
    inputs give the same outputs on any backend."""
    idn, rt, counts = _inputs(base, task)
    if task.kind == "bound":
        from .. import upper_bounds

        # auto (the file's `bounds: true`): the LP while small, the fast bound past it
        b = upper_bounds.certified_bounds(rt, counts, (task.policy_params or {}).get("method", "auto"))
        row = {**task.params, "static_lp_bound": float(b["static_lp_bound"]), "per_slot_lp_bound": float(b["per_slot_lp_bound"])}
        row.update(bound_method=b["method"], bound_seconds=float(b["seconds"]), bound_gap=b["gap"])
        return task, row, None

    from ..policies.registry import make_policy
    from ..sim.loop import run_policy

    result = run_policy(rt, make_policy(task.params["policy"], **task.policy_params), counts, seed=task.params["seed"])
    row = {"run_id": task.key, **task.params, **result.summary()}  # summary's policy and slots: the same values
    row["final_allocation"] = json.dumps(idn.allocation_to_ids(result.final_allocation), sort_keys=True)
    slots = result.slots
    columns = {"run_id": task.key, **task.params}
    for i, (k, v) in enumerate(columns.items()):
        slots.insert(i, k, [v] * len(slots) if v is None else v)
    return task, row, slots


# ---------------------------------------------------------------- backends
def _local(scenarios: dict[str, IDN], tasks: list[Task], jobs: int, ray_address=None) -> Iterator:
    if jobs <= 1 or len(tasks) <= 1:
        for t in tasks:
            yield _checked(lambda t=t: execute(scenarios[t.scenario], t), t)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {pool.submit(execute, scenarios[t.scenario], t): t for t in tasks}
        for fut in as_completed(futures):
            yield _checked(fut.result, futures[fut])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _ray(scenarios: dict[str, IDN], tasks: list[Task], jobs: int, ray_address: str | None = None) -> Iterator:
    try:
        import ray
    except ImportError:
        raise SweepError("the ray backend needs the ray package: pip install 'ray>=2.9'") from None
    started = not ray.is_initialized()
    if started:
        if ray_address:
            ray.init(address=ray_address, logging_level="warning")
        else:
            # address="local": a Ray of our own, even when another one runs on this machine (plain
            # ray.init() would join it, and refuse num_cpus); --ray-address joins a cluster on purpose
            ray.init(address="local", num_cpus=jobs if jobs > 1 else None, include_dashboard=False, logging_level="warning")
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(execute)
        refs = {name: ray.put(idn) for name, idn in scenarios.items()}
        # enough in flight to keep the cluster busy, few enough that results do not pile up in memory
        cap = 2 * max(jobs, int(ray.cluster_resources().get("CPU", 1)))
        todo, inflight = list(reversed(tasks)), {}
        while todo or inflight:
            while todo and len(inflight) < cap:
                t = todo.pop()
                inflight[remote.remote(refs[t.scenario], t)] = t
            ready, _ = ray.wait(list(inflight), num_returns=1)
            t = inflight.pop(ready[0])
            yield _checked(lambda: ray.get(ready[0]), t)
    finally:
        if started:
            ray.shutdown()


def _checked(get, task: Task):
    try:
        return get()
    except Exception as exc:  # any failure of a run ends the sweep, naming the run
        cause = getattr(exc, "cause", None) or exc  # Ray wraps the run's own exception
        raise SweepError(f"{task.describe()} failed: {type(cause).__name__}: {cause}") from exc


_BACKEND_FUNCS = {"local": _local, "ray": _ray}


# ---------------------------------------------------------------- the sweep
def _experiment(experiment) -> Experiment:
    if isinstance(experiment, Experiment):
        return experiment
    if isinstance(experiment, dict):
        return experiment_from_dict(experiment, base_dir=Path.cwd())
    return load_experiment(experiment)


def run_sweep(
    experiment, out: str | Path, jobs: int = 1, backend: str = "local", progress: bool = True, ray_address: str | None = None
) -> dict:
    """Run every combination of the experiment (a file path, a dict or an
    Experiment) not yet in the store at out; returns a summary dict."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if ray_address and backend != "ray":
        raise ValueError("--ray-address needs --backend ray")
    exp = _experiment(experiment)
    runs, bound_tasks = expand(exp)
    store = ResultStore(out)
    store.write_experiment(exp.source, exp.path)
    done_runs, done_bounds, corrupt = store.verify(runs, bound_tasks)  # a damaged result file is run again
    todo = [t for t in bound_tasks if t.key not in done_bounds] + [t for t in runs if t.key not in done_runs]
    skipped = sum(t.key in done_runs for t in runs)

    from .single import progress_bar

    finished = {"run": 0, "bound": 0}
    desc = f"sweep {exp.name}" + (f" ({skipped} runs already done)" if skipped else "")
    with progress_bar(desc, len(todo), progress and bool(todo)) as tick:
        for task, row, slots in _BACKEND_FUNCS[backend](exp.scenarios, todo, jobs, ray_address):
            if task.kind == "run":
                store.write_run(task.key, row, slots)
            else:
                store.write_bound(task.key, row)
            finished[task.kind] += 1
            if tick is not None:
                tick(sum(finished.values()), len(todo))
    return {
        "experiment": exp.name,
        "out": str(Path(out)),
        "runs": len(runs),
        "ran": finished["run"],
        "skipped": skipped,
        "bounds": len(bound_tasks),
        "bounds_computed": finished["bound"],
        "backend": backend,
        "jobs": jobs,
        "corrupt": corrupt,
    }


def format_summary(s: dict) -> str:
    bounds = f"; LP bounds: {s['bounds_computed']} computed, {s['bounds'] - s['bounds_computed']} already done" if s["bounds"] else ""
    corrupt = s.get("corrupt") or []
    redone = "".join(f"\n  {line}" for line in corrupt)
    redone = f"\n{len(corrupt)} damaged result file(s) moved to {s['out']}/corrupt and run again:{redone}" if corrupt else ""
    return (
        f"sweep {s['experiment']}: {s['runs']} runs, {s['ran']} run now, {s['skipped']} already done{bounds}.{redone}\n"
        f"results in {s['out']}/runs and {s['out']}/slots "
        f"(idn.experiments.store.load_runs / load_slots)"
    )
