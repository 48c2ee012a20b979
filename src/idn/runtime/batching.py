"""Micro-batching per model, as Triton's dynamic batcher does it.

Requests for one model queue up; a batch runs when it reaches ``max_batch``
rows or when the first request has waited ``max_wait_s`` (Triton's
``max_queue_delay_microseconds``). With a wait of 0 (the default) a batch
takes what arrived in the same pass of the event loop: nothing waits, and
under load the requests that came in together run as one
``session.run``.

Where a batch runs: a model whose measured batch-1 time (``idn models
build``'s catalog) is below ``inline_ms`` runs in the event loop itself;
a slower one runs in the node's thread pool (onnxruntime releases the GIL).
Measured on this machine: the handoff to a thread and back cost more CPU
than the small models themselves (about 7 us for digits-logreg,
benchmarks/README.md).
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

from .models import predict_all


class MicroBatcher:
    def __init__(self, max_batch: int, max_wait_s: float, inline: bool, executor, on_batch=None):
        self.max_batch, self.max_wait_s, self.inline = int(max_batch), float(max_wait_s), inline
        self.executor, self.on_batch = executor, on_batch
        self.queue: list = []  # (session, x, future, enqueued at)
        self._flush = None  # the scheduled flush (handle), if any

    async def run(self, session, x: np.ndarray):
        """(label (1,), probabilities (1, C), seconds queued, seconds of the batch's run, batch size) for one row."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.queue.append((session, x, fut, time.perf_counter()))
        if len(self.queue) >= self.max_batch:
            if self._flush is not None:
                self._flush.cancel()
            self._flush = None
            self._start(loop)
        elif self._flush is None:
            self._flush = loop.call_soon(self._start, loop) if self.max_wait_s <= 0 else loop.call_later(self.max_wait_s, self._start, loop)
        return await fut

    def _start(self, loop) -> None:
        self._flush = None
        batch, self.queue = self.queue[: self.max_batch], self.queue[self.max_batch :]
        if self.queue:  # more than one batch's worth queued: the rest goes next pass
            self._flush = loop.call_soon(self._start, loop)
        # an allocation swap between two requests can hand them different sessions: one run per session
        groups: dict[int, list] = {}
        for item in batch:
            groups.setdefault(id(item[0]), []).append(item)
        for items in groups.values():
            if self.inline:
                self._run(items)
            else:
                loop.run_in_executor(self.executor, self._run_threaded, items, loop)

    def _run_threaded(self, items: list, loop) -> None:
        out = self._compute(items)
        loop.call_soon_threadsafe(self._deliver, items, *out)

    def _run(self, items: list) -> None:
        self._deliver(items, *self._compute(items))

    @staticmethod
    def _compute(items: list):
        t0 = time.perf_counter()
        x = items[0][1] if len(items) == 1 else np.concatenate([it[1] for it in items])
        try:
            label, probs = predict_all(items[0][0], x)
            err = None
        except Exception as exc:  # noqa: BLE001 - delivered to every waiting request as its error
            label = probs = None
            err = exc
        return t0, time.perf_counter(), label, probs, err

    def _deliver(self, items: list, t0: float, t1: float, label, probs, err) -> None:
        if self.on_batch is not None:
            self.on_batch(len(items), t1 - t0)
        for i, (_, _, fut, queued) in enumerate(items):
            if fut.done():  # its request was cancelled (the client went away)
                continue
            if err is not None:
                fut.set_exception(err)
            else:
                fut.set_result((label[i : i + 1], probs[i : i + 1], t0 - queued, t1 - t0, len(items)))
