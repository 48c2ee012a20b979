"""Small pieces of a node kept apart so the next step (live INFIDA, issue 10)
can reuse them: the slot clock, the Prometheus metrics, control-call auth."""

from __future__ import annotations

import hmac
import math
import time

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class SlotClock:
    """Wall-clock slots of ``seconds`` from an epoch every node shares (the
    launcher writes it into RUN/serve.json): slot t is [epoch + t s, epoch + (t+1) s)."""

    def __init__(self, epoch: float, seconds: float):
        self.epoch, self.seconds = float(epoch), float(seconds)

    def now(self) -> int:
        return max(0, math.floor((time.time() - self.epoch) / self.seconds))

    def start(self, t: int) -> float:
        return self.epoch + t * self.seconds


class DrivenClock:
    """Deterministic mode: slot t lasts until the driver ends it (``POST /v1/slot``)."""

    def __init__(self, seconds: float):
        self.seconds, self.slot = float(seconds), 0

    def now(self) -> int:
        return self.slot


class TritonStats:
    """Triton's inference metrics, under Triton's own names (``nv_inference_*``,
    labels ``model`` = the protocol's model name, i.e. the task, and
    ``version``), so that dashboards made for Triton read a node as they read
    a Triton server. They describe what this node answered itself: requests
    it served or refused, not those it passed up the path (those are
    ``idn_requests_forwarded``). prometheus-client's Counter would rename them
    ``..._total``; plain dict counters, rendered by :meth:`render`, keep
    the names and cost less per request."""

    NAMES = {
        "nv_inference_request_success": "requests served here",
        "nv_inference_request_failure": "requests answered here with an error",
        "nv_inference_count": "inferences run (rows: a batch of n counts n)",
        "nv_inference_exec_count": "model executions (batches); count / exec_count is the mean batch size",
        "nv_inference_request_duration_us": "cumulative time from a request's arrival here to its answer, us",
        "nv_inference_queue_duration_us": "cumulative time requests waited for their batch, us",
        "nv_inference_compute_infer_duration_us": "cumulative time of the model runs, us (once per batch)",
    }  # fmt: skip

    def __init__(self, tasks):
        self.values = {t: dict.fromkeys(self.NAMES, 0.0) for t in tasks}

    def render(self) -> bytes:
        """Prometheus text, Triton's names and types as Triton writes them."""
        lines = []
        for name, doc in self.NAMES.items():
            lines += [f"# HELP {name} {doc}", f"# TYPE {name} counter"]
            for task, v in self.values.items():
                label = task.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                lines.append(f'{name}{{model="{label}",version="1"}} {v[name]:.17g}')
        return ("\n".join(lines) + "\n").encode()


class NodeMetrics:
    """One registry per node process, rendered at GET /metrics."""

    def __init__(self, node_id: str, tasks=()):
        r = self.registry = CollectorRegistry()
        self.triton = TritonStats(tasks)
        lbl = {"node": node_id}
        self.received = Counter("idn_requests_received", "requests received", registry=r, labelnames=["node"]).labels(**lbl)
        self._served = Counter("idn_requests_served", "requests served here", ["node", "model"], registry=r)
        self.forwarded = Counter("idn_requests_forwarded", "requests forwarded up the path", registry=r, labelnames=["node"]).labels(**lbl)
        self.errors = Counter("idn_request_errors", "requests answered with an error", registry=r, labelnames=["node"]).labels(**lbl)
        self.skipped = Counter("idn_hops_skipped", "next hops that did not answer and were skipped", registry=r, labelnames=["node"]).labels(**lbl)
        self._latency = Histogram(
            "idn_service_seconds", "inference time per request", ["node", "model"], registry=r,
            buckets=(1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0),
        )  # fmt: skip
        self._loads = Counter("idn_model_loads", "onnxruntime sessions created", ["node", "model"], registry=r)
        self._load_time = Histogram("idn_model_load_seconds", "time to create a session", ["node"], registry=r)
        self.node_id = node_id
        self._children: dict = {}
        self._slot = Gauge("idn_slot", "the next slot whose control round runs here", ["node"], registry=r).labels(**lbl)
        self._messages = {
            k: Counter(f"idn_control_{k}", f"INFIDA control messages {k.split('_')[1]}", ["node"], registry=r).labels(**lbl)
            for k in ("messages_sent", "messages_received", "messages_missed")
        }  # fmt: skip
        self._bytes = Counter("idn_control_bytes_sent", "bytes of control bundles sent", ["node"], registry=r).labels(**lbl)
        self._round = Histogram("idn_control_round_seconds", "one slot's message exchange", ["node"], registry=r,
                                buckets=(1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)).labels(**lbl)  # fmt: skip
        self._y = Gauge("idn_policy_state", "the node's fractional state y", ["node", "model"], registry=r)
        self._resumed = Gauge("idn_resumed_from_slot", "slot this node resumed at from its checkpoint (-1: fresh start)",
                              ["node"], registry=r).labels(**lbl)  # fmt: skip
        self._resumed.set(-1)

    def served(self, model: str, ms: float) -> None:
        c = self._children.get(model)
        if c is None:  # labels() costs more than the increment: bound once per model
            c = self._children[model] = (self._served.labels(node=self.node_id, model=model),
                                         self._latency.labels(node=self.node_id, model=model))  # fmt: skip
        c[0].inc()
        c[1].observe(ms / 1000.0)

    def loaded(self, model: str, seconds: float) -> None:
        self._loads.labels(node=self.node_id, model=model).inc()
        self._load_time.labels(node=self.node_id).observe(seconds)

    def control(self, rec: dict, y: dict[str, float], slot: int) -> None:
        for k, c in self._messages.items():
            c.inc(rec[k])
        self._bytes.inc(rec["bytes_sent"])
        self._round.observe(rec["round_ms"] / 1000.0)
        self._slot.set(slot)
        for model, value in y.items():
            self._y.labels(node=self.node_id, model=model).set(value)

    def resumed(self, slot: int) -> None:
        self._resumed.set(slot)
        self._slot.set(slot)

    def render(self) -> bytes:
        return generate_latest(self.registry) + self.triton.render()


def bad_request(status: int, msg: str) -> web.Response:
    """The protocol's error: ``{"error": msg}`` with a 4xx (or 503) status."""
    return web.json_response({"error": msg}, status=status)


def check_token(request: web.Request, token: str) -> web.Response | None:
    """None when the call carries ``Authorization: Bearer TOKEN``, else the 401 to send."""
    got = request.headers.get("Authorization", "")
    if not (got.startswith("Bearer ") and hmac.compare_digest(got[7:].encode(), token.encode())):
        return bad_request(401, "control call without a valid 'Authorization: Bearer TOKEN' header")
    return None
