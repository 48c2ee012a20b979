"""The slot loop: a policy proposes, the slot's requests are served, the
policy learns. Every policy in a comparison sees the same count matrix
(common random numbers), and long runs can checkpoint and resume.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .. import serving
from ..model.request_types import RequestTypes
from ..policies.base import Policy
from . import checkpoint as ckpt
from .contract import check_allocation, is_plugin

SLOT_COLUMNS = [
    "slot", "requests", "gain", "gain_max", "cost", "normalized_gain", "mean_latency_ms", "mean_accuracy",
    "served_access", "served_edge", "served_regional", "served_cloud",
    "model_loads", "mb_loaded", "control_messages", "control_bytes", "seconds",
]  # fmt: skip


@dataclass
class RunResult:
    policy: str
    slots: pd.DataFrame  # one row per slot, SLOT_COLUMNS
    final_allocation: np.ndarray  # (V, M)
    params: dict = field(default_factory=dict)

    def summary(self) -> dict:
        s = self.slots
        req = float(s["requests"].sum())
        gmax = float(s["gain_max"].sum())
        total = float(s["gain"].sum())
        n = len(s)

        def per_request(col):
            return float((s[col] * s["requests"]).sum() / req) if req > 0 else 0.0

        return {
            "policy": self.policy,
            "slots": n,
            "total_gain": total,
            "time_avg_gain": total / n if n else 0.0,
            "normalized_gain": total / gmax if gmax > 0 else 0.0,
            "mean_latency_ms": per_request("mean_latency_ms"),
            "mean_accuracy": per_request("mean_accuracy"),
            "model_loads": int(s["model_loads"].sum()),
            "mb_loaded": float(s["mb_loaded"].sum()),
            "control_messages": int(s["control_messages"].sum()),
            "control_bytes": int(s["control_bytes"].sum()),
            # median: the first slot also pays numba compilation on a cold cache
            "seconds_per_slot": float(s["seconds"].median()) if n else 0.0,
        }


def _fingerprint(rt: RequestTypes, policy: Policy, counts: np.ndarray, seed) -> str:
    h = hashlib.sha256()
    h.update(repr((policy.name, sorted(policy.params.items(), key=str), seed)).encode())
    for arr in (counts, rt.cost, rt.pair, rt.offsets):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def run_policy(
    rt: RequestTypes,
    policy: Policy,
    counts: np.ndarray,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 0,
    on_slot: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Run policy over the (T, R) request counts. With checkpoint and
    checkpoint_every > 0 the state is saved every that many slots (as data:
    idn.sim.checkpoint) and a run started again with the same arguments
    continues where it stopped; the result is identical to an uninterrupted
    run's (timings aside). A checkpoint that is not this run's is refused
    (CheckpointError): remove it (``idn run --restart``) to start over."""
    counts = np.ascontiguousarray(counts, dtype=float)
    n_slots = counts.shape[0]
    idn = rt.idn
    fingerprint = _fingerprint(rt, policy, counts, seed) if checkpoint else ""
    rows = np.zeros((n_slots, len(SLOT_COLUMNS)))
    prev = idn.permanent.astype(bool)
    first = 0
    # start() also on resuming: it rebuilds all that is not state (deterministic in seed and counts)
    policy.start(rt, seed, trace=counts if policy.offline else None)
    if checkpoint and os.path.exists(checkpoint):
        first, prev, saved = ckpt.load(checkpoint, fingerprint, policy, rows.shape, prev.shape)
        rows[:first] = saved[:first]

    size = idn.size_mb
    checked = is_plugin(policy)  # a plug-in's allocations are checked every slot (sim/contract.py)
    for t in range(first, n_slots):
        t0 = time.perf_counter()
        x = policy.propose()
        if checked:
            check_allocation(idn, x, policy.name, t)
        share = serving.capacity_share(rt, counts[t])
        out = serving.serve(rt, counts[t], x, share)
        policy.learn(counts[t], share)
        held = x > 0.5
        loaded = held & ~prev
        prev = held
        m = out.metrics()
        rows[t] = (
            t, m["requests"], m["gain"], out.gain_max, m["cost"], m["normalized_gain"], m["mean_latency_ms"],
            m["mean_accuracy"], *out.served_per_tier, int(loaded.sum()), float(loaded.sum(axis=0) @ size),
            policy.control_messages, policy.control_bytes, time.perf_counter() - t0,
        )  # fmt: skip
        if on_slot is not None:
            on_slot(t + 1, n_slots)
        if checkpoint and checkpoint_every > 0 and (t + 1) % checkpoint_every == 0 and t + 1 < n_slots:
            ckpt.save(checkpoint, fingerprint, t + 1, policy, prev, rows)
    if checkpoint and os.path.exists(checkpoint):
        os.remove(checkpoint)

    table = pd.DataFrame(rows, columns=SLOT_COLUMNS)
    for col in ("slot", "model_loads", "control_messages", "control_bytes"):
        table[col] = table[col].astype(np.int64)
    return RunResult(policy.name, table, prev.astype(float), dict(policy.params))

