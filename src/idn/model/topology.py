"""Topology generators (design page, section 10). Each returns ``(nodes, links)``
in the scenario file's shapes: a list of node dicts (id, tier, hardware, speed,
workers, budget_mb, repository) and a list of link dicts (a, b, latency_ms),
which ``idn.model.scenario`` validates like hand-written ones.

Per-tier defaults (section 10): access = cpu, 100 MB, speed 0.25, 1 worker;
edge = gpu, 500 MB, speed 0.5, 1 worker; regional = gpu, 4000 MB, speed 1,
4 workers; cloud = gpu repository, speed 1, 8 workers. ``budget_scale``
multiplies every budget (the experiments sweep it).

``topozoo``: a real ISP graph from topohub (``topohub.get("topozoo/" + name)``;
a name containing "/" is taken as a full topohub key, e.g. "sndlib/geant",
which also carries demands). Rules, all deterministic:

- Link latency = dist_km / 200 + per_hop_ms (light in fibre: ~200 km per ms).
  If the graph is disconnected only its largest component is kept (ties:
  the component holding the lowest topohub node id).
- Node ids are the topology's node names, ASCII-folded, with runs of
  characters outside [A-Za-z0-9_.-] replaced by "-"; empty names become
  "n<topohub id>"; a repeated id (or "cloud", which is reserved) gets "-2",
  "-3", ... in topohub node order.
- The cloud is one extra repository node "cloud" linked with
  ``cloud_latency_ms`` to the attachment point: the node named ``cloud`` if
  given, else the most central ISP node (least total latency to all others;
  ties to the lower topohub id).
- Tiers of ISP nodes by degree: nodes are ranked by decreasing degree, ties
  by increasing latency distance to the attachment point, then topohub id;
  the attachment point is always first. The first ``regional_fraction`` of
  the ranking (rounded up) is regional, the last ``access_fraction`` (rounded
  up) is access, the rest edge. Access nodes are where requests enter.
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from functools import lru_cache
from importlib import resources

import networkx as nx

from .network import HARDWARE

TIER_DEFAULTS: dict[str, dict] = {
    "access": {"hardware": "cpu", "budget_mb": 100.0, "speed": 0.25, "workers": 1},
    "edge": {"hardware": "gpu", "budget_mb": 500.0, "speed": 0.5, "workers": 1},
    "regional": {"hardware": "gpu", "budget_mb": 4000.0, "speed": 1.0, "workers": 4},
    "cloud": {"hardware": "gpu", "budget_mb": 0.0, "speed": 1.0, "workers": 8},
}
TREE_LATENCY_MS = {"access_edge": 2.0, "edge_regional": 8.0, "regional_cloud": 25.0}
FIBRE_KM_PER_MS = 200.0


def _tier_params(budget_mb, hardware, speed, workers, budget_scale) -> dict[str, dict]:
    """Per-tier defaults overridden by the {tier: value} dicts given."""
    if not _number(budget_scale) or budget_scale < 0:
        what = "a finite number, at most 1e9" if _numeric(budget_scale) and budget_scale >= 0 else ">= 0"
        raise ValueError(f"budget_scale: must be {what}, got {budget_scale!r}")
    out = {t: dict(d) for t, d in TIER_DEFAULTS.items()}
    for key, override in (("budget_mb", budget_mb), ("hardware", hardware), ("speed", speed), ("workers", workers)):
        if override is not None and not isinstance(override, dict):
            raise ValueError(f"{key}: must be a mapping {{tier: value}}, got {override!r}")
        for tier, value in (override or {}).items():
            if tier not in out:
                raise ValueError(f"{key}: unknown tier {tier!r} (tiers: {', '.join(out)})")
            out[tier][key] = value
    for tier, d in out.items():
        checks = (
            ("hardware", d["hardware"] in HARDWARE, f"must be one of {', '.join(map(repr, HARDWARE))}"),
            ("speed", _number(d["speed"]) and d["speed"] > 0, "must be > 0"),
            ("workers", isinstance(d["workers"], int) and not isinstance(d["workers"], bool) and d["workers"] >= 1,
             "must be an integer >= 1"),
            ("budget_mb", _number(d["budget_mb"]) and d["budget_mb"] >= 0, "must be >= 0"),
        )  # fmt: skip
        for key, ok, msg in checks:
            if not ok:
                if _numeric(d[key]) and not _number(d[key]):
                    msg = "must be a finite number, at most 1e9"
                raise ValueError(f"{key}.{tier}: {msg}, got {d[key]!r}")
        d["budget_mb"] = float(d["budget_mb"]) * float(budget_scale)
    return out


def _numeric(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _number(x) -> bool:
    """A finite number in the sane range of scenario values (nan, inf and
    1e400 are mistakes; see scenario_spec.MAX_MB)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    return abs(x) <= 1e9 if isinstance(x, int) else math.isfinite(x) and abs(x) <= 1e9


def _node(node_id: str, tier: str, params: dict[str, dict]) -> dict:
    return {"id": node_id, "tier": tier, **params[tier], "repository": tier == "cloud"}


def tiered_tree(
    regional: int = 3,
    edge_per_regional: int = 3,
    access_per_edge: int = 3,
    latency_ms: dict[str, float] | None = None,
    budget_mb: dict[str, float] | None = None,
    hardware: dict[str, str] | None = None,
    speed: dict[str, float] | None = None,
    workers: dict[str, int] | None = None,
    budget_scale: float = 1.0,
) -> tuple[list[dict], list[dict]]:
    """1 cloud, ``regional`` regional nodes under it, ``edge_per_regional``
    edge nodes under each, ``access_per_edge`` access nodes under each edge
    (40 nodes with the defaults). Ids: "cloud", "regional-<r>", "edge-<e>",
    "access-<a>", numbered globally in breadth-first order, which is also the
    node order. ``latency_ms`` overrides keys of
    {access_edge: 2, edge_regional: 8, regional_cloud: 25}; the per-tier dicts
    override ``TIER_DEFAULTS``."""
    for key, n in (("regional", regional), ("edge_per_regional", edge_per_regional), ("access_per_edge", access_per_edge)):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"{key}: must be an integer >= 1, got {n!r}")
    lat = dict(TREE_LATENCY_MS)
    if latency_ms is not None and not isinstance(latency_ms, dict):
        raise ValueError(f"latency_ms: must be a mapping, got {latency_ms!r}")
    for key, value in (latency_ms or {}).items():
        if key not in lat:
            raise ValueError(f"latency_ms: unknown key {key!r} (keys: {', '.join(lat)})")
        lat[key] = value
    for key, value in lat.items():
        if not _number(value) or value <= 0:
            what = "a finite number, at most 1e9" if _numeric(value) and value > 0 else "> 0"
            raise ValueError(f"latency_ms.{key}: must be {what}, got {value!r}")
    params = _tier_params(budget_mb, hardware, speed, workers, budget_scale)
    from .. import limits

    n_nodes = 1 + regional + regional * edge_per_regional * (1 + access_per_edge)
    limits.check("tiered_tree", f"{n_nodes:,} nodes", n_nodes * limits.PER_NODE)  # before making them

    n_edge = regional * edge_per_regional
    n_access = n_edge * access_per_edge
    nodes = [_node("cloud", "cloud", params)]
    nodes += [_node(f"regional-{r}", "regional", params) for r in range(regional)]
    nodes += [_node(f"edge-{e}", "edge", params) for e in range(n_edge)]
    nodes += [_node(f"access-{a}", "access", params) for a in range(n_access)]
    links = [{"a": f"regional-{r}", "b": "cloud", "latency_ms": float(lat["regional_cloud"])} for r in range(regional)]
    links += [
        {"a": f"edge-{e}", "b": f"regional-{e // edge_per_regional}", "latency_ms": float(lat["edge_regional"])}
        for e in range(n_edge)
    ]
    links += [
        {"a": f"access-{a}", "b": f"edge-{a // access_per_edge}", "latency_ms": float(lat["access_edge"])}
        for a in range(n_access)
    ]
    return nodes, links


# ---- topohub ------------------------------------------------------------


def _key(name: str) -> str:
    return name if "/" in name else f"topozoo/{name}"


def topohub_names(group: str = "topozoo") -> list[str]:
    """Topology names of a topohub group, read from topohub's package data."""
    import topohub

    root = resources.files(topohub) / "data" / group
    if not root.is_dir():
        return []
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".json"))


@lru_cache(maxsize=64)
def _load(name: str) -> dict:
    import topohub

    key = _key(name)
    group, _, short = key.rpartition("/")
    try:
        return topohub.get(key)
    except (KeyError, OSError):
        pass
    names = topohub_names(group)
    close = [n for n in names if n.lower().startswith(short.lower())][:3]
    close += [n for n in difflib.get_close_matches(short, names, n=3, cutoff=0.6) if n not in close]
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    sample = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    raise ValueError(f"unknown topology {name!r}{hint}; {group} has {len(names)} topologies: {sample}")


def _sanitize(name: str) -> str:
    folded = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9_.]+", "-", folded).strip("-")


def _isp_graph(name: str, per_hop_ms: float) -> tuple[nx.Graph, dict[int, str]]:
    """Graph on topohub node ids (int) with latency_ms, largest component only,
    and {topohub id: node id}."""
    topo = _load(name)
    g = nx.Graph()
    for n in sorted(topo["nodes"], key=lambda n: int(n["id"])):
        g.add_node(int(n["id"]), name=n.get("name"))
    for e in topo["edges"]:
        a, b = int(e["source"]), int(e["target"])
        if a == b:
            continue
        lat = float(e["dist"]) / FIBRE_KM_PER_MS + per_hop_ms
        if g.has_edge(a, b):  # parallel links: keep the faster one
            lat = min(lat, g[a][b]["latency_ms"])
        g.add_edge(a, b, latency_ms=lat)
    if g.number_of_nodes() == 0:
        raise ValueError(f"topology {name!r} has no nodes")
    if not nx.is_connected(g):
        comps = sorted(nx.connected_components(g), key=lambda c: (-len(c), min(c)))
        g = g.subgraph(comps[0]).copy()
    ids: dict[int, str] = {}
    used = {"cloud"}  # reserved for the attached cloud
    for n in sorted(g.nodes):
        base = _sanitize(g.nodes[n]["name"] or "") or f"n{n}"
        node_id, k = base, 1
        while node_id in used:
            k += 1
            node_id = f"{base}-{k}"
        used.add(node_id)
        ids[n] = node_id
    return g, ids


def topozoo(
    name: str,
    cloud: str | None = None,
    cloud_latency_ms: float = 20.0,
    per_hop_ms: float = 0.5,
    regional_fraction: float = 1 / 3,
    access_fraction: float = 1 / 3,
    budget_scale: float = 1.0,
    budget_mb: dict[str, float] | None = None,
    hardware: dict[str, str] | None = None,
    speed: dict[str, float] | None = None,
    workers: dict[str, int] | None = None,
) -> tuple[list[dict], list[dict]]:
    """A Topology Zoo graph with a cloud attached, tiers by the module's rule.
    Node order: the cloud first, then ISP nodes in topohub id order."""
    if not _number(per_hop_ms) or per_hop_ms < 0:
        raise ValueError(f"per_hop_ms: must be >= 0, got {per_hop_ms!r}")
    if not _number(cloud_latency_ms) or cloud_latency_ms <= 0:
        raise ValueError(f"cloud_latency_ms: must be > 0, got {cloud_latency_ms!r}")
    for key, frac in (("regional_fraction", regional_fraction), ("access_fraction", access_fraction)):
        if not _number(frac) or not 0 <= frac <= 1:
            raise ValueError(f"{key}: must be in [0, 1], got {frac!r}")
    if regional_fraction + access_fraction > 1:
        raise ValueError(f"regional_fraction + access_fraction: must be <= 1, got {regional_fraction + access_fraction:g}")
    params = _tier_params(budget_mb, hardware, speed, workers, budget_scale)
    g, ids = _isp_graph(name, per_hop_ms)
    order = sorted(g.nodes)
    dist = dict(nx.all_pairs_dijkstra_path_length(g, weight="latency_ms"))

    if cloud is None:
        attach = min(order, key=lambda n: (sum(dist[n].values()), n))
    else:
        by_name = {ids[n]: n for n in order} | {g.nodes[n]["name"]: n for n in reversed(order)}
        if cloud not in by_name:
            close = difflib.get_close_matches(cloud, list(by_name), n=3)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise ValueError(f"cloud: no node {cloud!r} in topology {name!r}{hint}")
        attach = by_name[cloud]

    ranking = sorted(order, key=lambda n: (n != attach, -g.degree(n), dist[attach][n], n))
    n_isp = len(ranking)
    n_regional = min(n_isp, math.ceil(regional_fraction * n_isp - 1e-9))
    n_access = min(n_isp - n_regional, math.ceil(access_fraction * n_isp - 1e-9))
    tier = {n: "edge" for n in ranking}
    tier.update({n: "regional" for n in ranking[:n_regional]})
    tier.update({n: "access" for n in ranking[n_isp - n_access :]})

    nodes = [_node("cloud", "cloud", params)] + [_node(ids[n], tier[n], params) for n in order]
    links = [{"a": ids[attach], "b": "cloud", "latency_ms": float(cloud_latency_ms)}]
    links += [
        {"a": ids[a], "b": ids[b], "latency_ms": d["latency_ms"]}
        for a, b, d in sorted(g.edges(data=True), key=lambda e: (min(e[:2]), max(e[:2])))
    ]
    return nodes, links


def topology_demand_weights(name: str) -> dict[str, float] | None:
    """{node id (as topozoo() names it): sum of the demands originating there}
    for topologies topohub gives demands for, else None."""
    topo = _load(name)
    demands = topo["graph"].get("demands") or {}
    if not demands:
        return None
    g, ids = _isp_graph(name, 0.0)
    weights = {ids[n]: 0.0 for n in sorted(g.nodes)}
    for src, row in demands.items():
        if int(src) in ids:
            weights[ids[int(src)]] += float(sum(row.values()))
    return weights


# ---- builders by name -----------------------------------------------------

BUILDERS = {"tiered_tree": tiered_tree, "topozoo": topozoo}


def builder(kind: str):
    """The function a scenario's ``topology:`` key names: a built-in builder,
    or a plug-in ``package.module:function`` returning ``(nodes, links)`` in
    the scenario file's shapes (validated like hand-written ones). One-line
    ValueError for a bad plug-in."""
    import functools

    from ..plugins import load_reference

    if kind in BUILDERS:
        return BUILDERS[kind]
    fn = load_reference(kind, "topology builder")
    if isinstance(fn, type) or not callable(fn):
        raise ValueError(f"topology builder {kind!r}: a {type(fn).__name__}, not a function")

    @functools.wraps(fn)  # keeps the signature, which the scenario checks parameters against
    def checked(*args, **kwargs):
        out = fn(*args, **kwargs)
        ok = isinstance(out, tuple) and len(out) == 2 and all(isinstance(part, list) for part in out)
        if not ok or not all(isinstance(item, dict) for part in out for item in part):
            raise ValueError(f"topology builder {kind!r} must return (nodes, links): two lists of dicts")
        return out

    return checked
