"""A node's model store: the onnxruntime sessions it holds, and the
allocation swap (live-idn.md, "Model store").

A new allocation is applied off the request path: the sessions it adds are
created first (in a worker thread, timed), then the allocation is swapped in
one step, then the sessions it drops are freed. A request therefore always
finds a session for every model its node's allocation names.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from .models import _session


@dataclass
class StoreStats:
    loads: int = 0
    unloads: int = 0
    load_seconds: float = 0.0
    last_load_seconds: dict[str, float] = field(default_factory=dict)


class ModelStore:
    def __init__(self, files: dict[int, str], model_ids: list[str]):
        self.files = files  # model index -> .onnx path
        self.model_ids = model_ids
        self.sessions: dict[int, object] = {}
        self.held: frozenset[int] = frozenset()  # the allocation in force
        self.stats = StoreStats()
        self._lock = asyncio.Lock()  # one swap at a time

    def _load(self, m: int):
        t0 = time.perf_counter()
        s = _session(self.files[m])
        return s, time.perf_counter() - t0

    async def apply(self, models: set[int], executor=None, on_load=None) -> tuple[list[int], list[int]]:
        """Load what is new, swap, unload what is gone; returns (loaded, unloaded)."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            new = sorted(set(models) - set(self.sessions))
            fresh = {}
            for m in new:
                s, dt = await loop.run_in_executor(executor, self._load, m)
                fresh[m] = s
                self.stats.loads += 1
                self.stats.load_seconds += dt
                self.stats.last_load_seconds[self.model_ids[m]] = dt
                if on_load:
                    on_load(self.model_ids[m], dt)
            gone = sorted(set(self.sessions) - set(models))
            # the swap: one assignment each, no await in between, so a request sees old or new, never half
            self.sessions = {**{m: s for m, s in self.sessions.items() if m in models}, **fresh}
            self.held = frozenset(models)
            self.stats.unloads += len(gone)
            return new, gone

    def session(self, m: int):
        return self.sessions[m]
