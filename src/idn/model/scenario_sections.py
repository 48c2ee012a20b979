"""The sections of a scenario file, each checked and built on its own
(topology, nodes, links, catalog, tasks), every problem one line appended to
``errors``; :func:`idn.model.scenario.scenario_from_dict` puts them together."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import numpy as np

from . import topology as topo
from .catalog import catalog as load_catalog
from .network import Model, Node
from .scenario_spec import (
    GenerateSpec,
    LinkSpec,
    ModelSpec,
    NodeSpec,
    ScenarioSpec,
    TaskSpec,
    did_you_mean,
    show,
    validate_item,
)


_GENERATORS = topo.BUILDERS  # plus plug-ins: a key "package.module:function" (topo.builder)


def topology_section(spec: dict, errors: list[str]) -> tuple[list[dict], list[dict]]:
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


def _unique_items(items: list, spec_cls, section: str, kind: str, errors: list[str]):
    """(index, where, parsed) of each item of a list section that validates
    and whose id was not seen before; one error line per duplicate id."""
    first: dict[str, int] = {}
    for i, raw in enumerate(items):
        where = f"{section}[{i}]"
        item = validate_item(spec_cls, raw, where, errors)
        if item is None:
            continue
        if item.id in first:
            errors.append(f"{where}.id: duplicate {kind} id {item.id!r} (also {section}[{first[item.id]}])")
            continue
        first[item.id] = i
        yield i, where, item


def nodes_section(spec: ScenarioSpec, gen_nodes: list[dict], errors: list[str]) -> tuple[list[tuple[str, Node]], set[str]]:
    """[(where, Node)] in order, and every id mentioned (valid or not), so that
    one bad node does not also make each link to it an error."""
    generated = {n["id"]: (f"topology node {n['id']!r}", n) for n in gen_nodes}
    merged: dict[str, tuple[str, dict]] = dict(generated)
    known = set(generated) | {raw["id"] for raw in spec.nodes if isinstance(raw, dict) and isinstance(raw.get("id"), str)}
    for _, where, ns in _unique_items(spec.nodes, NodeSpec, "nodes", "node", errors):
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


def links_section(spec: ScenarioSpec, gen_links: list[dict], known: set[str], errors: list[str]) -> dict:
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


def catalog_section(spec: ScenarioSpec, base_dir: Path | None, errors: list[str]) -> dict:
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


def tasks_section(spec: ScenarioSpec, cat: dict, errors: list[str]) -> list[tuple[str, str, list[tuple[str, Model]]]]:
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
    out = []
    for _, where, ts in _unique_items(spec.tasks, TaskSpec, "tasks", "task", errors):
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
