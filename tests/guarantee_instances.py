"""Small random instances for the (1 - 1/e) check of INFIDA against the exact
static optimum, shared by tests/test_guarantee.py and
benchmarks/bench_ratio.py: the same instances with equal model sizes (b/s
integer, the case the guarantee covers) or with the random sizes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from idn.model.network import IDN
from idn.model.request_types import build_request_types
from idn.policies.registry import make_policy
from idn.sim.loop import run_policy

import reference as ref

PSI = 1 - 1 / np.e
SIZE_MB = 10.0


def instance(seed: int, equal_sizes: bool, slots: int = 160):
    """(request types, counts) of a random IDN; equal_sizes: every model 10 MB,
    budgets 10, 20 or 30 MB (b/s in {1, 2, 3})."""
    rng = np.random.default_rng(seed)
    idn = ref.random_idn(rng, n_nodes=int(rng.integers(4, 7)), n_tasks=int(rng.integers(2, 4)), models_per_task=3)
    budgets = rng.integers(1, 4, idn.n_nodes) * SIZE_MB
    if equal_sizes:
        models = [replace(m, size_mb=SIZE_MB) for m in idn.models]
        nodes = [replace(n, budget_mb=float(b)) for n, b in zip(idn.nodes, budgets)]
    else:
        models = list(idn.models)  # random sizes: 10, 20 or uniform 5-150 MB
        nodes = [replace(n, budget_mb=float(b) * 3) for n, b in zip(idn.nodes, budgets)]
    idn = IDN(idn.name, nodes, idn.graph, idn.tasks, models, idn.alpha, 1.0, idn.sources)
    rt = build_request_types(idn)
    rates = rng.uniform(20, 200, rt.n_types)
    counts = rng.poisson(rates, (slots, rt.n_types)).astype(float)
    return rt, counts


def second_half_ratios(seed: int, equal_sizes: bool, policies=("infida", "online-greedy", "static-greedy")) -> dict:
    """Each policy's time-averaged gain over the second half of the run, over
    the exact static optimum's on the same slots."""
    rt, counts = instance(seed, equal_sizes)
    half = counts.shape[0] // 2
    opt = run_policy(rt, make_policy("optimal"), counts, seed=seed).slots["gain"].to_numpy()[half:].sum()
    out = {}
    for name in policies:
        gains = run_policy(rt, make_policy(name), counts, seed=seed).slots["gain"].to_numpy()[half:].sum()
        out[name] = gains / opt if opt > 0 else 1.0
    return out
