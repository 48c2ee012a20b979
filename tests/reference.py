"""Deliberately plain reference implementations, straight from the design
page's formulas, one request type and one candidate at a time. The fast code
must agree with these; nothing here is meant to be quick."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np

from idn.model.network import IDN, Model, Node


def candidate_lists(idn: IDN, sources: list[str]):
    """[(source, task, [(node, model, cost, capacity, permanent), ...])] built
    by brute force: every path node and every model of the task, sorted, cut."""
    out = []
    repos = [n.id for n in idn.nodes if n.repository]
    order = {n.id: i for i, n in enumerate(idn.nodes)}
    for s in sorted(sources, key=order.get):
        best = None
        for r in repos:
            for p in nx.all_simple_paths(idn.graph, s, r) if s != r else [[s]]:
                lat = sum(idn.graph[a][b]["latency_ms"] for a, b in zip(p[:-1], p[1:]))
                # nearest repository; ties: lower repository index, then the
                # lexicographically smallest path by node order
                key = (round(lat, 9), order[r], [order[u] for u in p])
                if best is None or key < best[0]:
                    best = (key, p)
        path = best[1]
        for t in idn.tasks:
            cands = []
            rtt = 0.0
            for k, v in enumerate(path):
                if k > 0:
                    rtt += 2 * idn.graph[path[k - 1]][v]["latency_ms"]
                node = idn.nodes[order[v]]
                for mi, m in enumerate(idn.models):
                    if m.task != t:
                        continue
                    if not node.repository and m.size_mb > node.budget_mb + 1e-9:
                        continue
                    tau = m.service_ms[node.hardware] / node.speed
                    cost = rtt + tau + idn.alpha * 100 * (1 - m.accuracy)
                    cap = math.inf if node.repository else node.workers * idn.slot_seconds * 1000 / tau
                    cands.append((cost, k, mi, order[v], cap, node.repository))
            cands.sort(key=lambda c: (c[0], c[1], c[2]))
            cut = next(i for i, c in enumerate(cands) if c[5]) + 1
            out.append((s, t, [(c[3], c[2], c[0], c[4], c[5]) for c in cands[:cut]]))
    return out


def shares(lists, counts):
    """l per entry, section 5: L split in proportion to demand, at most r."""
    demand = {}
    for (_, _, cands), r in zip(lists, counts):
        for v, m, _, _, perm in cands:
            if not perm:
                demand[(v, m)] = demand.get((v, m), 0.0) + r
    out = []
    for (_, _, cands), r in zip(lists, counts):
        row = []
        for v, m, _, cap, perm in cands:
            if perm:
                row.append(math.inf)
            else:
                d = demand[(v, m)]
                row.append(min(r, cap * r / d) if d > 0 else 0.0)
        out.append(row)
    return out


def serve(lists, counts, share, y):
    """(served per entry, cost, gain in the cost form, gain in the telescoped form)."""
    served, cost, gain_cost, gain_tele = [], 0.0, 0.0, 0.0
    for (_, _, cands), r, ls in zip(lists, counts, share):
        left = r
        row = []
        for k, (v, m, c, _, perm) in enumerate(cands):
            if k == len(cands) - 1:
                z = left
            else:
                z = min(ls[k] * y[v][m], left)
            left -= z
            row.append(z)
            cost += c * z
        served.append(row)
        ck = cands[-1][2]
        gain_cost += ck * r - sum(z * cd[2] for z, cd in zip(row, cands))
        for k in range(len(cands) - 1):
            cum = sum(ls[j] * y[cands[j][0]][cands[j][1]] for j in range(k + 1))
            gain_tele += (cands[k + 1][2] - cands[k][2]) * min(r, cum)
    return served, cost, gain_cost, gain_tele


def supergradient(lists, counts, share, y, n_nodes, n_models):
    g = [[0.0] * n_models for _ in range(n_nodes)]
    for (_, _, cands), r, ls in zip(lists, counts, share):
        K = len(cands)
        for k in range(K - 1):
            v, m = cands[k][0], cands[k][1]
            total = 0.0
            for k2 in range(k, K - 1):
                cum = sum(ls[j] * y[cands[j][0]][cands[j][1]] for j in range(k2 + 1))
                if cum < r:
                    total += cands[k2 + 1][2] - cands[k2][2]
            g[v][m] += ls[k] * total
    return g


def random_idn(rng: np.random.Generator, n_nodes: int = 6, n_tasks: int = 2, models_per_task: int = 3, alpha=None) -> IDN:
    """A random connected IDN with one or two repositories, for property tests."""
    tiers = ["access", "edge", "regional"]
    n_repo = min(1 + int(rng.random() < 0.3), n_nodes - 1)
    nodes = []
    for i in range(n_nodes):
        repo = i >= n_nodes - n_repo
        nodes.append(
            Node(
                id=f"n{i}",
                tier="cloud" if repo else tiers[int(rng.integers(0, 3))],
                hardware=["cpu", "gpu"][int(rng.integers(0, 2))],
                speed=float(rng.uniform(0.2, 2.0)),
                workers=int(rng.integers(1, 4)),
                budget_mb=float(rng.uniform(0, 200)),
                repository=repo,
            )
        )
    g = nx.Graph()
    g.add_nodes_from(n.id for n in nodes)
    for i in range(1, n_nodes):
        j = int(rng.integers(0, i))
        g.add_edge(f"n{i}", f"n{j}", latency_ms=float(rng.choice([1.0, 2.0, 5.0, rng.uniform(0.5, 20)])))
    for _ in range(n_nodes // 2):
        a, b = rng.choice(n_nodes, 2, replace=False)
        g.add_edge(f"n{a}", f"n{b}", latency_ms=float(rng.uniform(0.5, 20)))
    tasks = [f"t{i}" for i in range(n_tasks)]
    models = []
    for t in tasks:
        for j in range(models_per_task):
            models.append(
                Model(
                    id=f"{t}/m{j}",
                    task=t,
                    accuracy=float(rng.uniform(0.5, 0.95)),
                    size_mb=float(rng.choice([10.0, 20.0, rng.uniform(5, 150)])),
                    service_ms={"cpu": float(rng.uniform(5, 100)), "gpu": float(rng.uniform(1, 20))},
                )
            )
    return IDN(
        name="random",
        nodes=nodes,
        graph=g,
        tasks=tasks,
        models=models,
        alpha=float(rng.uniform(0.1, 5)) if alpha is None else alpha,
        slot_seconds=float(rng.choice([0.05, 0.1, 1.0])),
        sources=[n.id for n in nodes if not n.repository],
    )


# ---- INFIDA, one slot, deliberately plain (design page, section 8) ----------
def project_plain(y_hat, sizes, budget, min_y=1e-12):
    """Bregman projection onto {y in [0,1]^n : s.y = b} by sorting y_hat:
    min(1, c y_hat) with the k largest capped, k the first count for which the
    next one stays below 1. Zeros, the everything-fits case and the floor as
    in idn.problem.projection."""
    n = len(y_hat)
    total = sum(sizes)
    if budget >= total:
        return [1.0] * n
    pos = [i for i in range(n) if y_hat[i] > 0]
    s_pos = sum(sizes[i] for i in pos)
    if budget <= 0:
        y = [0.0] * n
    elif s_pos <= budget:  # positives at 1, the zeros share the rest
        rest = (budget - s_pos) / (total - s_pos)
        y = [1.0 if y_hat[i] > 0 else rest for i in range(n)]
    else:
        order = sorted(pos, key=lambda i: -y_hat[i])
        mass_from = [0.0] * (len(order) + 1)  # mass of order[k:], summed from the small end
        for k in range(len(order) - 1, -1, -1):
            mass_from[k] = mass_from[k + 1] + sizes[order[k]] * y_hat[order[k]]
        capped = 0.0
        for k, i in enumerate(order):
            c = (budget - capped) / mass_from[k]
            if c * y_hat[i] < 1.0:
                break
            capped += sizes[i]
        y = [min(1.0, c * y_hat[i]) for i in range(n)]
    u = min(1.0, budget / total)
    floor = min(min_y, 0.5 * u)
    lam = max([(floor - v) / (u - v) for v in y if v < floor], default=0.0)
    return [(1.0 - lam) * v + lam * u for v in y]


def round_pairwise(y, sizes, budget, rng):
    """The design page's pairwise rounding, plainly: while two coordinates are
    fractional, move mass between the first two (s_i dy_i = -s_j dy_j) until
    one is 0 or 1, each way with the probability that keeps E[y]; the last
    fractional one goes up with probability y if it fits, else down."""
    y = [0.0 if v < 1e-12 else 1.0 if v > 1 - 1e-12 else v for v in y]
    frac = [i for i in range(len(y)) if 0.0 < y[i] < 1.0]
    while len(frac) >= 2:
        i, j = frac[0], frac[1]
        into_i = min(sizes[i] * (1 - y[i]), sizes[j] * y[j])
        out_of_i = min(sizes[i] * y[i], sizes[j] * (1 - y[j]))
        if rng.random() * (into_i + out_of_i) < out_of_i:
            y[i] += into_i / sizes[i]
            y[j] -= into_i / sizes[j]
        else:
            y[i] -= out_of_i / sizes[i]
            y[j] += out_of_i / sizes[j]
        for k in (i, j):
            y[k] = 0.0 if y[k] < 1e-12 else 1.0 if y[k] > 1 - 1e-12 else y[k]
        frac = [k for k in frac if 0.0 < y[k] < 1.0]
    x = [1 if v == 1.0 else 0 for v in y]
    used = sum(s for s, xi in zip(sizes, x) if xi)
    if frac and rng.random() < y[frac[0]] and used + sizes[frac[0]] <= budget * (1 + 1e-9):
        x[frac[0]] = 1
    return x


def infida_update(lists, counts, share, y, sizes, budgets, free, eta, rng):
    """One INFIDA slot: supergradient, mirror step y_hat = y exp(eta g / s) (in
    logs, shifted per node), projection, rounding. y: [v][m] (permanent pairs
    at 1); free[v]: the models node v may host; eta[v]. Returns (y, x) as
    [v][m] lists."""
    n_nodes, n_models = len(y), len(y[0])
    g = supergradient(lists, counts, share, y, n_nodes, n_models)
    y_next = [row[:] for row in y]
    free_sets = [set(models) for models in free]
    x = [[1.0 if yv == 1.0 and m not in free_sets[v] else 0.0 for m, yv in enumerate(row)] for v, row in enumerate(y)]
    for v, models in enumerate(free):
        if not models:
            continue
        s = [sizes[m] for m in models]
        z = [math.log(max(y[v][m], 1e-300)) + eta[v] * g[v][m] / sizes[m] for m in models]
        top = max(z)
        b = min(budgets[v], sum(s))
        new = project_plain([math.exp(a - top) for a in z], s, b)
        for m, val in zip(models, new):
            y_next[v][m] = val
        for m, xi in zip(models, round_pairwise(new, s, b, rng)):
            x[v][m] = float(xi)
    return y_next, x


def tighten_budgets(idn: IDN, rng: np.random.Generator, low: float = 0.15, high: float = 0.6) -> IDN:
    """The same IDN with every non-repository budget drawn as a fraction in
    [low, high) of all the models' sizes, so that budgets bind."""
    from dataclasses import replace

    total = float(idn.size_mb.sum())
    nodes = [n if n.repository else replace(n, budget_mb=float(rng.uniform(low, high)) * total) for n in idn.nodes]
    return replace(idn, nodes=nodes)


# ---- INFIDA's tracking rule, one node, deliberately plain (docs/model.md, section 12.5) ----
class TrackingNode:
    """One node's experts, hint and Hedge weights, in lists and loops: the
    rule as docs/model.md writes it, to check policies/infida/tracking.py."""

    def __init__(self, sizes, budget, horizons, static_expert, eta_scale, share, meta_scale, hint, window, period):
        self.s, self.b = list(sizes), float(budget)
        total = sum(self.s)
        self.b = min(self.b, total)
        self.log_ratio = math.log(total / self.b) if self.b > 0 else 0.0
        self.u = [min(1.0, self.b / total) if total > 0 else 0.0] * len(self.s)
        self.horizons, self.static_expert = list(horizons), static_expert
        self.c, self.share, self.meta_scale = eta_scale, share, meta_scale
        self.hint, self.window, self.period = hint, window, period
        n_experts = len(self.horizons) + (1 if static_expert else 0)
        self.lazy = [list(self.u) for _ in range(n_experts)]
        self.points = [list(self.u) for _ in range(n_experts)]
        self.total_gain = [0.0] * n_experts
        self.hint_gain = [0.0] * n_experts
        self.spread_sq = self.grad_sq = self.scale = 0.0
        self.past = []  # every supergradient so far

    def _move(self, z, eta, d):
        y_hat = [z[m] * math.exp(eta * d[m] / self.s[m]) for m in range(len(z))]
        y = project_plain(y_hat, self.s, self.b)
        return [(1 - self.share) * y[m] + self.share * self.u[m] for m in range(len(z))]

    def _weights(self):
        n = len(self.lazy)
        spread_sq = max(self.spread_sq, (1e-6 * self.b * self.scale) ** 2)  # rounding noise gets no rate
        beta = self.meta_scale * math.sqrt(8 * math.log(max(n, 2)) / spread_sq) if spread_sq > 0 else 0.0
        score = [self.total_gain[k] + self.hint_gain[k] for k in range(n)]
        top = max(score)
        w = [math.exp(beta * (v - top)) for v in score]
        return [v / sum(w) for v in w]

    def played(self):
        w = self._weights()
        return [sum(w[k] * self.points[k][m] for k in range(len(w))) for m in range(len(self.s))]

    def step(self, g):
        n_experts, M = len(self.lazy), len(self.s)
        gains = [sum(self.points[k][m] * g[m] for m in range(M)) for k in range(n_experts)]
        spread = [gains[k] - self.hint_gain[k] for k in range(n_experts)]
        self.spread_sq += (max(spread) - min(spread)) ** 2
        self.total_gain = [a + b for a, b in zip(self.total_gain, gains)]
        self.past.append(list(g))
        t = len(self.past)
        self.grad_sq += max((abs(g[m]) / self.s[m] for m in range(M)), default=0.0) ** 2
        self.scale = max(self.scale, math.sqrt(self.grad_sq / t))
        base = self.c * math.sqrt(2 * self.log_ratio)
        rates = [base / (math.sqrt(h) * self.scale) if self.scale > 0 else 0.0 for h in self.horizons]
        if self.static_expert:
            rates.append(base / math.sqrt(self.grad_sq) if self.grad_sq > 0 else 0.0)
        self.lazy = [self._move(self.lazy[k], rates[k], g) for k in range(n_experts)]
        if self.hint == "none":
            self.points = [list(z) for z in self.lazy]
            self.hint_gain = [0.0] * n_experts
            return self.played()
        if self.hint == "periodic" and t >= self.period:
            window = self.past[t - self.period : t - self.period + min(self.window, self.period)]
        else:
            window = self.past[max(0, t - self.window) :]
        h = [sum(w[m] for w in window) / len(window) for m in range(M)]
        self.points = [self._move(self.lazy[k], rates[k], h) for k in range(n_experts)]
        self.hint_gain = [sum(self.points[k][m] * h[m] for m in range(M)) for k in range(n_experts)]
        return self.played()
