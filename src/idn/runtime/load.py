"""``idn load``: replay a trace against a running IDN with the held-out
inputs, and set what was measured beside what the simulator predicts for the
same trace and allocation.

Trace slot t is sent during the nodes' slot k0 + t (k0: the next slot to
start, on the nodes' shared clock), each request at a seeded random time
inside its slot, away from the edges, to the node the trace names as its
source. Inputs cycle through each task's held-out rows in order. The replay
is bounded in count (``max_requests``) and time (``duration``) and talks to
loopback addresses only.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from ..model.network import IDN, TIERS
from .launcher import LOOPBACK
from .node_parts import SlotClock


def read_run(run_dir: str | Path) -> tuple[list[dict], dict]:
    run_dir = Path(run_dir)
    for f in ("nodes.json", "serve.json"):
        if not (run_dir / f).exists():
            raise ValueError(f"{run_dir}: no {f} (is 'idn serve ... --run-dir {run_dir}' running?)")
    nodes = json.loads((run_dir / "nodes.json").read_text())
    cfg = json.loads((run_dir / "serve.json").read_text())
    for n in nodes:
        host = urlparse(n["url"]).hostname
        if host not in LOOPBACK:
            raise ValueError(f"node {n['id']!r} is at {n['url']}: idn load talks to loopback addresses only")
    return nodes, cfg


def scale_trace(trace: pd.DataFrame, scale: float, seed: int = 0) -> pd.DataFrame:
    """Counts times ``scale``, the fraction rounded up with its probability (seeded)."""
    if scale <= 0:
        raise ValueError(f"--rate-scale must be > 0, got {scale:g}")
    if scale == 1.0:
        return trace
    raw = trace["count"].to_numpy(dtype=float) * scale
    rng = np.random.default_rng(seed)
    out = trace.assign(count=(np.floor(raw) + (rng.random(len(raw)) < raw - np.floor(raw))).astype(np.int64))
    return out[out["count"] > 0].reset_index(drop=True)


def bound_trace(trace: pd.DataFrame, slot_seconds: float, duration: float, max_requests: int) -> pd.DataFrame:
    """The trace's first slots that fit in ``duration`` seconds and ``max_requests`` requests."""
    trace = trace[trace["slot"] < max(1, int(duration / slot_seconds))]
    per_slot = trace.groupby("slot")["count"].sum().sort_index()
    keep = per_slot.index[per_slot.cumsum() <= max_requests]
    return trace[trace["slot"].isin(keep)].reset_index(drop=True)


def schedule(trace: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One row per request: slot, source, task, offset (fraction of the slot
    in [0.05, 0.9]: clear of the boundaries, so a request is stamped with its
    own slot at its source), sorted by send time."""
    rep = trace.loc[trace.index.repeat(trace["count"])].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    rep = rep.assign(offset=0.05 + 0.85 * rng.random(len(rep)))
    return rep.sort_values(["slot", "offset"], kind="stable").reset_index(drop=True)[["slot", "source", "task", "offset"]]


async def _replay(reqs: pd.DataFrame, urls: dict, inputs: dict, clock: SlotClock, k0: int, deadline: float,
                  concurrency: int, timeout_s: float) -> list[dict]:  # fmt: skip
    import aiohttp

    cursor = {t: 0 for t in inputs}
    sem = asyncio.Semaphore(concurrency)
    out: list[dict] = []

    async def one(session, row, x, y, when):
        await asyncio.sleep(max(0.0, when - time.time()))
        async with sem:
            t0 = time.perf_counter()
            rec = {"task": row.task, "source": row.source, "label": y}
            try:
                async with session.post(f"{urls[row.source]}/v1/infer", json={"task": row.task, "input": x}) as r:
                    body = await r.json(content_type=None)
                    rec.update(status=r.status, body=body)
            except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError) as exc:
                rec.update(status=None, body={"error": f"{type(exc).__name__}: {exc}"})
            rec["ms"] = (time.perf_counter() - t0) * 1000.0
            out.append(rec)

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        tasks = []
        for row in reqs.itertuples(index=False):
            when = clock.start(k0 + int(row.slot)) + row.offset * clock.seconds
            if when > deadline:
                break
            xs, ys = inputs[row.task]
            i = cursor[row.task] % len(ys)
            cursor[row.task] += 1
            tasks.append(asyncio.create_task(one(session, row, xs[i].tolist(), int(ys[i]), when)))
        await asyncio.gather(*tasks)
    return out


def simulate(idn: IDN, trace: pd.DataFrame, allocation: dict) -> dict:
    """The simulator's prediction: the slot loop with the Fixed policy."""
    from ..policies.base import Fixed
    from ..sim.inputs import count_matrix, request_types_for
    from ..sim.loop import run_policy

    rt = request_types_for(idn, trace)
    res = run_policy(rt, Fixed(allocation=allocation), count_matrix(rt, trace))
    s = res.summary()
    total = float(res.slots["requests"].sum())
    tiers = {t: float(res.slots[f"served_{t}"].sum()) / total if total else 0.0 for t in TIERS}
    return {"served_per_tier": tiers, "accuracy": s["mean_accuracy"], "mean_latency_ms": s["mean_latency_ms"],
            "requests": total}  # fmt: skip


def live_allocation(nodes: list[dict], fallback: dict) -> dict:
    """Every node's allocation in force, from its /v1/state (the launch's for a node that does not answer)."""
    import urllib.request

    out = {}
    for n in nodes:
        try:
            with urllib.request.urlopen(f"{n['url']}/v1/state", timeout=2.0) as r:
                alloc = json.loads(r.read())["allocation"]
        except OSError:
            alloc = fallback.get(n["id"], [])
        if alloc != "all":
            out[n["id"]] = alloc
    return out


def run_load(idn: IDN, run_dir, trace: pd.DataFrame, rate_scale: float = 1.0, duration: float = 60.0,
             max_requests: int = 20000, seed: int = 0, concurrency: int = 256, timeout_s: float = 30.0) -> dict:  # fmt: skip
    """Replay, then compare with the simulator. Returns the report dict."""
    from .models import read_catalog_files

    nodes, cfg = read_run(run_dir)
    urls = {n["id"]: n["url"] for n in nodes}
    if duration <= 0 or max_requests <= 0:
        raise ValueError("--duration and --max-requests must be > 0")
    trace = bound_trace(scale_trace(trace, rate_scale, seed), idn.slot_seconds, duration, max_requests)
    missing = sorted(set(trace["source"]) - set(urls))
    if missing:
        raise ValueError(f"trace source {missing[0]!r} is not a node of this run")
    files = read_catalog_files(cfg["models"])
    inputs = {}
    for t in idn.tasks:
        d = np.load(Path(cfg["models"]) / "data" / f"{t}.npz")
        inputs[t] = (d["x"], d["y"])
    allocation = live_allocation(nodes, cfg.get("allocation") or {})
    clock = SlotClock(cfg["epoch"], idn.slot_seconds)
    k0 = clock.now() + 1
    reqs = schedule(trace, seed)
    deadline = clock.start(k0) + duration
    recs = asyncio.run(_replay(reqs, urls, inputs, clock, k0, deadline, concurrency, timeout_s))
    report = summarize(idn, nodes, recs, files)
    sent_slots = trace[trace["slot"] < (int(reqs["slot"].max()) + 1 if len(reqs) else 0)]
    report["simulated"] = simulate(idn, sent_slots, allocation)
    report["allocation"] = allocation
    return report


def summarize(idn: IDN, nodes: list[dict], recs: list[dict], files: dict) -> dict:
    tier_of = {n["id"]: n["tier"] for n in nodes}
    acc_of = {m.id: m.accuracy for m in idn.models}
    ok = [r for r in recs if r["status"] == 200 and "prediction" in r["body"]]
    answered = [r for r in recs if r["status"] is not None]
    lat = np.array([r["ms"] for r in ok]) if ok else np.zeros(1)
    per_tier = {t: 0 for t in TIERS}
    per_node: dict[str, int] = {}
    per_model: dict[str, list] = {}
    for r in ok:
        b = r["body"]
        per_tier[tier_of[b["node"]]] += 1
        per_node[b["node"]] = per_node.get(b["node"], 0) + 1
        per_model.setdefault(b["model"], []).append(b["prediction"] == r["label"])
    n = len(answered)
    errors: dict[str, int] = {}
    good = {id(r) for r in ok}
    for r in recs:
        if id(r) not in good:
            msg = str(r["body"].get("error", r["status"]))[:80]
            errors[msg] = errors.get(msg, 0) + 1
    return {
        "sent": len(recs), "answered": n, "errors": len(recs) - len(ok), "lost": len(recs) - n,
        "latency_ms": {**{f"p{q}": float(np.percentile(lat, q)) for q in (50, 95, 99)}, "mean": float(lat.mean())},
        "accuracy": float(np.mean([c for v in per_model.values() for c in v])) if ok else 0.0,
        "catalog_accuracy": float(np.mean([acc_of[r["body"]["model"]] for r in ok])) if ok else 0.0,
        "served_per_tier": {t: (c / n if n else 0.0) for t, c in per_tier.items()},
        "served_per_node": per_node,
        "per_model": {m: {"served": len(v), "accuracy": float(np.mean(v)), "catalog_accuracy": acc_of[m]} for m, v in sorted(per_model.items())},
        "error_reasons": errors,
    }  # fmt: skip


def format_report(rep: dict) -> str:
    sim = rep["simulated"]
    lines = [
        f"sent {rep['sent']}, answered {rep['answered']}, errors {rep['errors']}, lost {rep['lost']}",
        "latency ms: p50 {p50:.1f}, p95 {p95:.1f}, p99 {p99:.1f}, mean {mean:.1f} (simulated mean {m:.1f})".format(**rep["latency_ms"], m=sim["mean_latency_ms"]),
        f"accuracy: measured {rep['accuracy']:.3f}, catalog for the models that served {rep['catalog_accuracy']:.3f}, simulated {sim['accuracy']:.3f}",
        f"{'tier':<10} {'measured':>9} {'simulated':>9}",
    ]  # fmt: skip
    for t in TIERS:
        lines.append(f"{t:<10} {rep['served_per_tier'][t]:>9.3f} {sim['served_per_tier'][t]:>9.3f}")
    for msg, c in rep["error_reasons"].items():
        lines.append(f"error x{c}: {msg}")
    return "\n".join(lines)
