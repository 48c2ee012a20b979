"""Faults in a live IDN: a node killed in the middle of a load, a node that
stops answering, and a clean stop of the whole IDN."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest
from runtime_helpers import IDN, constant_trace, infer, models_dir, serving, where  # noqa: F401

# every task is served at the edge, so every request passes through the node the test kills
ALLOCATION = {"edge-1": ["digits/digits-logreg", "wine/wine-logreg"], "ap-1": [], "ap-2": [], "regional-1": []}
PER_SLOT = {("ap-1", "digits"): 30, ("ap-1", "wine"): 20, ("ap-1", "breast_cancer"): 10,
            ("ap-2", "digits"): 30, ("ap-2", "wine"): 20, ("ap-2", "breast_cancer"): 10}  # fmt: skip
SLOTS = 4


@pytest.fixture(scope="module")
def cluster(models_dir, tmp_path_factory):  # noqa: F811
    run_dir = tmp_path_factory.mktemp("faults") / "run"
    with serving(models_dir / "live-demo.yaml", models_dir, run_dir, ALLOCATION, extra=["--hop-timeout", "0.5"]) as (nodes, proc):
        yield run_dir, nodes, proc


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _infer(url: str, task: str, n: int) -> dict:
    status, out = infer(url, task, [0.0] * n)
    assert status == 200, out
    return out


def test_a_silent_node_is_skipped_after_the_timeout(cluster):
    _, nodes, _ = cluster
    pid = nodes["regional-1"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.perf_counter()
        out = _infer(nodes["ap-1"]["url"], "breast_cancer", 30)
        waited = time.perf_counter() - t0
    finally:
        os.kill(pid, signal.SIGCONT)
    assert where(out)[2] == ["ap-1", "edge-1", "cloud"] and where(out)[0] == "cloud"
    assert waited >= 0.5  # it did wait for the silent node before skipping it
    assert _get(nodes["edge-1"]["url"] + "/v1/state")["counters"]["skipped_hops"] >= 1


def test_sigkill_mid_load_loses_no_request(cluster, models_dir, tmp_path):  # noqa: F811
    run_dir, nodes, _ = cluster
    trace = constant_trace(tmp_path / "t.csv", PER_SLOT, SLOTS)
    load = subprocess.Popen([*IDN, "load", str(models_dir / "live-demo.yaml"), "--run-dir", str(run_dir), "--trace", str(trace), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        # kill the edge once the load is well under way (a third of it has entered)
        deadline = time.time() + 60
        while sum(_get(nodes[a]["url"] + "/v1/state")["counters"]["received"] for a in ("ap-1", "ap-2")) < 80:
            assert time.time() < deadline and load.poll() is None, "the load did not start"
            time.sleep(0.05)
        os.kill(nodes["edge-1"]["pid"], signal.SIGKILL)
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
    # the edge served some before it died, the cloud took over after
    assert rep["served_per_node"].get("edge-1", 0) > 0 and rep["served_per_node"].get("cloud", 0) > 0
    skipped = sum(_get(nodes[a]["url"] + "/v1/state")["counters"]["skipped_hops"] for a in ("ap-1", "ap-2"))
    assert skipped > 0


def test_sigterm_stops_every_node(cluster):
    _, nodes, proc = cluster
    alive = [n["pid"] for n in nodes.values() if n["id"] != "edge-1"]  # edge-1 was killed above
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    assert proc.returncode == 0
    assert "stopped:" in proc.stdout.read()
    for pid in alive:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
