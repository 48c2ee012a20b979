"""Live INFIDA (issue 10): node processes on loopback learn their allocations
from their own requests and their path neighbours' control messages, and in
deterministic mode do exactly what the simulator does.

The scenario is the live demo with two tasks and small budgets: an access
node holds one task's small models, not both, so which task is popular
decides what it should host. The trace makes task A popular for 20 slots,
then task B for 20."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest
import yaml
from runtime_helpers import models_dir, run_cli, serving  # noqa: F401

from idn import serving as serving_math
from idn.model.scenario import load_scenario
from idn.policies.registry import make_policy
from idn.sim.inputs import count_matrix, request_types_for

SLOTS, CHANGE = 40, 20
A, B = "digits", "breast_cancer"
FOLLOW_WITHIN = 5  # slots after the change by which the access nodes host B's models only
# (size MB, accuracy, cpu ms) of the two tasks' models, as one machine measured them
PINNED = {
    "digits-logreg": (0.004416, 0.963293, 0.0052675),
    "digits-mlp-small": (0.004207, 0.905451, 0.0065645),
    "digits-mlp-large": (0.021012, 0.965517, 0.0069905),
    "digits-forest": (0.441357, 0.951057, 0.00657),
    "breast_cancer-logreg": (0.001028, 0.978947, 0.004467),
    "breast_cancer-mlp-small": (0.00256, 0.961404, 0.0076965),
    "breast_cancer-mlp-large": (0.009732, 0.97193, 0.011998),
    "breast_cancer-forest": (0.01591, 0.947368, 0.004617),
}
PINNED_SPEED = {"cloud": 0.013, "regional": 0.0065, "edge": 0.0013, "access": 0.0001625}


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _post(url: str, body: dict, token: str) -> int:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _concurrently(call, n: int) -> list:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: call(), range(n)))


@pytest.fixture(scope="module")
def setup(models_dir, tmp_path_factory):  # noqa: F811
    """The two-task scenario (next to the built catalog) and the shifting trace."""
    demo = yaml.safe_load((models_dir / "live-demo.yaml").read_text())
    # The built catalog's sizes and service times are measured on the machine
    # that builds it; the test pins them (and the speeds), so that what INFIDA
    # learns here is what it learns on any machine (the live models still serve).
    catalog = pd.read_csv(models_dir / "catalog.csv").set_index("model")
    for model, (size_mb, accuracy, ms) in PINNED.items():
        catalog.loc[model, ["size_mb", "top1_accuracy", "cpu_ms_per_step", "gpu_ms_per_step"]] = [size_mb, accuracy, ms, ms]
    catalog = catalog.reset_index()
    catalog.to_csv(models_dir / "live-infida-catalog.csv", index=False)
    demo["catalog"] = "live-infida-catalog.csv"
    for n in demo["nodes"]:
        n["speed"] = PINNED_SPEED[n["tier"]]
    smallest = catalog.groupby("task")["size_mb"].min()
    b = float(1.05 * max(smallest[A], smallest[B]))
    assert b < smallest[A] + smallest[B]  # one task's smallest model, not both
    for n in demo["nodes"]:
        if n["tier"] == "access":
            n["budget_mb"] = b
        elif n["tier"] == "edge":
            n["budget_mb"] = 2 * b
    demo["tasks"] = [t for t in demo["tasks"] if t["id"] in (A, B)]
    demo["name"] = "live-infida-test"
    scenario = models_dir / "live-infida-test.yaml"
    scenario.write_text(yaml.safe_dump(demo))
    rows = [(t, s, task, 20 if task == (A if t < CHANGE else B) else 2)
            for t in range(SLOTS) for s in ("ap-1", "ap-2") for task in (A, B)]  # fmt: skip
    trace = pd.DataFrame(rows, columns=["slot", "source", "task", "count"])
    trace_path = tmp_path_factory.mktemp("live-infida") / "trace.csv"
    trace.to_csv(trace_path, index=False)
    return scenario, trace, trace_path


def _simulated(scenario, trace, seed=3):
    """The simulator's INFIDA (coupled rounding) on the same trace and seed:
    the allocation of every slot, and its control messages per slot."""
    idn = load_scenario(scenario)
    rt = request_types_for(idn, trace)
    counts = count_matrix(rt, trace)
    policy = make_policy("infida", rounding="coupled").start(rt, seed)
    allocations, messages = [], []
    for t in range(counts.shape[0]):
        allocations.append(policy.propose().copy())
        policy.learn(counts[t], serving_math.capacity_share(rt, counts[t]))
        messages.append(policy.control_messages)
    allocations.append(policy.propose().copy())
    return idn, rt, counts, allocations, messages


@pytest.fixture(scope="module")
def live_run(setup, models_dir, tmp_path_factory):  # noqa: F811
    scenario, trace, trace_path = setup
    run_dir = tmp_path_factory.mktemp("live-infida-run") / "run"
    extra = ["--policy", "infida", "--deterministic", "--seed", "3"]
    with serving(scenario, models_dir, run_dir, None, extra=extra) as (nodes, proc):
        out = run_cli("load", scenario, "--run-dir", run_dir, "--trace", trace_path, "--duration", SLOTS, "--json",
                      timeout=600)  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        report = json.loads(out.stdout)
        history = {n: _get(f"{node['url']}/v1/history") for n, node in nodes.items()}
        states = {n: _get(f"{node['url']}/v1/state") for n, node in nodes.items()}
        metrics = {n: urllib.request.urlopen(f"{node['url']}/metrics", timeout=10).read().decode() for n, node in nodes.items()}
    return report, history, states, metrics


def test_live_allocations_equal_the_simulators_slot_by_slot(setup, live_run):
    scenario, trace, _ = setup
    report, history, _, _ = live_run
    idn, _, _, allocations, _ = _simulated(scenario, trace)
    assert report["sent"] == report["answered"] == int(trace["count"].sum())
    compared = 0
    for node_id, records in history.items():
        v = idn.node_index[node_id]
        if idn.repository[v]:
            continue
        assert [r["slot"] for r in records] == list(range(SLOTS))
        for r in records:  # the round at the end of slot t sets the allocation of slot t + 1
            want = sorted(idn.models[m].id for m in np.flatnonzero(allocations[r["slot"] + 1][v] > 0.5))
            assert sorted(r["allocation"]) == want, (node_id, r["slot"])
            compared += 1
    assert compared == 4 * SLOTS


def test_control_messages_are_2_j_minus_1_per_active_type_and_none_missed(setup, live_run):
    scenario, trace, _ = setup
    report, history, states, metrics = live_run
    _, rt, counts, _, sim_messages = _simulated(scenario, trace)
    path_len = np.diff(rt.path_offsets)
    for t, row in enumerate(report["slots"]):
        want = int(np.sum(2 * (path_len - 1)[counts[t] > 0]))
        assert row["control_messages"] == want == sim_messages[t], t
        assert row["messages_missed"] == 0
    # every message sent was received, by the node it was meant for
    assert sum(s["messages_sent"] for s in states.values()) == sum(s["messages_received"] for s in states.values()) > 0
    assert all(s["messages_missed"] == 0 and s["slot"] == SLOTS for s in states.values())
    assert set(states["ap-1"]["y"]) <= {m for m in states["ap-1"]["y"]} and states["ap-1"]["y"]
    assert 'idn_control_messages_sent_total{node="edge-1"}' in metrics["edge-1"]
    assert 'idn_policy_state{model=' in metrics["ap-1"]


def test_the_access_follows_the_popular_task_and_beats_a_frozen_allocation(setup, live_run, models_dir, tmp_path):  # noqa: F811
    """The access nodes (budget: one task's small models) hold A's models
    before the change and only B's from FOLLOW_WITHIN slots after it. (The
    edge, with twice that budget, holds what the access nodes leave
    unserved; it is not asserted on: which task that is depends on the
    seed's rounding.) After the change the mean cost, measured live, beats
    the allocation held when the change came, kept and measured live too."""
    scenario, trace, _ = setup
    report, history, _, _ = live_run
    for n in ("ap-1", "ap-2"):
        # the allocation of slot t + 1 is set at the end of slot t
        tasks = [{m.split("/")[0] for m in r["allocation"]} for r in history[n]]
        assert tasks[CHANGE - 2] == {A}, (n, tasks)
        assert all(held == {B} for held in tasks[CHANGE - 1 + FOLLOW_WITHIN :]), (n, tasks)
    # the allocation held when the change came, kept: the same requests, measured live
    frozen = {n: history[n][CHANGE - 2]["allocation"] for n in ("ap-1", "ap-2", "edge-1", "regional-1")}
    after = trace[trace["slot"] >= CHANGE].assign(slot=lambda d: d["slot"] - CHANGE)
    after_path = tmp_path / "after.csv"
    after.to_csv(after_path, index=False)
    with serving(scenario, models_dir, tmp_path / "frozen", frozen, extra=["--deterministic"]) as (nodes, _):
        out = run_cli("load", scenario, "--run-dir", tmp_path / "frozen", "--trace", after_path, "--json", "--duration", SLOTS,
                      timeout=600)  # fmt: skip
        # a slot is ended once: the same call twice at once (a driver retrying) gets one 200 and one 400
        token = (tmp_path / "frozen" / "token").read_text().strip()
        statuses = _concurrently(lambda: _post(nodes["ap-1"]["url"] + "/v1/slot", {"end": SLOTS - CHANGE}, token), 2)
        assert sorted(statuses) == [200, 400]
    assert out.returncode == 0, out.stderr[-2000:]
    frozen_rows = json.loads(out.stdout)["slots"]
    live_rows = report["slots"][CHANGE:]
    live_cost = sum(r["mean_cost"] * r["requests"] for r in live_rows) / sum(r["requests"] for r in live_rows)
    frozen_cost = sum(r["mean_cost"] * r["requests"] for r in frozen_rows) / sum(r["requests"] for r in frozen_rows)
    assert live_cost < 0.85 * frozen_cost, (live_cost, frozen_cost)


def test_live_mean_cost_per_slot_is_the_simulators(live_run):
    """Deterministic mode: every slot's requests are answered before the slot
    ends, so the only difference left is the capacity's timing (shares from
    the last slot's counts, ceil(l) requests) (docs/live.md)."""
    report, _, _, _ = live_run
    rows = report["slots"]
    live = np.array([r["mean_cost"] for r in rows])
    sim = np.array([r["simulated_mean_cost"] for r in rows])
    assert np.mean(np.abs(live - sim) / sim) < 0.05, np.round(np.c_[live, sim], 2).tolist()


@pytest.mark.parametrize("name", ["lfu", "lru", "local-greedy"])
def test_the_other_per_node_policies_equal_the_simulators(setup, models_dir, tmp_path, name):  # noqa: F811
    """LFU and LRU live: each node counts its hits and misses from the
    requests that pass through it and runs the simulator's update on its own
    cache, with no control message. local-greedy live: INFIDA's messages,
    with the whole list sent back down, give each node the counts, shares
    and allocations its refill reads; it refills with the simulator's code."""
    scenario, trace, trace_path = setup
    idn = load_scenario(scenario)
    rt = request_types_for(idn, trace)
    counts = count_matrix(rt, trace)
    policy = make_policy(name).start(rt, 5)
    allocations = [policy.propose()]
    for t in range(counts.shape[0]):
        policy.learn(counts[t], serving_math.capacity_share(rt, counts[t]))
        allocations.append(policy.propose())
    extra = ["--policy", name, "--deterministic", "--seed", "5"]
    with serving(scenario, models_dir, tmp_path / "run", None, extra=extra) as (nodes, _):
        out = run_cli("load", scenario, "--run-dir", tmp_path / "run", "--trace", trace_path, "--duration", SLOTS, "--json",
                      timeout=600)  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        history = {n: _get(f"{node['url']}/v1/history") for n, node in nodes.items()}
    report = json.loads(out.stdout)
    path_len = np.diff(rt.path_offsets)
    for t, row in enumerate(report["slots"]):
        want = 0 if name in ("lfu", "lru") else int(np.sum(2 * (path_len - 1)[counts[t] > 0]))
        assert row["control_messages"] == want and row["messages_missed"] == 0
    for node_id in ("ap-1", "ap-2", "edge-1", "regional-1"):
        v = idn.node_index[node_id]
        assert [r["slot"] for r in history[node_id]] == list(range(SLOTS))
        for r in history[node_id]:  # the allocation of slot t + 1, set at the end of slot t
            want = sorted(idn.models[m].id for m in np.flatnonzero(allocations[r["slot"] + 1][v] > 0.5))
            assert sorted(r["allocation"]) == want, (node_id, r["slot"])
    # each follows the change too (LFU more slowly than INFIDA: frequency admission waits for B to outscore A)
    assert {m.split("/")[0] for m in history["ap-1"][SLOTS - 1]["allocation"]} == {B}
