"""``idn serve --backend ray`` on a real Ray cluster: three raylets on this
machine (``ray.cluster_utils.Cluster``, every one on 127.0.0.1, so all
traffic stays on loopback). One ``idn serve`` (live INFIDA on the wall
clock, nodes pinned to the raylets by custom resources) goes through the
story test after test: placement followed, a load fully answered, a raylet
lost in the middle of a load (nothing lost; the lost nodes skipped), its
nodes restarted on a raylet that joins with the same resource and resumed
from the checkpoints kept off the lost one, SIGTERM leaving no actor. A
second one (default placement, a fixed allocation) spreads over the raylets
and places a lost raylet's nodes again, with the allocation they held."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from runtime_helpers import IDN, constant_trace, infer, models_dir, run_cli, serving, where, write_json  # noqa: F401

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

PLACEMENT = {"ap-1": "site-a", "ap-2": "site-a", "edge-1": "site-b", "regional-1": "site-b", "cloud": "site-c"}
# digits (40 a slot from each access node) is more than one model's capacity at an access node
# (about 30 a slot), so requests climb every slot and the lost nodes are on their way
PER_SLOT = {("ap-1", "digits"): 40, ("ap-1", "wine"): 20, ("ap-1", "breast_cancer"): 10,
            ("ap-2", "digits"): 40, ("ap-2", "wine"): 20, ("ap-2", "breast_cancer"): 10}  # fmt: skip
SLOTS = 4
RAYLET = {"num_cpus": 0, "node_ip_address": "127.0.0.1", "object_store_memory": 80 * 2**20}


@pytest.fixture(scope="module")
def ray_cluster(request):
    """Three raylets, each with one site resource; shut down whatever happens."""
    from ray.cluster_utils import Cluster

    head = {**RAYLET, "include_dashboard": False, "dashboard_agent_listen_port": None, "resources": {"site-a": 1},
            # a raylet that stops answering is declared dead in ~1.5 s, not ~30 s
            "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                               "health_check_timeout_ms": 500}}  # fmt: skip
    cluster = Cluster(initialize_head=True, head_node_args=head)
    request.addfinalizer(cluster.shutdown)
    # Cluster writes its address where a bare ray.init() on this machine would join it: not ours to offer
    _reset_ray_address()
    raylets = {"site-a": cluster.head_node}
    for site in ("site-b", "site-c"):
        raylets[site] = cluster.add_node(**RAYLET, resources={site: 1})
    return cluster, raylets


def _reset_ray_address() -> None:
    try:
        from ray._common.utils import reset_ray_address
    except ImportError:  # older Rays
        from ray._private.utils import reset_ray_address
    reset_ray_address()


@pytest.fixture(scope="module")
def idn_on_ray(ray_cluster, models_dir, tmp_path_factory):  # noqa: F811
    cluster, _ = ray_cluster
    tmp = tmp_path_factory.mktemp("ray")
    extra = ["--backend", "ray", "--address", cluster.address, "--placement", str(write_json(tmp / "place.json", PLACEMENT)),
             "--policy", "infida", "--hop-timeout", "0.5"]  # fmt: skip
    with serving(models_dir / "live-demo.yaml", models_dir, tmp / "run", None, extra=extra) as (nodes, proc):
        yield tmp / "run", nodes, proc


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _infer(url: str, task: str, n: int) -> dict:
    """One request (Open Inference Protocol); where it was served and the nodes it passed."""
    status, out = infer(url, task, [0.0] * n)
    assert status == 200, out
    node, model, path = where(out)
    return {"node": node, "model": model, "hops": path}


def _nodes(run_dir) -> dict:
    return {n["id"]: n for n in json.loads((run_dir / "nodes.json").read_text())}


def test_every_node_runs_where_its_placement_says(ray_cluster, idn_on_ray):
    _, raylets = ray_cluster
    run_dir, nodes, proc = idn_on_ray
    assert set(nodes) == set(PLACEMENT)
    for n, site in PLACEMENT.items():
        assert nodes[n]["ray_node"] == raylets[site].node_id, (n, site)
        assert nodes[n]["host"] == "127.0.0.1" and nodes[n]["url"].startswith("http://127.0.0.1:")
        assert nodes[n]["resource"] == site and _get(nodes[n]["url"] + "/healthz")["node"] == n
    assert len({n["url"] for n in nodes.values()}) == len(nodes)
    said = {line.split(":")[0]: line.split(": ")[1].strip().split(", ") for line in proc.lines if line.startswith("Ray node ")}
    assert said == {f"Ray node {raylets[s].node_id[:8]} (127.0.0.1)": [n for n in nodes if PLACEMENT[n] == s] for s in raylets}
    info = json.loads((run_dir / "ray.json").read_text())
    assert set(info["actors"]) == set(PLACEMENT)
    # the driver sits on a raylet the next test does not remove
    assert info["driver_node"] != raylets["site-b"].node_id


def test_a_load_is_answered_across_the_raylets(idn_on_ray, models_dir, tmp_path):  # noqa: F811
    run_dir, nodes, _ = idn_on_ray
    trace = constant_trace(tmp_path / "t.csv", PER_SLOT, SLOTS)
    out = run_cli("load", models_dir / "live-demo.yaml", "--run-dir", run_dir, "--trace", trace, "--json")
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    n = SLOTS * sum(PER_SLOT.values())
    assert rep["sent"] == rep["answered"] == n and rep["errors"] == 0 and rep["lost"] == 0, rep["error_reasons"]
    # served beyond the access raylet, and INFIDA's messages crossed between the raylets
    assert sum(c for node, c in rep["served_per_node"].items() if not node.startswith("ap-")) > 0, rep["served_per_node"]
    assert sum(s["control_messages"] for s in rep["slots"]) >= 36  # at least one slot's 2(J - 1) x 6 types
    assert all((run_dir / "state" / f"{n}.npz").exists() for n in nodes)  # the keeper's copies, mirrored


def test_a_raylet_lost_mid_load_loses_no_request(ray_cluster, idn_on_ray, models_dir, tmp_path):  # noqa: F811
    cluster, raylets = ray_cluster
    run_dir, nodes, _ = idn_on_ray
    trace = constant_trace(tmp_path / "t.csv", PER_SLOT, SLOTS)
    load = subprocess.Popen([*IDN, "load", str(models_dir / "live-demo.yaml"), "--run-dir", str(run_dir), "--trace", str(trace),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        received0 = sum(_get(nodes[a]["url"] + "/v1/state")["counters"]["received"] for a in ("ap-1", "ap-2"))
        deadline = time.time() + 60
        while sum(_get(nodes[a]["url"] + "/v1/state")["counters"]["received"] for a in ("ap-1", "ap-2")) < received0 + 180:
            assert time.time() < deadline and load.poll() is None, "the load did not start"
            time.sleep(0.05)
        cluster.remove_node(raylets.pop("site-b"), allow_graceful=False)  # edge-1 and regional-1 with it
        out, err = load.communicate(timeout=120)
    finally:
        if load.poll() is None:
            load.kill()
            load.communicate()
    assert load.returncode == 0, err
    rep = json.loads(out)
    n = SLOTS * sum(PER_SLOT.values())
    assert rep["sent"] == rep["answered"] == n and rep["lost"] == 0
    assert rep["errors"] == 0, rep["error_reasons"]
    skipped = sum(_get(nodes[a]["url"] + "/v1/state")["counters"]["skipped_hops"] for a in ("ap-1", "ap-2"))
    assert skipped > 0 and rep["served_per_node"].get("cloud", 0) > 0  # past the lost edge and regional node


def test_the_lost_nodes_come_back_on_a_new_raylet_from_their_checkpoints(ray_cluster, idn_on_ray):
    from idn.sim.checkpoint import _read

    cluster, raylets = ray_cluster
    run_dir, before, _ = idn_on_ray
    kept = {n: _read(run_dir / "state" / f"{n}.npz")[0]["extra"]["slot"] for n in ("edge-1", "regional-1")}
    raylets["site-b"] = cluster.add_node(**RAYLET, resources={"site-b": 1})  # a machine with the resource joins
    deadline = time.time() + 90
    while True:
        now = _nodes(run_dir)
        if all(now[n]["ray_node"] == raylets["site-b"].node_id for n in ("edge-1", "regional-1")):
            break
        assert time.time() < deadline, "the lost nodes did not come back"
        time.sleep(0.2)
    for n in ("edge-1", "regional-1"):
        assert now[n]["url"] != before[n]["url"]
        st = _get(now[n]["url"] + "/v1/state")
        # resumed from exactly the checkpoint the keeper held (its mirror in RUN/state), not from scratch
        assert st["resumed_from_slot"] == kept[n] > 0, (n, st["resumed_from_slot"], kept)
    served = json.loads((run_dir / "serve.json").read_text())
    assert served["peers"] == {n: v["url"] for n, v in now.items()} and served["dashboard"].startswith("http://127.0.0.1:")
    # the others route to the new addresses: a request that climbs passes the new edge again
    # 96 at once, each on its own connection: more than ap-1's capacity for digits in a slot (about 33,
    # or 66 if it holds two digits models) even if a slot's end splits them, so some climb. Fewer
    # threads than requests would pace the arrivals at ap-1's own service rate (1 worker, 30 ms a
    # request: 33 a second, its capacity), and then none need climb
    with ThreadPoolExecutor(96) as pool:
        outs = list(pool.map(lambda _: _infer(now["ap-1"]["url"], "digits", 64), range(96)))
    climbed = [o for o in outs if o["node"] != "ap-1"]
    assert climbed and all(o["hops"][:2] == ["ap-1", "edge-1"] for o in climbed), outs
    # and INFIDA's rounds reach the new addresses: edge-1 runs its rounds, and the bundles its
    # neighbours send it (up from ap-1, down from regional-1) are taken, none failing any more
    states = [{n: _get(now[n]["url"] + "/v1/state") for n in ("ap-1", "edge-1", "regional-1")}]
    time.sleep(3.5)
    states.append({n: _get(now[n]["url"] + "/v1/state") for n in ("ap-1", "edge-1", "regional-1")})
    assert states[1]["edge-1"]["next_round"] >= states[0]["edge-1"]["next_round"] + 2
    for n in ("ap-1", "regional-1"):
        assert states[1][n]["sends_failed"] == states[0][n]["sends_failed"], (n, states)
        assert states[1][n]["bundles_sent"] >= states[0][n]["bundles_sent"] + 2, (n, states)


def test_sigterm_leaves_no_actor_alive(ray_cluster, idn_on_ray):
    cluster, _ = ray_cluster
    run_dir, _, proc = idn_on_ray
    pids = [n["pid"] for n in _nodes(run_dir).values()]
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    log = proc.stdout.read()
    assert proc.returncode == 0, log
    # said once the raylet is declared dead, with every node it held; before that, per actor as each call failed
    said = [line for line in log.splitlines() if line.startswith("lost Ray node")]
    assert len(said) == 1 and said[0].endswith(" (127.0.0.1) with IDN node(s) regional-1, edge-1"), log
    early = [line for line in log.splitlines() if line.startswith("IDN node(s)")]
    assert all(x.split(" on Ray node ")[0][len("IDN node(s) "):] in ("regional-1", "edge-1", "regional-1, edge-1") for x in early), log
    assert "edge-1: rejoined on Ray node" in log and "stopped:" in log
    _all_dead(cluster, run_dir, pids)


def _all_dead(cluster, run_dir, pids) -> None:
    """Every actor of the run (nodes and keeper) DEAD in Ray's own table, and their processes gone."""
    names = json.loads((run_dir / "ray.json").read_text())
    ours = set(names["actors"].values()) | {names["keeper"]}
    states = {a["Name"]: a["State"] for a in cluster.global_state.actor_table(None).values() if a["Name"] in ours}
    assert set(states) == ours and set(states.values()) == {"DEAD"}, states
    deadline = time.time() + 20
    for pid in pids:
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            assert time.time() < deadline, f"process {pid} still alive"
            time.sleep(0.1)


def test_default_placement_spreads_and_places_a_lost_node_again(ray_cluster, models_dir, tmp_path):  # noqa: F811
    """No --placement, a fixed allocation: the nodes spread over the raylets, a
    tier apart; a raylet lost, its nodes are created again on the live ones by
    the same rule and rejoin with the allocation they held (here changed by
    hand before the loss, not the launch's)."""
    from idn.runtime.ray_placement import RayHost, choose_host

    cluster, _ = ray_cluster
    raylets = {r.node_id: r for r in [cluster.head_node, *cluster.worker_nodes]}
    alloc = {"ap-1": ["wine/wine-logreg"], "ap-2": [], "edge-1": ["digits/digits-logreg"], "regional-1": []}
    with serving(models_dir / "live-demo.yaml", models_dir, tmp_path / "run", alloc,
                 extra=["--backend", "ray", "--address", cluster.address]) as (nodes, proc):  # fmt: skip
        run_dir = tmp_path / "run"
        assert {n["ray_node"] for n in nodes.values()} == set(raylets)  # every raylet used
        assert nodes["ap-1"]["ray_node"] != nodes["ap-2"]["ray_node"]  # a tier apart
        driver = json.loads((run_dir / "ray.json").read_text())["driver_node"]
        victim = next(r for r in sorted(raylets) if r != driver and r != nodes["cloud"]["ray_node"])
        lost = [n for n, v in nodes.items() if v["ray_node"] == victim]  # in the scenario's order, as nodes.json
        target = lost[0]  # changed by hand: it must come back with this, not the launch's allocation
        req = urllib.request.Request(nodes[target]["url"] + "/v1/allocation", method="PUT",
                                     data=json.dumps({"models": ["breast_cancer/breast_cancer-logreg"]}).encode(),
                                     headers={"Authorization": f"Bearer {(run_dir / 'token').read_text().strip()}"})  # fmt: skip
        assert urllib.request.urlopen(req, timeout=10).status == 200
        time.sleep(2.0)  # the actor hands its allocation to the keeper within 0.25 s
        pids = [n["pid"] for n in nodes.values()]
        cluster.remove_node(raylets[victim], allow_graceful=False)
        # where the rule puts them: the live raylets, given where the others are
        live = [RayHost(r, "127.0.0.1") for r in sorted(raylets) if r != victim]
        where = {n: v["ray_node"] for n, v in nodes.items() if n not in lost}
        tier_of = {n: v["tier"] for n, v in nodes.items()}
        expect = {}
        for n in lost:  # one after the other, as idn serve places them
            expect[n] = where[n] = choose_host(tier_of[n], live, where, tier_of)
        deadline = time.time() + 90
        while True:
            now = _nodes(run_dir)
            if all(now[n]["url"] != nodes[n]["url"] for n in lost):
                break
            assert time.time() < deadline, "the lost nodes were not placed again"
            time.sleep(0.2)
        for n in lost:
            assert now[n]["ray_node"] == expect[n], (n, now[n], expect)
            st = _get(now[n]["url"] + "/v1/state")
            want = ["breast_cancer/breast_cancer-logreg"] if n == target else alloc[n]
            assert st["allocation"] == want and "resumed_from_slot" not in st, (n, st["allocation"], want)  # no live policy
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log = proc.stdout.read()
        assert f"lost Ray node {victim[:8]} (127.0.0.1) with IDN node(s) {', '.join(lost)}" in log, log
        assert all(f"{n}: a new actor on Ray node {expect[n][:8]} (its Ray node is gone)" in log for n in lost), log
    _all_dead(cluster, run_dir, pids)
