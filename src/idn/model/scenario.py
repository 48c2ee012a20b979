"""Scenario files (YAML or JSON) -> a validated ``IDN``.

Format (every top-level key but ``tasks`` is optional; unknown keys are errors)::

    name: tiny                 # default: the file's stem
    slot_seconds: 1.0          # default 1
    alpha: 1.0                 # ms per accuracy percentage point; default 1
    catalog: my.csv            # optional: another catalog CSV (path relative to the file)
    topology: {topozoo: Geant2012, budget_scale: 2}   # or {tiered_tree: {regional: 2}}
    nodes:
      - {id: cloud, tier: cloud, hardware: gpu, speed: 1.0, workers: 4, repository: true}
      - {id: ap-1, tier: access, hardware: cpu, speed: 0.5, workers: 2, budget_mb: 60}
    links:
      - {a: ap-1, b: cloud, latency_ms: 20}
    tasks:
      - id: vision-a
        models:
          - {id: small, accuracy: 0.71, size_mb: 14, service_ms: {cpu: 25.9, gpu: 3.8}}
          - MobileNetV2          # a name from the catalog (idn.model.catalog)
    # or: tasks: {generate: {count: 10, models_per_task: [6, 8], seed: 1}}
    sources: [ap-1]            # default: access-tier nodes, else all non-repository nodes
    workload: {kind: stationary, rate: 20, zipf: 0.8}  # passed through as a dict
                               # (a relative "path" in it is made relative to the file)

Meanings:
- Model ids are made globally unique as "<task id>/<id>" (a catalog entry's id
  is its name), so task ids may not contain "/".
- ``repository: true``: the node permanently hosts every model of every task
  with unbounded capacity; its budget is ignored (design page, section 1).
- With ``topology:``, nodes and links come from ``idn.model.topology``; a
  ``nodes:`` entry whose id is a generated node overrides just the fields it
  gives, other entries add nodes; a ``links:`` entry between two nodes already
  linked replaces that link's latency, others add links.
- ``tasks: {generate: {count, models_per_task: n | [lo, hi], seed,
  architectures: [names]}}`` makes tasks "task-0", "task-1", ..., each served
  by its own copies of a seeded random subset of lo..hi catalog
  architectures, listed in catalog order (or, with ``architectures: [names]``,
  drawn from those names and listed in their order).

Every problem found is reported at once in a ``ScenarioError``, one line
each, naming the key path and the value.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import networkx as nx
from pydantic import ValidationError

from . import topology as topo
from .network import IDN
from .scenario_sections import topology_section, nodes_section, links_section, catalog_section, tasks_section
from .scenario_spec import (
    ScenarioError,
    ScenarioSpec,
    did_you_mean,
    show,
    pydantic_messages,
)

__all__ = ["ScenarioError", "load_default_scenario", "load_scenario", "scenario_from_dict"]

def scenario_from_dict(d: dict, base_dir: str | Path | None = None, *, default_name: str = "scenario") -> IDN:
    """Validate a scenario given as a dict; ``base_dir`` resolves relative paths
    in it (``catalog:``, ``workload.path``). Raises ScenarioError with every problem."""
    if not isinstance(d, dict):
        raise ScenarioError([f"scenario: must be a mapping of keys, got {show(d)}"])
    errors: list[str] = []
    data = dict(d)
    while True:  # drop the keys that fail so the rest can still be checked
        try:
            spec = ScenarioSpec.model_validate(data)
            break
        except ValidationError as exc:
            errors.extend(pydantic_messages(exc, "", ScenarioSpec))
            for e in exc.errors():
                data.pop(e["loc"][0], None)

    n_before = len(errors)
    _check_size(spec)  # before generating anything: a tree of 10^6 nodes is refused in a second, with the estimate
    gen_nodes, gen_links = topology_section(spec.topology, errors) if spec.topology is not None else ([], [])
    placed, known = nodes_section(spec, gen_nodes, errors)
    nodes_ok = len(errors) == n_before
    links = links_section(spec, gen_links, known, errors)
    graph_ok = len(errors) == n_before  # else "no path" would mostly repeat those errors
    cat = catalog_section(spec, base_dir, errors)
    tasks = tasks_section(spec, cat, errors)
    nodes = [n for _, n in placed]

    hardware = {}
    for n in nodes:
        hardware.setdefault(n.hardware, n.id)
    for _, _, models in tasks:
        for mwhere, m in models:
            for hw, node_id in hardware.items():
                if hw not in m.service_ms:
                    errors.append(f"{mwhere}.service_ms: no {hw!r} time, but node {node_id!r} has {hw} hardware")

    graph = nx.Graph()
    graph.add_nodes_from(n.id for n in nodes)
    for a, b, lat in links.values():
        if a in graph and b in graph:
            graph.add_edge(a, b, latency_ms=lat)

    repos = [n.id for n in nodes if n.repository]
    if not nodes:
        if spec.topology is None and not spec.nodes:
            errors.append("nodes: required (give nodes: or topology:)")
    elif not repos and nodes_ok:
        why = "no node has repository: true"
        if isinstance(spec.tasks, dict):
            errors.append(f"tasks: no repository can serve any task ({why})")
        for where, tid, _ in tasks if isinstance(spec.tasks, list) else []:
            errors.append(f"{where} {tid!r}: no repository can serve it ({why})")
    elif repos and graph_ok:
        served = set().union(*(nx.node_connected_component(graph, r) for r in repos))
        for where, n in placed:
            if n.id not in served:
                who = where if where.startswith("topology") else f"{where} {n.id!r}"
                errors.append(f"{who}: no path to any repository")

    ids = {n.id for n in nodes}
    if spec.sources is not None:
        sources = []
        for i, s in enumerate(spec.sources):
            if s not in known:
                errors.append(f"sources[{i}]: unknown node {s!r}{did_you_mean(s, known)}")
            elif s not in sources:
                sources.append(s)
    else:
        sources = [n.id for n in nodes if n.tier == "access"] or [n.id for n in nodes if not n.repository]
        if nodes and not sources and not any(e.startswith("nodes") for e in errors):
            errors.append("sources: no node where requests can enter (every node is a repository)")

    workload = spec.workload
    if workload and isinstance(workload.get("path"), str) and base_dir is not None:
        # a recorded trace lives beside the scenario file, not in the caller's cwd
        workload = {**workload, "path": str(Path(base_dir) / workload["path"])}
    if workload is not None and workload.get("source_weights") == "topology":
        workload = _demand_weights(workload, spec.topology, sources, errors)
    if workload is not None:
        from ..workloads import check_spec, from_spec

        try:
            check_spec(workload)
            if not errors and workload.get("kind") != "trace":  # values too (nan or inf rates...): two slots, the code path the runs take
                from_spec(workload, sources, [tid for _, tid, _ in tasks], 2, 0)
        except (ValueError, TypeError, OSError) as exc:
            errors.append(f"workload: {exc}")

    if errors:
        raise ScenarioError(errors)
    assert set(sources) <= ids
    return IDN(
        name=spec.name or default_name,
        nodes=nodes,
        graph=graph,
        tasks=[tid for _, tid, _ in tasks],
        models=[m for _, _, ms in tasks for _, m in ms],
        alpha=spec.alpha,
        slot_seconds=spec.slot_seconds,
        sources=sources,
        workload=workload,
    )


def _check_size(spec: ScenarioSpec) -> None:
    """Refuse (ScenarioError, one line) a scenario whose nodes, request types
    or candidate entries would not fit in memory (idn.limits), estimated from
    the keys alone. Entries: each source's path holds up to every model; a
    tiered tree's paths have 4 nodes, other paths at least 1 (so this
    estimate is low for deep graphs; build_request_types checks again with
    the real paths)."""
    from .. import limits

    def count(x):
        return x if isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 10**9 else None

    n_nodes, n_sources, depth, where = len(spec.nodes), None, 1, "nodes"
    tree = (spec.topology or {}).get("tiered_tree", False)
    if tree is None or isinstance(tree, dict):
        p = {**(tree or {}), **{k: v for k, v in spec.topology.items() if k != "tiered_tree"}}
        sizes = [count(p.get(k, 3)) for k in ("regional", "edge_per_regional", "access_per_edge")]
        if None in sizes:
            return  # the generator names the bad value
        r, e, a = sizes
        n_nodes += 1 + r + r * e + r * e * a
        n_sources, depth, where = r * e * a, 4, "topology.tiered_tree"
    if spec.sources is not None:
        n_sources = len(spec.sources)
    n_sources = n_nodes if n_sources is None else n_sources
    tasks = spec.tasks
    if isinstance(tasks, dict) and isinstance(tasks.get("generate"), dict):
        g = tasks["generate"]
        n_tasks = count(g.get("count")) or 0
        per = g.get("models_per_task", 8)
        hi = per[-1] if isinstance(per, (list, tuple)) and per else per
        n_models = n_tasks * (count(hi) or 1)
        where = where if where != "nodes" else "tasks.generate"
    elif isinstance(tasks, list):
        n_tasks = len(tasks)
        n_models = sum(len(t["models"]) if isinstance(t, dict) and isinstance(t.get("models"), list) else 1 for t in tasks)
    else:
        return
    try:
        limits.check(where, f"{n_nodes:,} nodes", n_nodes * limits.PER_NODE)
        limits.check_request_types(where, n_sources * n_tasks, n_sources * n_models * depth)
    except limits.LimitError as exc:
        raise ScenarioError([str(exc)]) from None


def _demand_weights(workload: dict, topology: dict | None, sources: list[str], errors: list[str]) -> dict:
    """``source_weights: topology``: rates proportional to the demand that
    topohub's data gives each source (sum of the demands it originates)."""
    name = (topology or {}).get("topozoo")
    weights = topo.topology_demand_weights(name) if isinstance(name, str) else None
    if weights is None:
        errors.append(
            f"workload.source_weights: 'topology' needs a topohub graph with demand data "
            f"(e.g. topozoo: sndlib/geant), got topology {name!r}"
        )
        return {k: v for k, v in workload.items() if k != "source_weights"}
    return {**workload, "source_weights": {s: weights.get(s, 0.0) for s in sources}}


def load_scenario(path: str | Path) -> IDN:
    """Read and validate a scenario file (.yaml/.yml, or .json)."""
    from ..textfiles import FileError, load_data

    path = Path(path)
    try:
        data = load_data(path, "scenario")
    except FileError as exc:
        raise ScenarioError([str(exc)], path) from None
    if data is None:
        raise ScenarioError([f"{path}: empty scenario file"], path)
    try:
        return scenario_from_dict(data, base_dir=path.parent, default_name=path.stem)
    except ScenarioError as exc:
        raise ScenarioError(exc.errors, path) from None


def load_default_scenario() -> IDN:
    """The built-in scenario of ``idn demo`` (idn/data/default.yaml)."""
    with resources.as_file(resources.files("idn") / "data" / "default.yaml") as path:
        return load_scenario(path)
