"""Live INFIDA under faults (issue 10): a node SIGKILLed in the middle of a
load on the wall clock, then restarted from its checkpoint; control calls
with a bad token or a body that does not parse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from runtime_helpers import IDN, constant_trace, models_dir, serving  # noqa: F401

PER_SLOT = {("ap-1", "digits"): 20, ("ap-1", "wine"): 10, ("ap-1", "breast_cancer"): 5,
            ("ap-2", "digits"): 20, ("ap-2", "wine"): 10, ("ap-2", "breast_cancer"): 5}  # fmt: skip
SLOTS = 14


@pytest.fixture(scope="module")
def cluster(models_dir, tmp_path_factory):  # noqa: F811
    run_dir = tmp_path_factory.mktemp("infida-faults") / "run"
    with serving(models_dir / "live-demo.yaml", models_dir, run_dir, None,
                 extra=["--policy", "infida", "--hop-timeout", "0.5"]) as (nodes, proc):  # fmt: skip
        yield run_dir, nodes, proc


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _put(url: str, body: bytes, token: str | None) -> int:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(url, data=body, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _wait(cond, what: str, timeout: float = 60.0):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, what
        time.sleep(0.1)


def test_bad_control_messages_are_refused_and_change_nothing(cluster):
    run_dir, nodes, _ = cluster
    token = (run_dir / "token").read_text().strip()
    url = nodes["edge-1"]["url"] + "/v1/control"
    before = _get(nodes["edge-1"]["url"] + "/v1/state")
    good_shape = json.dumps({"phase": "up", "slot": 10**6, "from": "ap-1", "messages": {}}).encode()
    assert _put(url, good_shape, None) == 401
    assert _put(url, good_shape, "not-the-token") == 401
    assert _put(url, b"{not json", token) == 400
    for bad in (
        {"phase": "sideways", "slot": 1, "from": "ap-1", "messages": {}},
        {"phase": "up", "slot": -1, "from": "ap-1", "messages": {}},
        {"phase": "up", "slot": 1, "from": "cloud", "messages": {}},  # the cloud sends nothing up to the edge
        {"phase": "up", "slot": 1, "from": "ap-1", "messages": {"999999": {"requests": 1, "entries": []}}},
        {"phase": "up", "slot": 1, "from": "ap-1", "messages": {"0": {"requests": float("nan"), "entries": []}}},
    ):
        assert _put(url, json.dumps(bad).encode(), token) == 400, bad
    after = _get(nodes["edge-1"]["url"] + "/v1/state")
    assert after["messages_received"] >= before["messages_received"]  # the rounds go on
    assert after["y"].keys() == before["y"].keys()


def test_sigkill_then_restart_resumes_from_the_checkpoint(cluster, models_dir, tmp_path):  # noqa: F811
    run_dir, nodes, _ = cluster
    trace = constant_trace(tmp_path / "t.csv", PER_SLOT, SLOTS)
    load = subprocess.Popen([*IDN, "load", str(models_dir / "live-demo.yaml"), "--run-dir", str(run_dir), "--trace", str(trace),
                             "--json", "--duration", str(SLOTS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    restarted = None
    edge = nodes["edge-1"]
    try:
        _wait(lambda: _get(edge["url"] + "/v1/state")["slot"] >= 3 and
              sum(_get(nodes[a]["url"] + "/v1/state")["counters"]["received"] for a in ("ap-1", "ap-2")) > 60,
              "the load did not start")  # fmt: skip
        missed = {n: _get(nodes[n]["url"] + "/v1/state")["messages_missed"] for n in ("ap-1", "ap-2", "regional-1")}
        killed_at = _get(edge["url"] + "/v1/state")["slot"]
        os.kill(edge["pid"], signal.SIGKILL)
        # its neighbours, below and above, miss its messages and count it
        _wait(lambda: all(_get(nodes[n]["url"] + "/v1/state")["messages_missed"] > missed[n] for n in missed),
              "the neighbours did not count the missing messages", timeout=30)  # fmt: skip
        log = open(tmp_path / "edge-restart.log", "wb")
        restarted = subprocess.Popen([sys.executable, "-m", "idn.runtime.node", str(run_dir), "edge-1"], stdout=log,
                                     stderr=subprocess.STDOUT)  # fmt: skip
        _wait(lambda: _healthy(edge["url"]), "the restarted node did not come up", timeout=120)
        state = _get(edge["url"] + "/v1/state")
        assert state["resumed_from_slot"] is not None and state["resumed_from_slot"] >= killed_at - 1
        assert "resumed from checkpoint" in (tmp_path / "edge-restart.log").read_text()
        metrics = urllib.request.urlopen(edge["url"] + "/metrics", timeout=10).read().decode()
        assert f'idn_resumed_from_slot{{node="edge-1"}} {float(state["resumed_from_slot"])}' in metrics
        # it takes part in the rounds again
        _wait(lambda: _get(edge["url"] + "/v1/state")["next_round"] > state["resumed_from_slot"] + 1, "no round after the restart", 30)
        out, err = load.communicate(timeout=180)
    finally:
        if load.poll() is None:
            load.kill()
            load.communicate()
        if restarted is not None:
            restarted.kill()
            restarted.wait()
    assert load.returncode == 0, err[-2000:]
    rep = json.loads(out)
    assert rep["sent"] == rep["answered"] == SLOTS * sum(PER_SLOT.values()) and rep["lost"] == 0
    assert rep["errors"] == 0, rep["error_reasons"]
    assert sum(r["messages_missed"] for r in rep["slots"]) > 0


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False
