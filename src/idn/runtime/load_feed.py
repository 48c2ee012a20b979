"""``RUN/load.json``: what ``idn load`` measures, slot by slot, while it runs,
beside the simulator's prediction for the same requests; the dashboard
(:mod:`idn.runtime.dashboard`) reads it.

Only the load generator knows a request's end-to-end latency, its label
(so whether the answer was right) and its source (so the scenario's cost C
of the entry that served it); the nodes know none of these. So ``idn load``
hands every answered request to a :class:`LoadFeed`, which folds them into
per-slot figures in a thread of its own and rewrites the file (write, then
rename: a reader never sees half a file) a few times a second. The
prediction is computed before the first request is sent, so the page can
draw it from the start.

Slots in the file are the nodes' slots (``slot`` = k0 + trace slot), the
axis every other series on the dashboard uses.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from ..model.network import TIERS

FILE = "load.json"


class _Slot:
    """Running sums for one trace slot."""

    __slots__ = ("correct", "cost", "errors", "ms", "requests", "tiers")

    def __init__(self):
        self.requests, self.errors, self.correct, self.cost = 0, 0, 0, 0.0
        self.tiers = dict.fromkeys(TIERS, 0)
        self.ms: list[float] = []

    def out(self) -> dict:
        n = self.requests
        lat = np.asarray(self.ms)
        return {"requests": n, "errors": self.errors,
                "served_per_tier": {t: (c / n if n else 0.0) for t, c in self.tiers.items()},
                "latency_ms": {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95))} if n else None,
                "accuracy": self.correct / n if n else None, "mean_cost": self.cost / n if n else None}  # fmt: skip


class LoadFeed:
    """Per-slot figures of one ``idn load`` run, written to ``RUN/load.json``.

    ``add`` is called from the replay's event loop for every answered (or
    failed) request and only appends to a list; the thread does the rest.
    ``cost``/``fallback`` are :func:`idn.runtime.load.served_cost`'s maps,
    ``predicted`` the simulator's rows per trace slot (or None).
    """

    def __init__(self, run_dir, idn, k0: int, n_slots: int, predicted: list[dict] | None, cost: dict, fallback: dict,
                 info: dict | None = None, interval_s: float = 0.4):  # fmt: skip
        self.path = Path(run_dir) / FILE
        self.k0, self.n_slots, self.predicted = int(k0), int(n_slots), predicted or []
        self.cost, self.fallback = cost, fallback
        self.tier_of = {n.id: n.tier for n in idn.nodes}
        self.info = {"pid": os.getpid(), "started": time.time(), **(info or {})}
        self.interval_s = interval_s
        self._new: list[dict] = []
        self._seen = 0
        self._slots: dict[int, _Slot] = {}
        self._reasons: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="idn-load-feed", daemon=True)

    def add(self, rec: dict) -> None:
        self._new.append(rec)  # list.append is atomic: no lock between the loop and the thread

    def start(self) -> LoadFeed:
        self._write("running")
        self._thread.start()
        return self

    def close(self, summary: dict | None = None) -> None:
        self._stop.set()
        self._thread.join()
        self._write("done", summary)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._write("running")
            except OSError as exc:  # a full disk must not stop the load
                print(f"idn load: {self.path}: {exc}", flush=True)

    def _fold(self) -> None:
        n = len(self._new)
        for r in self._new[self._seen : n]:
            t = r.get("trace_slot", -1)
            if not 0 <= t < self.n_slots:
                continue
            s = self._slots.setdefault(t, _Slot())
            b = r.get("body") or {}
            if r.get("status") != 200 or "prediction" not in b:
                s.errors += 1
                msg = str(b.get("error", r.get("status")))[:80]
                self._reasons[msg] = self._reasons.get(msg, 0) + 1
                continue
            key = (r["source"], r["task"])
            s.requests += 1
            s.tiers[self.tier_of.get(b["node"], "cloud")] += 1
            s.ms.append(float(r["ms"]))
            s.correct += int(b["prediction"] == r["label"])
            s.cost += self.cost.get((*key, b["node"], b["model"]), self.fallback.get(key, 0.0))
        self._seen = n

    def _write(self, status: str, summary: dict | None = None) -> None:
        self._fold()
        slots = []
        for t in range(self.n_slots):
            row = {"slot": self.k0 + t, "trace_slot": t}
            if t in self._slots:
                row.update(self._slots[t].out())
            if t < len(self.predicted):
                row["predicted"] = self.predicted[t]
            slots.append(row)
        doc = {"status": status, **self.info, "updated": time.time(), "k0": self.k0, "n_slots": self.n_slots,
               "answered": sum(s.requests for s in self._slots.values()),
               "errors": sum(s.errors for s in self._slots.values()), "error_reasons": dict(self._reasons),
               "slots": slots}  # fmt: skip
        if summary is not None:
            doc["summary"] = summary
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.path)


def predicted_rows(slots_table) -> list[dict]:
    """The simulator's per-slot table (``RunResult.slots``) as the feed's
    ``predicted`` rows: served share per tier, mean latency, accuracy and
    cost per request."""
    rows = []
    for r in slots_table.to_dict("records"):
        n = r["requests"]
        rows.append({"requests": n, "served_per_tier": {t: (r[f"served_{t}"] / n if n else 0.0) for t in TIERS},
                     "mean_latency_ms": r["mean_latency_ms"] if n else None,
                     "accuracy": r["mean_accuracy"] if n else None,
                     "mean_cost": r["cost"] / n if n else None})  # fmt: skip
    return rows
