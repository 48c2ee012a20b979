"""The live IDN end to end: real node processes on loopback serving real ONNX
models, loaded by ``idn load``, measured against the simulator."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from runtime_helpers import constant_trace, infer, models_dir, run_cli, serving, where  # noqa: F401

# wine at the access nodes (their capacity binds: the rest climbs to the
# cloud), digits at the edge, breast cancer at the regional node
ALLOCATION = {
    "ap-1": ["wine/wine-logreg"],
    "ap-2": ["wine/wine-logreg"],
    "edge-1": ["digits/digits-logreg"],
    "regional-1": ["breast_cancer/breast_cancer-logreg"],
}
PER_SLOT = {("ap-1", "digits"): 20, ("ap-1", "wine"): 30, ("ap-1", "breast_cancer"): 15,
            ("ap-2", "digits"): 20, ("ap-2", "wine"): 30, ("ap-2", "breast_cancer"): 15}  # fmt: skip
SLOTS = 4


@pytest.fixture(scope="module")
def cluster(models_dir, tmp_path_factory):  # noqa: F811
    run_dir = tmp_path_factory.mktemp("live") / "run"
    with serving(models_dir / "live-demo.yaml", models_dir, run_dir, ALLOCATION) as (nodes, _):
        yield run_dir, nodes


def _post(url: str, data: bytes, headers=None, method="POST") -> tuple[int, dict]:
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_load_matches_the_simulator(cluster, models_dir, tmp_path):  # noqa: F811
    run_dir, nodes = cluster
    assert len(nodes) >= 4
    trace = constant_trace(tmp_path / "t.csv", PER_SLOT, SLOTS)
    out = run_cli("load", models_dir / "live-demo.yaml", "--run-dir", run_dir, "--trace", trace, "--json")
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    n = SLOTS * sum(PER_SLOT.values())
    assert rep["sent"] == rep["answered"] == n
    assert rep["errors"] == 0 and rep["lost"] == 0
    # accuracy: what the catalog predicts for the models that actually served
    assert abs(rep["accuracy"] - rep["catalog_accuracy"]) <= 0.03
    served = {t: f for t, f in rep["served_per_tier"].items() if f > 0}
    assert len(served) >= 3, rep["served_per_tier"]
    sim = rep["simulated"]
    assert sim["requests"] == n
    for tier, frac in rep["served_per_tier"].items():
        assert abs(frac - sim["served_per_tier"][tier]) <= 0.05, (tier, rep["served_per_tier"], sim["served_per_tier"])
    assert rep["allocation"] == ALLOCATION  # the simulator saw the allocation in force
    p = rep["latency_ms"]
    assert 0 < p["p50"] <= p["p95"] <= p["p99"]


def test_bad_input_gets_a_4xx_and_the_node_stays_up(cluster):
    _, nodes = cluster
    url = nodes["ap-1"]["url"] + "/v2/models/wine/infer"
    status, body = _post(url, b"{not json")
    assert status == 400 and "malformed JSON" in body["error"]
    status, body = _post(nodes["ap-1"]["url"] + "/v2/models/speech/infer", b"{}")
    assert status == 404 and "unknown model 'speech'" in body["error"]
    status, body = infer(nodes["ap-1"]["url"], "wine", [1.0, 2.0])
    assert status == 400 and "shape [1, 13]" in body["error"] and "[1, 2]" in body["error"]
    one = {"name": "X", "shape": [1, 13], "datatype": "FP32"}
    status, body = _post(url, json.dumps({"inputs": [{**one, "data": "abc"}]}).encode())
    assert status == 400 and "'data'" in body["error"]
    status, body = _post(url, json.dumps({"inputs": [{**one, "data": ["1"] * 13}]}).encode())
    assert status == 400 and "13 numbers" in body["error"]
    status, body = _post(url, json.dumps({"inputs": [{**one, "name": "x", "data": [0] * 13}]}).encode())
    assert status == 400 and "unknown input 'x'" in body["error"]
    status, body = _post(url, json.dumps([1, 2]).encode())
    assert status == 400
    status, body = _post(nodes["ap-1"]["url"] + "/v1/infer", json.dumps({"task": "wine", "input": [0.0] * 13}).encode())
    assert status == 410 and "/v2/models/{task}/infer" in body["error"]
    status, body = infer(nodes["ap-1"]["url"], "wine", [0.0] * 13)
    assert status == 200 and where(body) == ("ap-1", "wine/wine-logreg", ["ap-1"]) and body["parameters"]["idn_hops"] == 0
    with urllib.request.urlopen(nodes["ap-1"]["url"] + "/healthz", timeout=5) as r:
        assert r.status == 200


def test_control_needs_the_token_and_loads_for_real(cluster):
    run_dir, nodes = cluster
    token = (run_dir / "token").read_text().strip()
    url = nodes["ap-2"]["url"]
    body = json.dumps({"models": ["wine/wine-logreg", "digits/digits-mlp-small"]}).encode()
    status, out = _post(url + "/v1/allocation", body, method="PUT")
    assert status == 401 and "Bearer" in out["error"]
    status, out = _post(url + "/v1/allocation", body, {"Authorization": "Bearer wrong"}, method="PUT")
    assert status == 401
    status, out = _post(url + "/v1/allocation", json.dumps({"models": ["nope/x"]}).encode(),
                        {"Authorization": f"Bearer {token}"}, method="PUT")  # fmt: skip
    assert status == 400 and "unknown model 'nope/x'" in out["error"]
    status, out = _post(url + "/v1/allocation", body, {"Authorization": f"Bearer {token}"}, method="PUT")
    assert status == 200, out
    assert out["loaded"] == ["digits/digits-mlp-small"] and out["unloaded"] == []
    with urllib.request.urlopen(url + "/v1/state", timeout=5) as r:
        state = json.loads(r.read())
    assert sorted(state["allocation"]) == ["digits/digits-mlp-small", "wine/wine-logreg"]
    assert state["loads"] == 2 and state["models_loaded"] == 2
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        metrics = r.read().decode()
    assert 'idn_model_loads_total{model="digits/digits-mlp-small",node="ap-2"} 1.0' in metrics
    assert "idn_requests_received_total" in metrics
    # a digits request entering at ap-2 is now served there, with the new model
    # (on a loaded machine the first request can land on a slot whose share of the new model is
    # not yet reserved for its type; the next slots serve it: tries bounded in count and time, 30 x 0.3 s,
    # enough for several 1 s slots even when the machine is busy)
    for _ in range(30):
        status, out = infer(url, "digits", [0.0] * 64)
        assert status == 200
        if where(out)[0] == "ap-2":
            break
        time.sleep(0.3)
    assert where(out)[:2] == ("ap-2", "digits/digits-mlp-small")
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        assert "idn_service_seconds_bucket" in r.read().decode()  # the request served here was timed
    # swap back: one unload; ap-1 never hosted digits, so its digits requests still go to the edge
    status, out = _post(url + "/v1/allocation", json.dumps({"models": ["wine/wine-logreg"]}).encode(),
                        {"Authorization": f"Bearer {token}"}, method="PUT")  # fmt: skip
    assert status == 200 and out["unloaded"] == ["digits/digits-mlp-small"]
    status, out = infer(nodes["ap-1"]["url"], "digits", [0.0] * 64)
    assert status == 200 and where(out)[2] == ["ap-1", "edge-1"] and out["parameters"]["idn_hops"] == 1


def test_an_announced_allocation_changes_the_routes_below(cluster):
    run_dir, nodes = cluster
    token = (run_dir / "token").read_text().strip()
    auth = {"Authorization": f"Bearer {token}"}
    status, out = infer(nodes["ap-1"]["url"], "breast_cancer", [0.0] * 30)
    assert where(out)[0] == "regional-1"
    status, out = _post(nodes["edge-1"]["url"] + "/v1/allocation",
                        json.dumps({"models": ["wine/wine-logreg", "breast_cancer/breast_cancer-mlp-small"]}).encode(),
                        auth, method="PUT")  # fmt: skip
    assert status == 200
    with urllib.request.urlopen(nodes["ap-1"]["url"] + "/v1/state", timeout=5) as r:
        assert json.loads(r.read())["counters"]["announcements"] >= 1
    status, out = infer(nodes["ap-1"]["url"], "breast_cancer", [0.0] * 30)
    assert status == 200 and where(out)[:2] == ("edge-1", "breast_cancer/breast_cancer-mlp-small")
