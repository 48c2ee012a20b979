"""Where ``idn serve --backend ray`` puts each IDN node (docs/live.md, "On a cluster").

Two ways, per node:

- **Pinned** (``--placement FILE``, JSON ``{idn node id: Ray custom resource
  name}``): the node's actor asks for a sliver (:data:`SLIVER`) of that
  resource, so it runs on a Ray node started with it (``ray start
  --resources '{"site-a": 1}'``), and only there; a sliver, so that many IDN
  nodes can share one site. Ray restarts it on any Ray node that has the
  resource, when one does.
- **Default** (every node the file does not name): spread over the Ray nodes
  alive at start, a tier at a time. Each node goes to the Ray node holding
  the fewest nodes of its tier so far, then the fewest nodes in all, then the
  first in (host, Ray node id) order. So a tier's nodes sit on distinct Ray
  nodes while there are enough of them (losing one machine does not take
  out, say, every access node), and the count per Ray node differs by at
  most one within each tier. A pinned node counts where its resource
  exists when exactly one Ray node has it. The actor is then bound to that
  Ray node; if the node is lost, ``idn serve`` places the IDN node again by
  the same rule on the Ray nodes still alive.

Pure functions of the scenario and the cluster's node list, so they are
tested without Ray.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..model.network import IDN

SLIVER = 0.001  # of a custom resource, per IDN node: up to 1000 IDN nodes on a site started with {"site": 1}


@dataclass(frozen=True)
class RayHost:
    """A live Ray node: its id, its IP address, its resources."""

    node_id: str
    host: str
    resources: dict = field(default_factory=dict, hash=False, compare=False)


def hosts_from_ray(nodes: list[dict]) -> list[RayHost]:
    """The live nodes of ``ray.nodes()``, in (host, id) order."""
    alive = [RayHost(n["NodeID"], n["NodeManagerAddress"], dict(n.get("Resources", {}))) for n in nodes if n.get("Alive")]
    return sorted(alive, key=lambda h: (h.host, h.node_id))


def read_placement(path: str | Path, idn: IDN) -> dict[str, str]:
    """{idn node id: resource name} from a JSON file; one line naming the culprit if it is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"--placement: file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--placement {path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--placement {path}: expected an object {{idn node id: Ray resource name}}")
    for node, resource in data.items():
        if node not in idn.node_index:
            raise ValueError(f"--placement {path}: unknown node {node!r} (nodes: {', '.join(idn.node_index)})")
        if not isinstance(resource, str) or not resource:
            raise ValueError(f"--placement {path}: node {node!r}: the resource must be a non-empty string, got {resource!r}")
    return dict(data)


def check_resources(placement: dict[str, str], hosts: list[RayHost]) -> None:
    """Refuse a placement that names a resource no live Ray node has (its actor would wait forever)."""
    have = sorted({r for h in hosts for r in h.resources})
    for node, resource in placement.items():
        if not any(resource in h.resources for h in hosts):
            custom = [r for r in have if not r.startswith(("node:", "CPU", "GPU", "memory", "object_store_memory", "accelerator_type:"))]
            raise ValueError(f"--placement: node {node!r} asks for resource {resource!r}, which no Ray node has "
                             f"(custom resources: {', '.join(custom) or 'none'})")  # fmt: skip


def default_placement(idn: IDN, hosts: list[RayHost], pinned: dict[str, str]) -> dict[str, str]:
    """{idn node id: Ray node id} for the nodes ``pinned`` does not name (module docstring)."""
    if not hosts:
        raise ValueError("the Ray cluster has no live node")
    tier_of = {n.id: n.tier for n in idn.nodes}
    where: dict[str, str] = {}
    for node, resource in pinned.items():
        having = [h.node_id for h in hosts if resource in h.resources]
        if len(having) == 1:
            where[node] = having[0]
    out = {}
    for node in _tier_order(idn):
        if node not in pinned:
            out[node] = where[node] = choose_host(tier_of[node], hosts, where, tier_of)
    return out


def choose_host(tier: str, hosts: list[RayHost], where: dict[str, str], tier_of: dict[str, str]) -> str:
    """The Ray node for one more node of ``tier``, given where the others are: fewest of
    its tier, then fewest in all, then the first in the list."""
    same = {h.node_id: 0 for h in hosts}
    total = dict(same)
    for node, ray_node in where.items():
        if ray_node in total:
            total[ray_node] += 1
            same[ray_node] += tier_of[node] == tier
    best = min(range(len(hosts)), key=lambda i: (same[hosts[i].node_id], total[hosts[i].node_id], i))
    return hosts[best].node_id


def _tier_order(idn: IDN) -> list[str]:
    """Node ids grouped by tier (tiers in order of first appearance), scenario order within a tier."""
    tiers = list(dict.fromkeys(n.tier for n in idn.nodes))
    return [n.id for t in tiers for n in idn.nodes if n.tier == t]
