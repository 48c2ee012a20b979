"""The IDN itself once validated: nodes, links, tasks and models, as plain
objects plus the dense per-(node, model) arrays every other module reads.

Everything downstream (request types, serving, policies, the runtime) indexes
nodes and models by their position in ``IDN.nodes`` / ``IDN.models``; ids are
only for files and people.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import networkx as nx
import numpy as np

TIERS = ("access", "edge", "regional", "cloud")
HARDWARE = ("cpu", "gpu")


@dataclass(frozen=True)
class Node:
    id: str
    tier: str
    hardware: str = "cpu"
    speed: float = 1.0
    workers: int = 1
    budget_mb: float = 0.0
    repository: bool = False


@dataclass(frozen=True)
class Model:
    id: str
    task: str
    accuracy: float
    size_mb: float
    service_ms: dict[str, float]  # per hardware class, at speed 1


@dataclass
class IDN:
    name: str
    nodes: list[Node]
    graph: nx.Graph  # node ids; edge attribute "latency_ms" (one way)
    tasks: list[str]
    models: list[Model]
    alpha: float = 1.0  # ms per accuracy percentage point
    slot_seconds: float = 1.0
    sources: list[str] = field(default_factory=list)  # where requests enter by default
    workload: dict | None = None  # default workload spec (see idn.workloads)

    def with_changes(
        self, alpha: float | None = None, budget_scale: float = 1.0, slot_seconds: float | None = None
    ) -> IDN:
        """A copy with another alpha, slot length, or every budget scaled
        (the knobs experiment sweeps turn); derived arrays are rebuilt."""
        if budget_scale < 0:
            raise ValueError(f"budget_scale must be >= 0, got {budget_scale}")
        nodes = [replace(n, budget_mb=n.budget_mb * budget_scale) for n in self.nodes]
        return IDN(
            name=self.name, nodes=nodes, graph=self.graph, tasks=list(self.tasks), models=list(self.models),
            alpha=self.alpha if alpha is None else float(alpha),
            slot_seconds=self.slot_seconds if slot_seconds is None else float(slot_seconds),
            sources=list(self.sources), workload=self.workload,
        )  # fmt: skip

    # ---- indexes -------------------------------------------------------
    @cached_property
    def node_index(self) -> dict[str, int]:
        return {n.id: i for i, n in enumerate(self.nodes)}

    @cached_property
    def model_index(self) -> dict[str, int]:
        return {m.id: i for i, m in enumerate(self.models)}

    @cached_property
    def task_index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tasks)}

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_models(self) -> int:
        return len(self.models)

    # ---- dense arrays --------------------------------------------------
    @cached_property
    def model_task(self) -> np.ndarray:
        return np.array([self.task_index[m.task] for m in self.models], dtype=np.int64)

    @cached_property
    def size_mb(self) -> np.ndarray:
        return np.array([m.size_mb for m in self.models], dtype=float)

    @cached_property
    def accuracy(self) -> np.ndarray:
        return np.array([m.accuracy for m in self.models], dtype=float)

    @cached_property
    def budget_mb(self) -> np.ndarray:
        return np.array([0.0 if n.repository else n.budget_mb for n in self.nodes], dtype=float)

    @cached_property
    def repository(self) -> np.ndarray:
        return np.array([n.repository for n in self.nodes], dtype=bool)

    @cached_property
    def node_tier(self) -> np.ndarray:
        return np.array([TIERS.index(n.tier) for n in self.nodes], dtype=np.int64)

    @cached_property
    def service_time_ms(self) -> np.ndarray:
        """tau_v^m = service_ms[hardware_v] / speed_v, shape (V, M)."""
        out = np.empty((self.n_nodes, self.n_models))
        for v, node in enumerate(self.nodes):
            for m, model in enumerate(self.models):
                out[v, m] = model.service_ms[node.hardware] / node.speed
        return out

    @cached_property
    def capacity(self) -> np.ndarray:
        """L_v^m requests per slot, shape (V, M); inf where v is a repository
        (the cloud scales out: design page, section 1)."""
        workers = np.array([n.workers for n in self.nodes], dtype=float)[:, None]
        cap = workers * self.slot_seconds * 1000.0 / self.service_time_ms
        cap[self.repository, :] = np.inf
        return cap

    @cached_property
    def permanent(self) -> np.ndarray:
        """omega_v^m, shape (V, M) bool: repositories host every model."""
        return np.repeat(self.repository[:, None], self.n_models, axis=1)

    @cached_property
    def fits(self) -> np.ndarray:
        """(V, M) bool: non-permanent pairs whose model fits the node's budget at all."""
        return (~self.permanent) & (self.size_mb[None, :] <= self.budget_mb[:, None] + 1e-9)

    def allocation_from_ids(self, mapping: dict[str, list[str]]) -> np.ndarray:
        """Dense 0/1 allocation (V, M) from {node id: [model id, ...]}; repositories are 1.

        Raises ValueError naming the unknown id or the node over budget."""
        x = self.permanent.astype(float)
        for node_id, model_ids in mapping.items():
            if node_id not in self.node_index:
                raise ValueError(f"allocation: unknown node {node_id!r}")
            v = self.node_index[node_id]
            for mid in model_ids:
                if mid not in self.model_index:
                    raise ValueError(f"allocation: node {node_id!r}: unknown model {mid!r}")
                x[v, self.model_index[mid]] = 1.0
            if not self.nodes[v].repository:
                used = float(self.size_mb @ x[v])
                if used > self.budget_mb[v] + 1e-9:
                    raise ValueError(
                        f"allocation: node {node_id!r} holds {used:g} MB of models, "
                        f"over its budget of {self.budget_mb[v]:g} MB"
                    )
        return x

    def allocation_to_ids(self, x: np.ndarray) -> dict[str, list[str]]:
        """{node id: [model id, ...]} of the non-permanent pairs set in x."""
        out: dict[str, list[str]] = {}
        for v, node in enumerate(self.nodes):
            if node.repository:
                continue
            out[node.id] = [self.models[m].id for m in np.flatnonzero(x[v] > 0.5)]
        return out
