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

import inspect
import re
from importlib import resources
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
from pydantic import ValidationError

from . import topology as topo
from .catalog import catalog as load_catalog
from .network import IDN, Model, Node
from .scenario_spec import (
    GenerateSpec,
    LinkSpec,
    ModelSpec,
    NodeSpec,
    ScenarioError,
    ScenarioSpec,
    TaskSpec,
    did_you_mean,
    show,
    pydantic_messages,
    validate_item,
)

__all__ = ["ScenarioError", "load_default_scenario", "load_scenario", "scenario_from_dict"]

# ---- pieces -----------------------------------------------------------------

_GENERATORS = topo.BUILDERS  # plus plug-ins: a key "package.module:function" (topo.builder)


def _topology(spec: dict, errors: list[str]) -> tuple[list[dict], list[dict]]:
    kinds = [k for k in spec if k in _GENERATORS or ":" in str(k)]
    if len(kinds) != 1:
        errors.append(
            f"topology: must name exactly one generator ({', '.join(_GENERATORS)}, or package.module:function), got keys {sorted(spec)}"
        )
        return [], []
    kind = kinds[0]
    try:
        fn, value = topo.builder(kind), spec[kind]
    except ValueError as exc:  # a bad plug-in reference: one line
        errors.append(f"topology: {exc}")
        return [], []
    rest = {k: v for k, v in spec.items() if k != kind}
    if kind == "topozoo":
        where, args, kwargs = "topology", [value], rest
        if not isinstance(value, str):
            errors.append(f"topology.topozoo: must be a topology name, got {value!r}")
            return [], []
    else:
        if value is not None and not isinstance(value, dict):
            errors.append(f"topology.{kind}: must be a mapping of parameters, got {value!r}")
            return [], []
        where, args, kwargs = f"topology.{kind}", [], {**(value or {}), **rest}
    params = [p for p in inspect.signature(fn).parameters if p != "name"]
    bad = [k for k in kwargs if k not in params]
    for k in bad:
        errors.append(f"{where}.{k if str(k).isprintable() else repr(k)}: unknown parameter{did_you_mean(k, params)} (parameters: {', '.join(params)})")
    if bad:
        return [], []
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError, AttributeError) as exc:
        msg = str(exc)
        head = re.match(r"(\w+)[.:]", msg)
        if head and head.group(1) in params:
            errors.append(f"{where}.{msg}")
        else:
            errors.append(f"topology.{kind}: {msg}" if msg.startswith("unknown topology") else f"{where}: {msg}")
        return [], []


def _nodes(spec: ScenarioSpec, gen_nodes: list[dict], errors: list[str]) -> tuple[list[tuple[str, Node]], set[str]]:
    """[(where, Node)] in order, and every id mentioned (valid or not), so that
    one bad node does not also make each link to it an error."""
    generated = {n["id"]: (f"topology node {n['id']!r}", n) for n in gen_nodes}
    merged: dict[str, tuple[str, dict]] = dict(generated)
    known = set(generated)
    first: dict[str, int] = {}
    for i, raw in enumerate(spec.nodes):
        where = f"nodes[{i}]"
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            known.add(raw["id"])
        ns = validate_item(NodeSpec, raw, where, errors)
        if ns is None:
            continue
        if ns.id in first:
            errors.append(f"{where}.id: duplicate node id {ns.id!r} (also nodes[{first[ns.id]}])")
            continue
        first[ns.id] = i
        if ns.id in generated:
            merged[ns.id] = (where, generated[ns.id][1] | ns.model_dump(exclude_unset=True))
        elif ns.tier is None:
            if spec.topology is None or gen_nodes:  # else the topology's error says it all
                errors.append(f"{where}.tier: required" + (" (not a topology node)" if generated else ""))
        else:
            merged[ns.id] = (where, ns.model_dump())
    out = []
    for where, fields in merged.values():
        ns = validate_item(NodeSpec, fields, where, errors)
        if ns is not None:
            out.append((where, Node(**ns.model_dump())))
    return out, known


def _links(spec: ScenarioSpec, gen_links: list[dict], known: set[str], errors: list[str]) -> dict:
    """{frozenset({a, b}): (a, b, latency_ms)}; a listed link replaces a generated one."""
    links = {frozenset((ln["a"], ln["b"])): (ln["a"], ln["b"], float(ln["latency_ms"])) for ln in gen_links}
    first: dict[frozenset, int] = {}
    for i, raw in enumerate(spec.links):
        where = f"links[{i}]"
        ls = validate_item(LinkSpec, raw, where, errors)
        if ls is None:
            continue
        ok = True
        for end in ("a", "b"):
            node = getattr(ls, end)
            if node not in known and (spec.topology is None or gen_links):
                errors.append(f"{where}.{end}: unknown node {node!r}{did_you_mean(node, known)}")
            ok = ok and node in known
        if ls.a == ls.b:
            errors.append(f"{where}: link from node {ls.a!r} to itself")
            ok = False
        key = frozenset((ls.a, ls.b))
        if key in first:
            errors.append(f"{where}: duplicate link {ls.a!r}-{ls.b!r} (also links[{first[key]}])")
            ok = False
        if ok:
            first[key] = i
            links[key] = (ls.a, ls.b, ls.latency_ms)
    return links


def _catalog(spec: ScenarioSpec, base_dir: Path | None, errors: list[str]) -> dict:
    if spec.catalog is None:
        return load_catalog()
    path = Path(spec.catalog)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    try:
        return load_catalog(path)
    except ValueError as exc:
        errors.append(f"catalog: {exc}")
        return {}


def _catalog_model(name: str, task: str, cat: dict) -> Model:
    e = cat[name]
    return Model(f"{task}/{name}", task, e.accuracy, e.size_mb, dict(e.service_ms))


def _generated_tasks(raw: Any, cat: dict, errors: list[str]) -> list:
    """Section 10's tasks: each its own copies of a seeded random subset of the catalog."""
    gen = validate_item(GenerateSpec, raw, "tasks.generate", errors)
    if gen is None or not cat:
        return []
    pool = list(cat) if gen.architectures is None else list(dict.fromkeys(gen.architectures))
    unknown = [n for n in pool if n not in cat]
    for n in unknown:
        errors.append(f"tasks.generate.architectures: unknown catalog model {n!r}{did_you_mean(n, cat)}")
    lo, hi = gen.models_per_task
    if hi > len(pool):
        errors.append(f"tasks.generate.models_per_task: at most {len(pool)} architectures available, got {[lo, hi]}")
    if unknown or hi > len(pool):
        return []
    rng = np.random.default_rng(gen.seed)
    out = []
    for t in range(gen.count):
        pick = np.sort(rng.choice(len(pool), size=int(rng.integers(lo, hi + 1)), replace=False))
        tid = f"task-{t}"
        out.append(("tasks.generate", tid, [("tasks.generate", _catalog_model(pool[j], tid, cat)) for j in pick]))
    return out


def _tasks(spec: ScenarioSpec, cat: dict, errors: list[str]) -> list[tuple[str, str, list[tuple[str, Model]]]]:
    """[(where, task id, [(where, Model)])]."""
    if spec.tasks is None:
        errors.append("tasks: required (a list of tasks, or {generate: {...}})")
        return []
    if isinstance(spec.tasks, dict):
        if set(spec.tasks) != {"generate"}:
            errors.append(f"tasks: a mapping must be {{generate: {{...}}}}, got keys {sorted(spec.tasks)}")
            return []
        return _generated_tasks(spec.tasks["generate"], cat, errors)
    if not isinstance(spec.tasks, list):
        errors.append(f"tasks: must be a list of tasks or {{generate: {{...}}}}, got {show(spec.tasks)}")
        return []
    out, first_task = [], {}
    for i, raw in enumerate(spec.tasks):
        where = f"tasks[{i}]"
        ts = validate_item(TaskSpec, raw, where, errors)
        if ts is None:
            continue
        if ts.id in first_task:
            errors.append(f"{where}.id: duplicate task id {ts.id!r} (also tasks[{first_task[ts.id]}])")
            continue
        first_task[ts.id] = i
        if not ts.models:
            errors.append(f"{where} {ts.id!r}: has no model")
        models, first_model = [], {}
        for j, mraw in enumerate(ts.models):
            mwhere = f"{where}.models[{j}]"
            if isinstance(mraw, str):
                if mraw not in cat:
                    errors.append(f"{mwhere}: unknown catalog model {mraw!r}{did_you_mean(mraw, cat)}")
                    continue
                local, model = mraw, _catalog_model(mraw, ts.id, cat)
            else:
                ms = validate_item(ModelSpec, mraw, mwhere, errors)
                if ms is None:
                    continue
                local = ms.id
                model = Model(f"{ts.id}/{ms.id}", ts.id, ms.accuracy, ms.size_mb, dict(ms.service_ms))
            if local in first_model:
                errors.append(f"{mwhere}: duplicate model id {local!r} in task {ts.id!r} (also models[{first_model[local]}])")
                continue
            first_model[local] = j
            models.append((mwhere, model))
        out.append((where, ts.id, models))
    return out


# ---- assembly -----------------------------------------------------------------


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
    gen_nodes, gen_links = _topology(spec.topology, errors) if spec.topology is not None else ([], [])
    placed, known = _nodes(spec, gen_nodes, errors)
    nodes_ok = len(errors) == n_before
    links = _links(spec, gen_links, known, errors)
    graph_ok = len(errors) == n_before  # else "no path" would mostly repeat those errors
    cat = _catalog(spec, base_dir, errors)
    tasks = _tasks(spec, cat, errors)
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
