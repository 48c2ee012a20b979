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

from ..output_names import with_aliases
from ..model.network import IDN, TIERS
from .launcher import LOOPBACK
from .load_feed import LoadFeed, predicted_rows
from .node_parts import SlotClock
from .oip import json_request


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


async def _replay(reqs: pd.DataFrame, urls: dict, inputs: dict, clock: SlotClock | None, k0: int, deadline: float,
                  concurrency: int, timeout_s: float, session=None, cursor: dict | None = None,
                  on_record=None) -> list[dict]:  # fmt: skip
    """Send each request at its time (clock None: now), return one record each
    (also handed to ``on_record`` as it comes: the dashboard's feed)."""
    import aiohttp

    cursor = cursor if cursor is not None else {t: 0 for t in inputs}
    sem = asyncio.Semaphore(concurrency)
    out: list[dict] = []

    async def one(session, row, x, y, when):
        await asyncio.sleep(max(0.0, when - time.time()))
        async with sem:
            t0 = time.perf_counter()
            rec = {"task": row.task, "source": row.source, "label": y, "trace_slot": int(row.slot)}
            try:
                async with session.post(f"{urls[row.source]}/v2/models/{row.task}/infer", data=json_request(x),
                                        headers={"Content-Type": "application/json"}) as r:  # fmt: skip
                    body = await r.json(content_type=None)
                    rec.update(status=r.status, body=_record(body) if r.status == 200 else body)
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError, TypeError) as exc:
                rec.update(status=None, body={"error": f"{type(exc).__name__}: {exc}"})
            rec["ms"] = (time.perf_counter() - t0) * 1000.0
            out.append(rec)
            if on_record is not None:
                on_record(rec)

    async def send_all(session):
        tasks = []
        for row in reqs.itertuples(index=False):
            when = time.time() if clock is None else clock.start(k0 + int(row.slot)) + row.offset * clock.seconds
            if when > deadline:
                break
            xs, ys = inputs[row.task]
            i = cursor[row.task] % len(ys)
            cursor[row.task] += 1
            tasks.append(asyncio.create_task(one(session, row, xs[i].tolist(), int(ys[i]), when)))
        await asyncio.gather(*tasks)

    if session is not None:
        await send_all(session)
        return out
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        await send_all(session)
    return out


def _record(answer: dict) -> dict:
    """What the report reads off an Open Inference Protocol answer: the label, where and by what it was served."""
    p = answer["parameters"]
    label = next(o["data"][0] for o in answer["outputs"] if o["name"] == "label")
    return {"prediction": label, "node": p["idn_node"], "model": p["idn_model"], "hops": p["idn_path"].split(",")}


async def _drive(reqs: pd.DataFrame, urls: dict, inputs: dict, token: str, k0: int, n_slots: int, deadline: float,
                 concurrency: int, timeout_s: float, on_record=None) -> tuple[list[dict], list[list[dict]]]:  # fmt: skip
    """Deterministic mode: each slot's requests, all answered, then ``POST
    /v1/slot`` at every node (concurrently: their rounds talk to each other)."""
    import aiohttp

    recs: list[dict] = []
    rounds: list[list[dict]] = []
    headers = {"Authorization": f"Bearer {token}"}
    by_slot = {int(t): g for t, g in reqs.groupby("slot")}
    cursor = {t: 0 for t in inputs}
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        for t in range(n_slots):
            if time.time() > deadline:
                break
            rows = by_slot.get(t, reqs.iloc[:0])
            recs += await _replay(rows.assign(offset=0.0), urls, inputs, None, 0, deadline, concurrency, timeout_s,
                                  session=session, cursor=cursor, on_record=on_record)  # fmt: skip

            async def end(url):
                async with session.post(f"{url}/v1/slot", json={"end": k0 + t}, headers=headers) as r:
                    body = await r.json(content_type=None)
                    if r.status != 200:
                        raise RuntimeError(f"{url}/v1/slot: {body.get('error', r.status)}")
                    return body

            rounds.append(await asyncio.gather(*(end(u) for u in urls.values())))
    return recs, rounds


def simulate(idn: IDN, trace: pd.DataFrame, allocation: dict, policy: dict | None = None, per_slot: bool = False) -> dict:
    """The simulator's prediction: the slot loop with the Fixed policy, or
    with the live policy's own code, parameters and seed (``per_slot``: its
    rows per slot too, for RUN/load.json)."""
    from ..policies.simple import Fixed
    from ..policies.registry import make_policy
    from ..sim.inputs import count_matrix, request_types_for
    from ..sim.loop import run_policy

    rt = request_types_for(idn, trace)
    if policy:
        res = run_policy(rt, make_policy(policy["name"], **(policy.get("params") or {})), count_matrix(rt, trace),
                         seed=int(policy.get("seed", 0)))  # fmt: skip
    else:
        res = run_policy(rt, Fixed(allocation=allocation), count_matrix(rt, trace))
    s = res.summary()
    total = float(res.slots["requests"].sum())
    tiers = {t: float(res.slots[f"served_{t}"].sum()) / total if total else 0.0 for t in TIERS}
    cost_per_slot = (res.slots["cost"] / res.slots["requests"].where(res.slots["requests"] > 0)).fillna(0.0)
    out = {"served_per_tier": tiers, "mean_accuracy": s["mean_accuracy"], "mean_latency_ms": s["mean_latency_ms"],
           "requests": total, "mean_cost": float(res.slots["cost"].sum() / total) if total else 0.0,
           "mean_cost_per_slot": cost_per_slot.tolist()}  # fmt: skip
    return {**out, "per_slot": predicted_rows(res.slots)} if per_slot else out


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
    reqs = schedule(trace, seed)
    n_slots = int(trace["slot"].max()) + 1 if len(trace) else 0
    # the prediction before the first request, so the dashboard draws it from the start (RUN/load.json)
    predicted = simulate(idn, trace, allocation, cfg.get("policy"), per_slot=True)
    feed_rows = predicted.pop("per_slot")
    if cfg.get("deterministic"):
        k0 = int(_get_json(nodes[0]["url"], "/v1/state")["slot"])
        feed = LoadFeed(run_dir, idn, k0, n_slots, feed_rows, *served_cost(idn), info=_feed_info(cfg, rate_scale)).start()
        token = (Path(run_dir) / "token").read_text().strip()
        # bounded in time: the slots' own length plus a minute's grace for the rounds
        deadline = time.time() + duration + 60.0
        recs, rounds = asyncio.run(_drive(reqs, urls, inputs, token, k0, n_slots, deadline, concurrency, timeout_s, feed.add))
        histories = {n["id"]: r for n, r in zip(nodes, zip(*rounds))} if rounds else {}
        sent = len(rounds)
    else:
        clock = SlotClock(cfg["epoch"], idn.slot_seconds)
        k0 = clock.now() + 1
        deadline = clock.start(k0) + duration
        feed = LoadFeed(run_dir, idn, k0, n_slots, feed_rows, *served_cost(idn), info=_feed_info(cfg, rate_scale)).start()
        recs = asyncio.run(_replay(reqs, urls, inputs, clock, k0, deadline, concurrency, timeout_s, on_record=feed.add))
        sent = int(reqs["slot"].max()) + 1 if len(reqs) else 0
        if cfg.get("policy"):  # the last slot's round ends a little after its boundary
            time.sleep(max(0.0, clock.start(k0 + sent + 1) - time.time()))
        histories = {n["id"]: _get_json(n["url"], "/v1/history", []) for n in nodes}
    report = summarize(idn, nodes, recs, files)
    sent_slots = trace[trace["slot"] < sent]
    report["simulated"] = predicted if sent == n_slots else simulate(idn, sent_slots, allocation, cfg.get("policy"))
    report["slots"] = per_slot(idn, recs, histories, k0, sent, report["simulated"])
    report["allocation"] = live_allocation(nodes, cfg.get("allocation") or {}) if cfg.get("policy") else allocation
    report["policy"] = cfg.get("policy") or {"name": "fixed"}
    report["deterministic"] = bool(cfg.get("deterministic"))
    # the names renamed in 0.2.0, under their old names too until 0.3.0 (idn.output_names)
    report["simulated"] = with_aliases(report["simulated"], {"accuracy": "mean_accuracy"})
    feed.close({k: report[k] for k in ("sent", "answered", "errors", "lost", "latency_ms", "served_per_tier")})
    return with_aliases(report, {"accuracy": "measured_accuracy", "catalog_accuracy": "mean_accuracy"})


def _feed_info(cfg: dict, rate_scale: float) -> dict:
    return {"policy": (cfg.get("policy") or {"name": "fixed"})["name"], "deterministic": bool(cfg.get("deterministic")),
            "rate_scale": rate_scale}  # fmt: skip


def _get_json(url: str, route: str, default=None):
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}{route}", timeout=5.0) as r:
            return json.loads(r.read())
    except OSError:
        if default is None:
            raise ValueError(f"{url}{route} did not answer (is 'idn serve' running?)") from None
        return default


def served_cost(idn: IDN):
    """(source, task, node, model) -> the scenario's cost C of that candidate
    entry, and (source, task) -> the repository's (the cost with no model nearby)."""
    from .routing import live_request_types

    rt = live_request_types(idn)
    cost, fallback = {}, {}
    for (src, task), rho in rt.key_index.items():
        sl = rt.entries(rho)
        for e in range(sl.start, sl.stop):
            cost[(src, task, idn.nodes[rt.node[e]].id, idn.models[rt.model[e]].id)] = float(rt.cost[e])
        fallback[(src, task)] = float(rt.cost[sl.stop - 1])
    return cost, fallback


def per_slot(idn: IDN, recs: list[dict], histories: dict, k0: int, n_slots: int, simulated: dict) -> list[dict]:
    """One object per trace slot: what the replay measured (requests, shares
    per tier, mean cost and gain of the requests answered), and what the
    nodes' control rounds at the end of that slot did (model loads, control
    messages and bytes, summed over the nodes)."""
    cost, fallback = served_cost(idn)
    tier_of = {n.id: n.tier for n in idn.nodes}
    rows = [{"slot": t, "requests": 0, "served_per_tier": {k: 0.0 for k in TIERS}, "model_loads": 0,
             "control_messages": 0, "control_bytes": 0, "messages_missed": 0, "mean_cost": 0.0, "gain": 0.0}
            for t in range(n_slots)]  # fmt: skip
    for r in recs:
        t = r.get("trace_slot", -1)
        if r["status"] != 200 or "prediction" not in r["body"] or not 0 <= t < n_slots:
            continue
        b, row = r["body"], rows[t]
        c = cost.get((r["source"], r["task"], b["node"], b["model"]), fallback[(r["source"], r["task"])])
        row["requests"] += 1
        row["served_per_tier"][tier_of[b["node"]]] += 1
        row["mean_cost"] += c
        row["gain"] += fallback[(r["source"], r["task"])] - c
    for hist in histories.values():
        for h in hist:
            t = int(h.get("slot", -1)) - k0
            if 0 <= t < n_slots:
                rows[t]["model_loads"] += int(h.get("model_loads", 0))
                rows[t]["control_messages"] += int(h.get("messages_sent", 0))
                rows[t]["control_bytes"] += int(h.get("bytes_sent", 0))
                rows[t]["messages_missed"] += int(h.get("messages_missed", 0))
    sim = simulated.get("mean_cost_per_slot", [])
    for row in rows:
        n = row["requests"]
        row["mean_cost"] = row["mean_cost"] / n if n else 0.0
        row["served_per_tier"] = {k: v / n if n else 0.0 for k, v in row["served_per_tier"].items()}
        if row["slot"] < len(sim):
            row["simulated_mean_cost"] = sim[row["slot"]]
    return rows


def summarize(idn: IDN, nodes: list[dict], recs: list[dict], files: dict) -> dict:
    tier_of = {n["id"]: n["tier"] for n in nodes}
    acc_of = {m.id: m.accuracy for m in idn.models}
    ok = [r for r in recs if r["status"] == 200 and "prediction" in r["body"]]
    answered = [r for r in recs if r["status"] is not None]
    lat = np.array([r["ms"] for r in ok]) if ok else np.zeros(1)
    per_tier = {t: 0 for t in TIERS}
    tier_ms: dict[str, list] = {t: [] for t in TIERS}
    tier_right: dict[str, list] = {t: [] for t in TIERS}
    per_node: dict[str, int] = {}
    per_model: dict[str, list] = {}
    for r in ok:
        b = r["body"]
        per_tier[tier_of[b["node"]]] += 1
        tier_ms[tier_of[b["node"]]].append(r["ms"])
        tier_right[tier_of[b["node"]]].append(b["prediction"] == r["label"])
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
        "mean_latency_ms": float(lat.mean()),
        "measured_accuracy": float(np.mean([c for v in per_model.values() for c in v])) if ok else 0.0,
        "mean_accuracy": float(np.mean([acc_of[r["body"]["model"]] for r in ok])) if ok else 0.0,
        "served_per_tier": {t: (c / n if n else 0.0) for t, c in per_tier.items()},
        # the trade-off, tier by tier: what the requests served there waited and how often they were right
        "per_tier": {t: {"served": per_tier[t], "latency_ms_p50": float(np.median(tier_ms[t])) if tier_ms[t] else None,
                         "latency_ms_mean": float(np.mean(tier_ms[t])) if tier_ms[t] else None,
                         "accuracy": float(np.mean(tier_right[t])) if tier_right[t] else None} for t in TIERS},
        "served_per_node": per_node,
        "per_model": {m: {"served": len(v), "accuracy": float(np.mean(v)), "catalog_accuracy": acc_of[m]} for m, v in sorted(per_model.items())},
        "error_reasons": errors,
    }  # fmt: skip


def format_report(rep: dict) -> str:
    sim = rep["simulated"]
    lines = [
        f"sent {rep['sent']}, answered {rep['answered']}, errors {rep['errors']}, lost {rep['lost']}",
        "latency ms: p50 {p50:.1f}, p95 {p95:.1f}, p99 {p99:.1f}, mean {mean:.1f} (simulated mean {m:.1f})".format(**rep["latency_ms"], m=sim["mean_latency_ms"]),
        f"accuracy: measured {rep['measured_accuracy']:.3f}, catalog for the models that served {rep['mean_accuracy']:.3f}, simulated {sim['mean_accuracy']:.3f}",
        f"{'tier':<10} {'measured':>9} {'simulated':>9} {'latency p50 ms':>14} {'mean ms':>8} {'accuracy':>8}",
    ]  # fmt: skip
    for t in TIERS:
        pt = rep["per_tier"][t]
        lat = "" if pt["served"] == 0 else f"{pt['latency_ms_p50']:>14.1f} {pt['latency_ms_mean']:>8.1f} {pt['accuracy']:>8.3f}"
        lines.append(f"{t:<10} {rep['served_per_tier'][t]:>9.3f} {sim['served_per_tier'][t]:>9.3f} {lat}".rstrip())
    for msg, c in rep["error_reasons"].items():
        lines.append(f"error x{c}: {msg}")
    if rep.get("slots") and rep.get("policy", {}).get("name") != "fixed":
        lines += ["", f"per slot (policy {rep['policy']['name']}; loads and messages: the round at the slot's end)",
                  f"{'slot':>4} {'reqs':>5} {'access':>6} {'edge':>5} {'region':>6} {'cloud':>5} {'loads':>5} "
                  f"{'msgs':>5} {'bytes':>7} {'missed':>6} {'cost':>7} {'sim cost':>8}"]  # fmt: skip
        for r in rep["slots"]:
            p = r["served_per_tier"]
            lines.append(f"{r['slot']:>4} {r['requests']:>5} {p['access']:>6.2f} {p['edge']:>5.2f} {p['regional']:>6.2f} "
                         f"{p['cloud']:>5.2f} {r['model_loads']:>5} {r['control_messages']:>5} {r['control_bytes']:>7} "
                         f"{r['messages_missed']:>6} {r['mean_cost']:>7.2f} {r.get('simulated_mean_cost', float('nan')):>8.2f}")  # fmt: skip
    return "\n".join(lines)
