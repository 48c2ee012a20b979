"""Which policies run live, on every node (docs/live.md, "Which policies run
where"), and the plane each node runs them on: INFIDA and local-greedy
exchange control messages along the paths (:mod:`.control`), LFU and LRU
each run on the node's own cache (:mod:`.caching`). Every other policy is
computed once at start (:mod:`.launcher`)."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from ..policies.registry import make_policy
from .caching import CachePlane
from .control import ControlPlane, check_control_graph, control_graph

CACHING = ("lfu", "lru")
MESSAGING = ("infida", "local-greedy")  # exchange the control messages of policies/infida/messages.py
LIVE_POLICIES = (*MESSAGING, *CACHING)  # run by every node on its own; the others are computed once at start

def make_control_plane(node, policy: dict, checkpoint: Path):
    """The per-node policy of ``node`` for serve.json's ``policy`` entry
    ({"name", "params", "seed"}): INFIDA on the node's own slice (a
    ControlPlane), or LFU/LRU on its own cache (a CachePlane; none at a
    repository, which caches nothing)."""
    learner = make_policy(policy["name"], **(policy.get("params") or {}))
    learner.start_nodes(node.idn, [node.v], seed=int(policy.get("seed", 0)))
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    if policy["name"] in CACHING:
        return None if node.node.repository else CachePlane(node, learner, checkpoint)
    check_control_graph(node.rt)
    hop = node.cfg.get("control_hop_timeout_s")
    if hop is None:  # wall clock: the longest round (deadline tau (2 top + 1)) ends within 80% of the slot
        top = nx.dag_longest_path_length(control_graph(node.rt))
        hop = 5.0 if node.cfg.get("deterministic") else 0.8 * node.idn.slot_seconds / (2 * top + 1)
    return ControlPlane(node, learner, checkpoint, float(hop))
