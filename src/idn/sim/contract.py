"""The allocation contract, checked on policies from outside the package.

A plug-in policy's ``propose()`` (``Policy`` docstring) must return a (V, M)
array of 0/1 with every permanent pair at 1 and every node within its memory
budget. ``serving.serve`` trusts its input, so an allocation that breaks the
contract would not fail: it would silently report gains no feasible
allocation can reach. The slot loop therefore checks every slot of a policy
defined outside ``idn`` (one vectorized pass over V x M: about 11 us per
slot on the built-in 38 x 69 scenario, the same order as serving that slot,
and small beside a propose() written in Python) and stops with one line naming the policy, the slot and the first
violation. Built-in policies are covered by their own tests instead and are
not checked, so the benchmarks time them unchanged.
"""

from __future__ import annotations

import numpy as np

from ..model.network import IDN

_TOLERANCE_MB = 1e-6


def is_plugin(policy) -> bool:
    return not type(policy).__module__.startswith("idn.")


def check_allocation(idn: IDN, x, policy_name: str, slot: int) -> None:
    """ValueError (one line) unless x is a feasible allocation of idn."""
    where = f"policy {policy_name!r}, slot {slot}: propose()"
    x = np.asarray(x)
    if x.shape != (idn.n_nodes, idn.n_models):
        raise ValueError(f"{where} returned shape {x.shape}, expected (nodes, models) = {(idn.n_nodes, idn.n_models)}")
    held = x > 0.5
    if not np.all((x == 0) | (x == 1)):
        v, m = np.argwhere((x != 0) & (x != 1))[0]
        raise ValueError(f"{where}: x[{idn.nodes[v].id!r}, {idn.models[m].id!r}] = {x[v, m]!r}, expected 0 or 1")
    dropped = idn.permanent & ~held
    if dropped.any():
        v, m = np.argwhere(dropped)[0]
        raise ValueError(f"{where} drops the permanent pair ({idn.nodes[v].id!r}, {idn.models[m].id!r}): keep it at 1")
    used = (held & ~idn.permanent) @ idn.size_mb
    over = np.flatnonzero(used > idn.budget_mb + _TOLERANCE_MB)
    if len(over):
        v = over[0]
        raise ValueError(
            f"{where}: node {idn.nodes[v].id!r} holds {used[v]:g} MB of models, over its budget of {idn.budget_mb[v]:g} MB"
        )
