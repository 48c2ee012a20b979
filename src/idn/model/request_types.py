"""Request types and their candidate lists (design page, sections 3-4), held
as flat arrays for all request types at once, CSR style: entry arrays of
length E, and ``offsets`` so that type rho owns entries
``offsets[rho]:offsets[rho+1]``, sorted by increasing cost, the last one being
the fallback (the first permanent pair).

Pairs a node can never host (the model is larger than its whole budget) are
left out of the lists: their x is always 0, so they change neither the gain
nor the supergradient, and dropping them keeps the hot loops short.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import networkx as nx
import numpy as np

from .network import IDN


@dataclass
class RequestTypes:
    idn: IDN
    source: np.ndarray  # (R,) node index where requests enter (p_1)
    task: np.ndarray  # (R,) task index
    path_offsets: np.ndarray  # (R+1,)
    path_nodes: np.ndarray  # node indices p_1..p_J of every type, concatenated
    offsets: np.ndarray  # (R+1,) candidate entries of each type
    entry_type: np.ndarray  # (E,) type of each entry
    node: np.ndarray  # (E,) node index p_k
    model: np.ndarray  # (E,) model index m
    pair: np.ndarray  # (E,) node * M + model: index into a flat (V*M) allocation
    hop: np.ndarray  # (E,) k - 1, position of the node on the path
    cost: np.ndarray  # (E,) C_rho(k, m), ms
    latency_ms: np.ndarray  # (E,) RTT(p_1 -> p_k) + tau
    accuracy: np.ndarray  # (E,) a_m
    capacity: np.ndarray  # (E,) L_v^m, inf for the fallback
    delta: np.ndarray  # (E,) C^{k+1} - C^k within the type, 0 at the fallback

    @property
    def n_types(self) -> int:
        return len(self.source)

    @property
    def n_entries(self) -> int:
        return len(self.node)

    @cached_property
    def list_length(self) -> np.ndarray:
        return np.diff(self.offsets)

    @cached_property
    def is_fallback(self) -> np.ndarray:
        flag = np.zeros(self.n_entries, dtype=bool)
        flag[self.offsets[1:] - 1] = True
        return flag

    @cached_property
    def fallback_cost(self) -> np.ndarray:
        return self.cost[self.offsets[1:] - 1]

    @cached_property
    def best_cost(self) -> np.ndarray:
        return self.cost[self.offsets[:-1]]

    @cached_property
    def entry_tier(self) -> np.ndarray:
        return self.idn.node_tier[self.node]

    @cached_property
    def key_index(self) -> dict[tuple[str, str], int]:
        """(source node id, task id) -> request type index."""
        nodes, tasks = self.idn.nodes, self.idn.tasks
        return {(nodes[s].id, tasks[t]): i for i, (s, t) in enumerate(zip(self.source, self.task))}

    def path(self, rho: int) -> np.ndarray:
        return self.path_nodes[self.path_offsets[rho] : self.path_offsets[rho + 1]]

    def entries(self, rho: int) -> slice:
        return slice(int(self.offsets[rho]), int(self.offsets[rho + 1]))


def repository_paths(idn: IDN, sources: list[int]) -> dict[int, list[int]]:
    """Minimum-latency path from each source to its nearest repository.

    Ties between repositories go to the lower node index; between equal-latency
    paths to it, to the lexicographically smallest sequence of node indexes
    (the lowest next hop first), so paths do not depend on how networkx orders
    adjacency.
    """
    index = idn.node_index
    graph = idn.graph
    repos = [i for i, n in enumerate(idn.nodes) if n.repository]
    # distance of every node to every repository
    dist_to = {r: nx.single_source_dijkstra_path_length(graph, idn.nodes[r].id, weight="latency_ms") for r in repos}
    neighbours = {
        index[u]: sorted((index[w], float(d["latency_ms"])) for w, d in graph[u].items()) for u in graph.nodes
    }
    paths = {}
    for s in sources:
        sid = idn.nodes[s].id
        reachable = [(dist_to[r][sid], r) for r in repos if sid in dist_to[r]]
        if not reachable:
            raise ValueError(f"node {sid!r} cannot reach any repository")
        _, target = min(reachable)
        dist = dist_to[target]
        path, here = [s], s
        while here != target:
            d_here = dist[idn.nodes[here].id]
            for w, lat in neighbours[here]:
                wid = idn.nodes[w].id
                if wid in dist and abs(dist[wid] + lat - d_here) <= 1e-9 * max(1.0, d_here):
                    here = w
                    break
            path.append(here)
        paths[s] = path
    return paths


def build_request_types(idn: IDN, sources: list[str] | None = None) -> RequestTypes:
    """One request type per (source, task), for the given source node ids
    (default: the scenario's sources)."""
    source_ids = list(idn.sources if sources is None else sources)
    for sid in source_ids:
        if sid not in idn.node_index:
            raise ValueError(f"unknown source node {sid!r}")
    src_idx = sorted({idn.node_index[s] for s in source_ids})
    paths = repository_paths(idn, src_idx)
    from .. import limits

    n_entries = sum(len(paths[s]) for s in src_idx) * idn.n_models  # at most: every model on every path node
    limits.check_request_types(f"scenario {idn.name!r}", len(src_idx) * len(idn.tasks), n_entries)

    n_models = idn.n_models
    tau = idn.service_time_ms
    acc_cost = idn.alpha * 100.0 * (1.0 - idn.accuracy)
    usable = idn.fits | idn.permanent
    cap = idn.capacity
    models_of_task = [np.flatnonzero(idn.model_task == t) for t in range(len(idn.tasks))]

    empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0)
    cols: dict[str, list[np.ndarray]] = {
        "node": [empty_i], "model": [empty_i], "hop": [empty_i], "cost": [empty_f], "lat": [empty_f], "cap": [empty_f]
    }
    type_source, type_task, path_chunks, lengths = [], [], [], []
    for s in src_idx:
        path = paths[s]
        hop_lat = [0.0]
        for a, b in zip(path[:-1], path[1:]):
            hop_lat.append(hop_lat[-1] + float(idn.graph[idn.nodes[a].id][idn.nodes[b].id]["latency_ms"]))
        rtt = 2.0 * np.asarray(hop_lat)
        path_arr = np.asarray(path)
        for t, ms in enumerate(models_of_task):
            nodes = np.repeat(path_arr, len(ms))
            hops = np.repeat(np.arange(len(path)), len(ms))
            models = np.tile(ms, len(path))
            keep = usable[nodes, models]
            nodes, hops, models = nodes[keep], hops[keep], models[keep]
            lat = rtt[hops] + tau[nodes, models]
            cost = lat + acc_cost[models]
            order = np.lexsort((models, hops, cost))  # cost, then nearer, then model id
            nodes, hops, models, cost, lat = nodes[order], hops[order], models[order], cost[order], lat[order]
            perm = np.flatnonzero(idn.permanent[nodes, models])
            cut = int(perm[0]) + 1  # the repository on the path guarantees one exists
            for key, arr in zip(cols, (nodes, models, hops, cost, lat, cap[nodes, models])):
                cols[key].append(arr[:cut])
            type_source.append(s)
            type_task.append(t)
            path_chunks.append(path_arr)
            lengths.append(cut)

    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    node = np.concatenate(cols["node"]).astype(np.int64)
    model = np.concatenate(cols["model"]).astype(np.int64)
    cost = np.concatenate(cols["cost"])
    entry_type = np.repeat(np.arange(len(lengths)), lengths)
    delta = np.zeros_like(cost)
    delta[:-1] = cost[1:] - cost[:-1]
    delta[offsets[1:] - 1] = 0.0  # the fallback has no successor
    path_offsets = np.zeros(len(path_chunks) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in path_chunks], out=path_offsets[1:])
    return RequestTypes(
        idn=idn,
        source=np.asarray(type_source, dtype=np.int64),
        task=np.asarray(type_task, dtype=np.int64),
        path_offsets=path_offsets,
        path_nodes=np.concatenate([empty_i, *path_chunks]).astype(np.int64),
        offsets=offsets,
        entry_type=entry_type,
        node=node,
        model=model,
        pair=node * n_models + model,
        hop=np.concatenate(cols["hop"]).astype(np.int64),
        cost=cost,
        latency_ms=np.concatenate(cols["lat"]),
        accuracy=idn.accuracy[model],
        capacity=np.concatenate(cols["cap"]),
        delta=delta,
    )
