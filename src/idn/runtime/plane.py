"""What every per-node live policy shares (:class:`NodePlane`): its
checkpoint (policy state, next slot, counters), written after each round and
read on a restart. INFIDA's and local-greedy's plane is
:mod:`.control`, LFU's and LRU's :mod:`.caching`; :mod:`.live_policies`
picks one for a node."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np

from ..sim import checkpoint as ckpt

HISTORY = 10_000  # per-slot records kept for GET /v1/history


class NodePlane:
    """What every per-node live policy shares: its checkpoint (policy state,
    next slot, counters), written after each round and read on a restart."""

    checkpoint: Path | None = None
    counters: dict

    def held(self) -> np.ndarray:
        """The node's allocation now, (M,) bool, without side effects (a
        local-greedy propose() refills)."""
        x = self.policy.state() if getattr(self.policy, "needs_lists", False) else self.policy.propose()
        return x[self.node.v] > 0.5

    def fingerprint(self) -> str:
        cfg = self.node.cfg
        return json.dumps([self.node.id, cfg["scenario"], cfg.get("policy"), cfg.get("epoch")], sort_keys=True)

    def save(self) -> None:
        if self.checkpoint is not None:
            ckpt.save_state(self.checkpoint, self.fingerprint(), self.policy, {"slot": self.slot, "counters": self.counters})

    async def save_async(self) -> None:
        """The checkpoint, written in a thread (np.savez and fsync take
        milliseconds; the event loop keeps serving). The policy is not
        touched meanwhile: the next round waits for this one."""
        await asyncio.get_running_loop().run_in_executor(None, self.save)

    def restore(self) -> bool:
        """Resume from this node's checkpoint, if there is one (False if not);
        a checkpoint of another run is refused with one line."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return False
        extra = ckpt.load_state(self.checkpoint, self.fingerprint(), self.policy)
        slot, counters = extra.get("slot"), extra.get("counters")
        if isinstance(slot, bool) or not isinstance(slot, int) or slot < 0 or not isinstance(counters, dict):
            raise ckpt.refuse(self.checkpoint, "no slot or counters")
        self.slot = self.resumed_from = slot
        for k in self.counters:
            if isinstance(counters.get(k), int):
                self.counters[k] = counters[k]
        return True
