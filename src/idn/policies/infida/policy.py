"""INFIDA (design page, section 8) and INFIDA-offline.

Each node v keeps y_v on Y_v = {y in [0,1]^M : s.y = b_v}, over the models
that fit its budget at all. Every slot: the supergradient of the concave
relaxation at y (computed by :mod:`idn.serving`; the control messages that a
real deployment exchanges for it are counted, see :mod:`.messages`), a
mirror-ascent step under the weighted negative entropy, the exact Bregman
projection, and a randomized rounding to the allocation of the next slot.

Learning rate. The linearized regret sum_t g_t.(y* - y_t) splits exactly into
one term per node, so each node runs its own mirror ascent and its own step
size. Phi_v(y) = sum s y log y is (1/b_v)-strongly convex on Y_v in the norm
||z|| = sum_m s_m |z_m| (Pinsker), whose dual is max_m |g_m| / s_m, and Y_v's
Bregman diameter is D_v^2 = b_v log(S_v / b_v) (S_v: total size of the
models that fit). The mirror-ascent bound D^2/eta + eta/(2 sigma) sum ||g||^2
is minimized by eta_v = sqrt(2 log(S_v / b_v) / sum_{tau<=t} ||g_v,tau||^2):
the adaptive form (no horizon or gradient bound to guess, and the same
O(sqrt T) regret). ``eta_scale`` (default 5) multiplies it: the worst-case
dual norm makes the bound-minimizing rate slow on real traces, and a factor
c keeps the bound within (c + 1/c) / 2 of its minimum (docs/model.md,
section 12.1). ``eta`` sets a constant rate instead, also scaled. That is
``learning: static``; the default, ``learning: tracking`` (:mod:`.tracking`,
docs/model.md section 12.5), runs it as one expert among constant-rate ones
per node, with a fixed share, optimistic hints and Hedge over the experts,
so that INFIDA follows shifting demand with a dynamic-regret guarantee.

Rounding. ``grouping: task`` (default) draws each node's models of one task
together (:mod:`.grouped`: systematic sampling per task, then what exceeds
the budget dropped by least y); ``grouping: none`` is the pooled dependent
rounding of :mod:`.rounding` (exact marginals, size-ordered pairs across
tasks), which lost 2.6-3.6% of the state's relaxed gain on the 1111-node
tree, against under 1% grouped (docs/model.md, section 12.2). ``rounding``
(fresh / coupled) says whether the uniforms are new every slot or kept;
``coordination: path`` (default) places each group's uniform on its paths,
so the nodes of a path hold a task's models in disjoint windows of one
shared uniform (:mod:`.coordination`; ``none``: independent uniforms).
After the rounding, the budget it leaves is filled (``fill``: ``marginal``,
by what each model would add beside the node's draw; ``state``, by y, the
rule before it, which ``true`` also names; ``false``), and with the coupled
rounding only nodes whose state moved redraw (``reround``): see :mod:`.fill`.
"""

from __future__ import annotations

import numpy as np

from ... import serving
from ...problem.mirror import NodeStates, dual_norms, mirror_logits
from ...problem.projection import project_nodes_unchecked
from ..base import Policy
from ..registry import register
from ..params import integer, number, one_of, optional, rising_list
from .coordination import PathLayout, group_offsets
from .fill import fill_leftover, has_room, hold_sure, marginal_terms, stale_nodes
from .grouped import GroupedRounding, slice_groups
from .messages import message_bytes
from .rounding import make_rounding, slice_draw_layout
from .tracking import HINTS, Tracker


@register
class Infida(Policy):
    """INFIDA: online mirror ascent on the concave relaxation, then rounding."""

    name = "infida"
    knows = "online"
    summary = "each node learns its allocation by mirror ascent from its paths' control messages"
    # eta_scale 5, fill, reround 2 and the tracking rule's parameters: chosen on benchmarks/tuning/
    # (docs/model.md, section 12); learning: static is the rule before it (one rate, shrinking like 1/sqrt t)
    defaults = {
        "eta": None, "eta_scale": 5.0, "rounding": "fresh", "fill": "marginal", "reround": 2.0, "grouping": "task",
        "learning": "tracking", "horizons": [4, 16, 64], "static_expert": True, "share": 1e-3, "meta_scale": 3.0,
        "hint": "recent", "hint_window": 10, "hint_period": None, "coordination": "path",
    }  # fmt: skip
    checks = {
        "eta": optional(number(gt=0, le=1e6)), "eta_scale": number(gt=0, le=1e6), "rounding": one_of("fresh", "coupled"),
        "fill": one_of("marginal", "state", True, False), "reround": optional(number(ge=0, le=1e6)),
        "grouping": one_of("none", "task"),
        "learning": one_of("tracking", "static"), "horizons": rising_list(number(ge=1, le=1e9), 16),
        "static_expert": one_of(True, False), "share": number(ge=0, le=0.5), "meta_scale": number(gt=0, le=1e6),
        "hint": one_of(*HINTS), "hint_window": integer(ge=1, le=10**6), "hint_period": optional(integer(ge=2, le=10**6)),
        "coordination": one_of("path", "none"),
    }  # fmt: skip
    state_attrs = (
        "y", "grad_sq", "x", "rounding._coins", "rounding._task_coins", "rounding._order", "rounding._slot", "_x_flat",
        "_anchor", "_slots", "_g_per_mb", "tracker.lazy", "tracker.points", "tracker.gains", "tracker.hint_gains", "tracker.spread_sq",
        "tracker.grad_sq", "tracker.gain_scale", "tracker.slots", "tracker.ring",
    )  # fmt: skip

    tracks = True  # has the learning rule's parameters (INFIDA-offline, on a fixed objective, has not)

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params
        if not self.tracks:
            return
        if p["learning"] == "tracking" and p["eta"] is not None:
            raise ValueError(f"policy {self.name!r}: parameter eta fixes one rate, which learning: tracking does not "
                             "use (set learning: static, or leave eta out)")  # fmt: skip
        if p["hint"] == "periodic" and (p["hint_period"] is None or p["hint_window"] > p["hint_period"]):
            raise ValueError(f"policy {self.name!r}: hint: periodic needs hint_period, at least hint_window "
                             f"({p['hint_window']}), got {p['hint_period']!r}")  # fmt: skip

    def _start(self, trace):
        self._setup(self.rt.idn)
        self._entry_index = self.nodes.entry_index(self.rt)
        self._entry_node = np.full(self.rt.n_entries, -1, dtype=np.int64)  # -1 at the fallbacks
        hosted = ~self.rt.is_fallback
        self._entry_node[hosted] = self.nodes.node[self._entry_index[hosted]]
        self._path_length = np.diff(self.rt.path_offsets)
        self._path_layout = PathLayout(self.rt, self._entry_index, self._group_of) if self.coordinates else None
        self._messages = 2 * np.maximum(self._path_length - 1, 0)  # per request type with requests
        self.x = self._round(first=True)

    def start_nodes(self, idn, nodes, seed: int = 0) -> Infida:
        """Bind to the state of ``nodes`` only, with no request types: the
        live runtime's form, where each node learns its own slice from the
        supergradient terms its control messages give it
        (:meth:`learn_supergradient`). With the same seed, a node's slice
        follows the simulator's whole-network run exactly: the same steps,
        and the same uniforms in its rounding."""
        self.rt = None
        self.rng = np.random.default_rng(seed)
        self.control_messages = self.control_bytes = 0
        self._setup(idn, nodes)
        self.x = self._round(first=True)
        return self

    def _setup(self, idn, nodes=None):
        self.nodes = NodeStates(idn, nodes)
        self.y = self.nodes.uniform()
        self.grad_sq = np.zeros(idn.n_nodes)  # sum over slots of ||g_v||_*^2
        if self.params["grouping"] == "task":
            task_of = np.asarray(idn.model_task)[self.nodes.flat_index % idn.n_models]
            draw = None if nodes is None else slice_groups(idn.fits, idn.model_task, nodes)
            self.rounding = GroupedRounding(self.nodes.sizes, self.nodes.budgets, self.nodes.offsets, self.nodes.node,
                                            task_of, coupled=self.params["rounding"] == "coupled", draw_groups=draw,
                                            n_tasks=int(np.max(idn.model_task, initial=-1)) + 1)  # fmt: skip
            # (V, T) -> group index of (node, task) in this layout, -1 where none (coordination.py)
            self._group_of = np.full((idn.n_nodes, self.rounding.n_tasks), -1, dtype=np.int64)
            self._group_of[self.nodes.node[self.rounding.starts], self.rounding.group_task] = np.arange(self.rounding.n_groups)
        else:
            # a live slice draws its uniforms where the whole network's rounding would, slot for slot
            draw_layout = None if nodes is None else slice_draw_layout(self.nodes.full_offsets, self.nodes.offsets)
            self.rounding = make_rounding(self.params["rounding"], self.nodes.sizes, self.nodes.budgets,
                                          self.nodes.offsets, draw_layout=draw_layout)  # fmt: skip
        self._slots = 0
        self._g_per_mb = np.zeros(self.y.size)
        self._x_flat = np.zeros(self.y.size, dtype=bool)
        self._anchor = self.y.copy()  # the state each node's allocation was drawn from (lazy redraws)
        p = self.params
        self.tracker = None
        if self.tracks and p["learning"] == "tracking":
            self.tracker = Tracker(self.nodes, p["horizons"], p["static_expert"], p["eta_scale"], p["share"],
                                   p["meta_scale"], p["hint"], p["hint_window"], p["hint_period"])  # fmt: skip

    def state(self) -> np.ndarray:
        """The fractional state y as a (V, M) array (permanent pairs at 1)."""
        return self.nodes.dense(self.y)

    def propose(self) -> np.ndarray:
        return self.x

    def learn(self, counts: np.ndarray, share: np.ndarray) -> None:
        counts = np.ascontiguousarray(counts, dtype=float)
        g = self._supergradient(counts, share)
        rt, y_t = self.rt, self.y.copy()  # the state this slot's messages carried
        active = counts > 0
        offsets = group_offsets(self._path_layout, y_t, active) if self.coordinates else None
        self.learn_supergradient(g, lambda x, room: marginal_terms(
            rt.offsets, self._entry_index, rt.cost, share, counts, y_t, x, self._entry_node, rt.path_offsets,
            rt.path_nodes, room), offsets)
        self.control_messages = int(self._messages[active].sum())
        self.control_bytes = message_bytes(self.rt.list_length, self._path_length, active, self.fill_from_lists)

    def learn_supergradient(self, g: np.ndarray, fill_terms=None, group_offsets=None) -> None:
        """The step after the supergradient: mirror ascent, projection,
        rounding, fill, lazy redraws. g is in the flat free layout
        (``free_index``); per node, nothing here reads another node's
        coordinates. ``fill_terms(x, room)``, for ``fill: marginal``, gives
        the terms of the nodes marked in room at their draw x (:mod:`.fill`);
        without it the fill goes by the state. ``group_offsets``, for
        ``coordination: path``, place each group's uniform on its paths (:mod:`.coordination`)."""
        self._g_per_mb = g / self.nodes.sizes
        self.y = self.step(self.y, g) if self.tracker is None else self.tracker.step(g)
        self._slots += 1
        self.x = self._round(fill_terms=fill_terms, group_offsets=group_offsets)

    @property
    def coordinates(self) -> bool:
        """Path-coordinated draws (:mod:`.coordination`): grouped rounding only."""
        return self.tracks and self.params["coordination"] == "path" and self.params["grouping"] == "task"

    def node_groups(self, v: int) -> dict[int, int]:
        """{task: group index} of node v's (node, task) groups (grouped rounding)."""
        row = self._group_of[v]
        return {int(k): int(row[k]) for k in np.flatnonzero(row >= 0)}

    @property
    def fill_from_lists(self) -> bool:
        """Live, the downward messages carry the lists (runtime/control.py)."""
        return self.params["fill"] == "marginal" or self.coordinates

    def free_index(self, v: int) -> dict[int, int]:
        """{model: position in the flat free layout} for node v's free coordinates."""
        n = self.nodes
        a, e = n.offsets[v], n.offsets[v + 1]
        return {int(k % n.mask.shape[1]): i for i, k in zip(range(a, e), n.flat_index[a:e])}

    def _supergradient(self, counts: np.ndarray, share: np.ndarray, into: np.ndarray | None = None) -> np.ndarray:
        """g at the current y in the flat free layout (serving's kernel, read
        and written through the entry -> free-coordinate index: no (V, M) arrays)."""
        share = np.ascontiguousarray(share, dtype=float)
        if share.shape != (self.rt.n_entries,) or counts.shape != (self.rt.n_types,):
            raise ValueError(
                f"learn: counts {counts.shape} and shares {share.shape} do not match "
                f"{self.rt.n_types} request types and {self.rt.n_entries} candidate entries"
            )
        g = np.zeros(self.y.size) if into is None else into
        serving.gain_and_supergradient_compact(self.rt, counts, self.y, self._entry_index, share, g)
        return g

    def step(self, y: np.ndarray, g: np.ndarray) -> np.ndarray:
        """One mirror-ascent step and projection for every node (flat layout)."""
        n = self.nodes
        eta = self.learning_rate(g)
        z = np.empty(y.size)
        bad = mirror_logits(np.ascontiguousarray(y, dtype=float), np.ascontiguousarray(g, dtype=float), n.sizes,
                             n.offsets, eta, z)  # fmt: skip
        if bad >= 0:
            raise ValueError(f"INFIDA step: log y_hat is {z[bad]} at node {int(n.node[bad])} (supergradient {g[bad]})")
        return project_nodes_unchecked(z, n.sizes, n.offsets, n.budgets, np.empty(y.size), log_input=True)

    def learning_rate(self, g: np.ndarray) -> np.ndarray:
        """eta_v per node (module docstring)."""
        n = self.nodes
        scale = float(self.params["eta_scale"])
        if self.params["eta"] is not None:
            return np.full(len(n.budgets), scale * float(self.params["eta"]))
        dual = dual_norms(np.ascontiguousarray(g, dtype=float), n.sizes, n.offsets)
        self.grad_sq += dual**2
        with np.errstate(divide="ignore", invalid="ignore"):
            eta = np.sqrt(2.0 * n.log_ratio / self.grad_sq)
        return scale * np.where(self.grad_sq > 0, eta, 0.0)

    def _round(self, first: bool = False, fill_terms=None, group_offsets=None) -> np.ndarray:
        """x for the next slot: a rounding of y, its leftover budget filled,
        and with the coupled rounding only the nodes whose state moved
        redraw (lazy redraws, :mod:`.fill`)."""
        n = self.nodes
        x = self.rounding.round(self.y, self.rng) if group_offsets is None else self.rounding.round(self.y, self.rng, group_offsets)
        fill = self.params["fill"]
        if fill == "marginal" and fill_terms is not None:
            room = has_room(x, n.sizes, n.offsets, n.budgets)
            if room.any():
                key = fill_terms(x, room) / n.sizes
                x = fill_leftover(x, key, self.y, n.sizes, n.offsets, n.budgets, inplace=True)  # x is a fresh draw
        elif fill:  # by the state (also the first draw, before any slot's messages)
            x = fill_leftover(x, self.y, self._g_per_mb, n.sizes, n.offsets, n.budgets, inplace=True)
        reround = self.params["reround"]
        if self.params["rounding"] == "coupled" and reround is not None and not first:
            stale = stale_nodes(self.y, self._anchor, n.sizes, n.node, n.budgets, reround / np.sqrt(self._slots))
            keep = ~stale[n.node]
            x = np.where(keep, self._x_flat, x)
            self._anchor = np.where(keep, self._anchor, self.y)
            hold_sure(x, self.y, n.sizes, n.offsets, n.budgets)
        self._x_flat = np.asarray(x, dtype=bool)
        return n.dense(self._x_flat)


@register
class InfidaOffline(Infida):
    """INFIDA-offline (section 8, last paragraph): mirror ascent on the whole
    trace's objective (1/T) sum_t G_t(y), on a random batch of slots per
    iteration (stochastic mirror ascent), averaging the iterates; then a
    rounding, kept for every slot: a static allocation with the (1 - 1/e)
    guarantee in expectation. ``samples`` roundings are drawn and the best on
    (a sample of up to 64 slots of) the trace is kept: the best of several
    draws is never worse than their mean, so the guarantee stands, and it
    trims the luck of a single draw."""

    name = "infida-offline"
    knows = "offline"
    summary = "INFIDA's steps on the whole trace until they settle, rounded once"
    offline = True
    tracks = False  # a fixed objective: nothing to track, one rate (its step is Infida.step)
    defaults = {
        "iterations": 300, "batch": 16, "samples": 8, "eta": None, "eta_scale": 1.0, "rounding": "fresh", "fill": True,
        "reround": None, "grouping": "none",  # its single draw keeps the exact marginals its guarantee uses
    }  # fmt: skip
    checks = {"iterations": integer(ge=1, le=10**7), "batch": integer(ge=1, le=10**6), "samples": integer(ge=1, le=10**5)}

    def _start(self, trace):
        super()._start(None)
        T = trace.shape[0]
        shares = {}
        y_sum = np.zeros_like(self.y)
        iterations = int(self.params["iterations"])
        trace = np.ascontiguousarray(trace, dtype=float)
        for it in range(iterations):
            batch = self.rng.choice(T, size=min(int(self.params["batch"]), T), replace=False)
            g = np.zeros(self.y.size)
            for t in batch:
                if t not in shares:
                    shares[t] = serving.capacity_share(self.rt, trace[t])
                self._supergradient(trace[t], shares[t], into=g)
            self.y = self.step(self.y, g / len(batch))
            if it >= iterations // 2:  # average the second half of the iterates
                y_sum += self.y
        self.y = y_sum / max(1, iterations - iterations // 2)
        probe = np.sort(self.rng.choice(T, size=min(64, T), replace=False))
        for t in probe:
            if t not in shares:
                shares[t] = serving.capacity_share(self.rt, trace[t])
        best = -np.inf
        for _ in range(max(1, int(self.params["samples"]))):
            x = self._round()
            value = sum(serving.gain(self.rt, trace[t], x, shares[t]) for t in probe)
            if value > best:
                best, self.x = value, x

    def learn(self, counts, share) -> None:
        pass
