"""The Open Inference Protocol at a live IDN node (issue 19): the real
``tritonclient.http`` against a running ``idn serve``, the protocol's two
encodings checked against tritonclient's own encoder and decoder, and the
trust rules between nodes (a forged forwarded request, forged forwarding
fields, bodies nested 100,000 deep)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from runtime_helpers import infer, models_dir, serving, where  # noqa: F401

httpclient = pytest.importorskip("tritonclient.http")

from idn.runtime import forwarding  # noqa: E402
from idn.runtime.models import _session, predict_all, read_catalog_files  # noqa: E402
from idn.runtime.oip import ProtocolError, encode_response, parse_infer  # noqa: E402

# digits served where it enters (ap-1), wine one hop up (edge-1), breast cancer two (regional-1)
ALLOCATION = {"ap-1": ["digits/digits-logreg"], "ap-2": [], "edge-1": ["wine/wine-mlp-small"],
              "regional-1": ["breast_cancer/breast_cancer-forest"]}  # fmt: skip
EXPECTED = {"digits": ("ap-1", 0), "wine": ("edge-1", 1), "breast_cancer": ("regional-1", 2)}
DEEP = [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000]


@pytest.fixture(scope="module")
def cluster(models_dir, tmp_path_factory):  # noqa: F811
    run_dir = tmp_path_factory.mktemp("oip") / "run"
    with serving(models_dir / "live-demo.yaml", models_dir, run_dir, ALLOCATION, extra=["--no-emulation"]) as (nodes, _):
        yield run_dir, nodes


def _raw(url: str, body: bytes, headers=None, method="POST") -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _state(url: str) -> dict:
    with urllib.request.urlopen(url + "/v1/state", timeout=10) as r:
        return json.loads(r.read())


# ---- the encodings, against tritonclient's own code (no process) -----------------------------


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("dtype,triton", [(np.float32, "FP32"), (np.float64, "FP64"), (np.int32, "INT32")])
def test_a_tritonclient_request_parses_to_its_row(binary, dtype, triton):
    from tritonclient.http._utils import _get_inference_request

    rng = np.random.default_rng(3)
    x = (rng.normal(size=(1, 13)) * 10).astype(dtype)
    inp = httpclient.InferInput("X", [1, 13], triton)
    inp.set_data_from_numpy(x, binary_data=binary)
    outs = [httpclient.InferRequestedOutput("probabilities", binary_data=not binary)]
    body, header_length = _get_inference_request([inp], "req-7", outs, 0, False, False, 0, None, None)
    req = parse_infer(body, None if header_length is None else str(header_length), "wine", 13)
    np.testing.assert_array_equal(req.x, x.astype(np.float32))
    assert req.id == "req-7" and req.outputs == (("probabilities", not binary),)
    # no outputs named: tritonclient asks for all of them, binary
    body, header_length = _get_inference_request([inp], "", None, 0, False, False, 0, None, None)
    req = parse_infer(body, None if header_length is None else str(header_length), "wine", 13)
    assert req.id is None and req.outputs == (("label", True), ("probabilities", True))


@pytest.mark.parametrize("binary", [True, False])
def test_an_answer_decodes_with_tritonclient(binary):
    req = parse_infer(json.dumps({"id": "a", "inputs": [{"name": "X", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}],
                                  "outputs": [{"name": "label", "parameters": {"binary_data": binary}},
                                              {"name": "probabilities", "parameters": {"binary_data": binary}}]}).encode(),
                      None, "t", 2)  # fmt: skip
    label, probs = np.array([7], np.int64), np.array([[0.25, 0.125, 0.625]], np.float32)
    body, hl = encode_response("t", req, label, probs, {"idn_node": "ap-1"})
    assert (hl is not None) == binary
    res = httpclient.InferResult.from_response_body(body, header_length=hl)
    np.testing.assert_array_equal(res.as_numpy("label"), label)
    np.testing.assert_array_equal(res.as_numpy("probabilities"), probs)
    assert res.get_response()["id"] == "a" and res.get_response()["parameters"]["idn_node"] == "ap-1"


def test_bodies_that_do_not_parse_are_refused_with_a_message():
    one = {"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}
    cases = [
        (b"", None, "malformed JSON"), (b"\xff\xfe", None, "malformed JSON"), *[(d, None, "nested too deep") for d in DEEP],
        (json.dumps({"inputs": [one]}).encode(), "abc", "Inference-Header-Content-Length"),
        (json.dumps({"inputs": [one]}).encode(), "99999", "Inference-Header-Content-Length"),
        (json.dumps({"inputs": [{**one, "data": None, "parameters": {"binary_data_size": 12}}]}).encode() + b"\0" * 12, None,
         "malformed JSON"),  # no header length: the bytes after the JSON are not JSON
        (json.dumps({"inputs": [{**one, "datatype": "BYTES"}]}).encode(), None, "datatype"),
        (json.dumps({"inputs": [{**one, "data": [1, 2, float("nan")]}]}).encode(), None, "malformed JSON"),
        (json.dumps({"inputs": [{**one, "data": [1, 2, 1e39]}]}).encode(), None, "not finite"),
        (json.dumps({"inputs": [{**one, "data": [[1, 2], [3, 4]]}]}).encode(), None, "3 numbers"),
        (json.dumps({"inputs": [one], "outputs": [{"name": "label", "parameters": {"classification": 2}}]}).encode(), None, "classification"),
        (json.dumps({"inputs": [one], "outputs": [{"name": "logits"}]}).encode(), None, "unknown output 'logits'"),
        (json.dumps({"inputs": [one], "id": 5}).encode(), None, "'id'"),
        (json.dumps({"inputs": [one, one]}).encode(), None, "list of one tensor"),
    ]  # fmt: skip
    for body, hl, words in cases:
        with pytest.raises(ProtocolError, match=words) as exc:
            parse_infer(body, hl, "t", 3)
        assert 400 <= exc.value.status < 500 and "\n" not in str(exc.value)
    head = json.dumps({"inputs": [{**one, "data": None, "parameters": {"binary_data_size": 12}}]}).encode()
    with pytest.raises(ProtocolError, match="add up to 12"):
        parse_infer(head + b"\0" * 16, str(len(head)), "t", 3)  # 4 bytes left over
    with pytest.raises(ProtocolError, match="binary_data_size must be 12"):
        parse_infer(head + b"\0" * 8, str(len(head)), "t", 3)  # 4 bytes short
    # binary tensors of every float width: inf, -inf, NaN and what overflows FP32 are refused, the largest FP32 is not
    for dtype, name in ((np.float16, "FP16"), (np.float32, "FP32"), (np.float64, "FP64")):
        head = json.dumps({"inputs": [{**one, "datatype": name, "data": None, "parameters": {"binary_data_size": 3 * np.dtype(dtype).itemsize}}]}).encode()
        bad = [np.inf, -np.inf, np.nan] + ([1e39, -1e39] if dtype is np.float64 else [])
        for v in bad:
            with pytest.raises(ProtocolError, match="not finite"):
                parse_infer(head + np.array([1, v, 2], dtype).tobytes(), str(len(head)), "t", 3)
        top = float(np.finfo(np.float32).max) if dtype is not np.float16 else float(np.finfo(np.float16).max)
        got = parse_infer(head + np.array([1, -top, top], dtype).tobytes(), str(len(head)), "t", 3)
        np.testing.assert_array_equal(got.x, np.array([[1, -top, top]], np.float32))


# ---- tritonclient against a live access node ------------------------------------------------


def test_tritonclient_against_a_live_access_node(cluster, models_dir):  # noqa: F811
    _, nodes = cluster
    client = httpclient.InferenceServerClient(url=nodes["ap-1"]["url"].removeprefix("http://"), connection_timeout=20, network_timeout=20)
    files = read_catalog_files(models_dir)
    sessions = {}
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
        assert not client.is_model_ready("speech")
        for task, n, classes in (("digits", 64, 10), ("wine", 13, 3), ("breast_cancer", 30, 2)):
            assert client.is_model_ready(task) and client.is_model_ready(task, "1")
            meta = client.get_model_metadata(task)
            assert meta["name"] == task and meta["versions"] == ["1"]
            assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [1, n]}]
            assert meta["outputs"] == [{"name": "label", "datatype": "INT64", "shape": [1]},
                                       {"name": "probabilities", "datatype": "FP32", "shape": [1, classes]}]  # fmt: skip
            x_all = np.load(models_dir / "data" / f"{task}.npz")["x"]
            for binary in (True, False):
                for i in range(4):
                    x = x_all[i : i + 1]
                    inp = httpclient.InferInput("X", [1, n], "FP32")
                    inp.set_data_from_numpy(x, binary_data=binary)
                    outs = [httpclient.InferRequestedOutput(o, binary_data=binary) for o in ("label", "probabilities")]
                    res = client.infer(task, [inp], outputs=outs, request_id=f"{task}-{binary}-{i}")
                    ans = res.get_response()
                    assert ans["id"] == f"{task}-{binary}-{i}" and ans["model_name"] == task
                    node, model, path = where(ans)
                    assert (node, ans["parameters"]["idn_hops"]) == EXPECTED[task] and path[0] == "ap-1" and path[-1] == node
                    if binary:  # the binary outputs came as raw bytes after the JSON header
                        assert all("data" not in o and o["parameters"]["binary_data_size"] > 0 for o in ans["outputs"])
                    else:
                        assert all("data" in o for o in ans["outputs"])
                    if model not in sessions:
                        sessions[model] = _session(files[model.split("/", 1)[1]]["file"])
                    label, probs = predict_all(sessions[model], x)
                    np.testing.assert_array_equal(res.as_numpy("label"), label)
                    np.testing.assert_allclose(res.as_numpy("probabilities"), probs, rtol=1e-6, atol=1e-7)
            # no outputs named: tritonclient asks for every output, binary
            inp = httpclient.InferInput("X", [1, n], "FP32")
            inp.set_data_from_numpy(x_all[:1])
            res = client.infer(task, [inp])
            assert res.as_numpy("label").shape == (1,) and res.as_numpy("probabilities").shape == (1, classes)
        with pytest.raises(Exception, match="unknown model 'speech'"):
            client.infer("speech", [inp])
    finally:
        client.close()
    with urllib.request.urlopen(nodes["edge-1"]["url"] + "/metrics", timeout=10) as r:
        metrics = r.read().decode()
    # wine was served at the edge: 8 + 1 requests of this test, run in batches
    assert 'nv_inference_request_success{model="wine",version="1"} 9' in metrics
    assert 'nv_inference_count{model="wine",version="1"} 9' in metrics
    assert 'nv_inference_request_success{model="digits",version="1"} 0' in metrics


# ---- trust between nodes ---------------------------------------------------------------------


def _body(n: int, **extra) -> bytes:
    return json.dumps({"inputs": [{"name": "X", "shape": [1, n], "datatype": "FP32", "data": [0.5] * n}], **extra}).encode()


def test_a_forwarded_request_without_a_valid_proof_is_refused(cluster):
    run_dir, nodes = cluster
    edge = nodes["edge-1"]["url"] + "/v2/models/wine/infer"
    before = _state(nodes["edge-1"]["url"])["counters"]
    body = _body(13)
    for forged in ("0;3;", "0;3;" + "0" * 64, "garbage", "1;3,2;" + "a" * 64):  # ap-1 is node 3, edge-1 node 2
        status, out = _raw(edge, body, {forwarding.FORWARD_HEADER: forged})
        assert status == 403 and ("proof" in out["error"] or "malformed" in out["error"]), (forged, out)
    after = _state(nodes["edge-1"]["url"])["counters"]
    assert after["served"] == before["served"] and after["entered"] == before["entered"]
    # the real proof, made with the run's token, passes; the same proof on another body does not
    key = (run_dir / "token").read_text().strip().encode()
    ap1 = [n["id"] for n in json.loads((run_dir / "nodes.json").read_text())].index("ap-1")
    good = forwarding.sign(key, "wine", None, 0, (ap1,), body)
    status, out = _raw(edge, body, {forwarding.FORWARD_HEADER: good})
    assert status == 200 and where(out)[2] == ["ap-1", "edge-1"] and out["parameters"]["idn_slot"] == 0
    status, out = _raw(edge, _body(13, id="other"), {forwarding.FORWARD_HEADER: good})
    assert status == 403
    status, out = _raw(nodes["edge-1"]["url"] + "/v2/models/digits/infer", body, {forwarding.FORWARD_HEADER: good})
    assert status == 403  # the proof names its task too
    assert _state(nodes["edge-1"]["url"])["counters"]["entered"] == before["entered"]


def test_forwarding_fields_in_an_entering_request_are_ignored_and_never_echoed(cluster):
    _, nodes = cluster
    forged = {"source": "ap-2", "slot": 0, "hops": ["ap-2", "edge-1", "regional-1"],
              "parameters": {"idn_hops": 3, "idn_path": "ap-2,edge-1", "idn_node": "cloud", "source": "ap-2"}}  # fmt: skip
    before = {n: _state(nodes[n]["url"])["counters"] for n in ("ap-1", "edge-1")}
    status, out = _raw(nodes["ap-1"]["url"] + "/v2/models/digits/infer", _body(64, **forged))
    assert status == 200 and where(out) == ("ap-1", "digits/digits-logreg", ["ap-1"]) and out["parameters"]["idn_hops"] == 0
    # sent straight to the edge, it is a request entering at the edge, counted there
    status, out = _raw(nodes["edge-1"]["url"] + "/v2/models/wine/infer", _body(13, **forged))
    assert status == 200 and where(out)[0] == "edge-1" and where(out)[2] == ["edge-1"]
    after = {n: _state(nodes[n]["url"])["counters"] for n in ("ap-1", "edge-1")}
    assert after["ap-1"]["entered"] == before["ap-1"]["entered"] + 1
    assert after["edge-1"]["entered"] == before["edge-1"]["entered"] + 1
    assert "ap-2" not in json.dumps(out)


def test_bodies_nested_100000_deep_get_a_4xx_and_the_nodes_stay_up(cluster):
    run_dir, nodes = cluster
    token = (run_dir / "token").read_text().strip()
    auth = {"Authorization": f"Bearer {token}"}
    for node in ("ap-1", "edge-1"):
        url = nodes[node]["url"]
        for body in DEEP:
            for route, method, headers in (("/v2/models/wine/infer", "POST", {}), ("/v1/allocation", "PUT", auth),
                                           ("/v1/counts", "PUT", auth), ("/v1/announce", "PUT", auth),
                                           ("/v1/slot", "POST", auth), ("/v1/control", "PUT", auth)):  # fmt: skip
                status, out = _raw(url + route, body, headers, method)
                assert 400 <= status < 500 and out["error"], (node, route, status, out)
        status, out = infer(url, "wine", [0.0] * 13)
        assert status == 200


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_next_hop_that_dies_is_a_hop_error_on_either_loop(loop):
    """A next hop that dies between the pool's connect and its write (a node
    SIGKILLed mid-load): the pool reports a HopError, so the request goes on to
    the node after it, never another exception (uvloop raised RuntimeError
    writing to the dead socket: the entering node answered 500). Also a hop
    that accepts and drops every connection."""
    import asyncio

    async def main():
        async def die(reader, writer):
            writer.transport.abort()

        server = await asyncio.start_server(die, "127.0.0.1", 0)
        pool = forwarding.HopPool("127.0.0.1", server.sockets[0].getsockname()[1])
        outcomes = []
        conn = await pool._connect()
        conn.transport.abort()  # gone before the write
        await asyncio.sleep(0.01)
        try:
            await pool._send(conn, b"POST / HTTP/1.1\r\n\r\n", 1.0)
        except Exception as exc:  # noqa: BLE001 - which exception is what is tested
            outcomes.append(type(exc).__name__)
        for _ in range(10):
            try:
                await pool.post("/v2/models/wine/infer", b"{}", {}, 5.0)
                outcomes.append("answered")
            except (forwarding.HopError, OSError) as exc:
                outcomes.append(type(exc).__name__)
        server.close()
        await server.wait_closed()
        pool.close()
        return outcomes

    if loop == "uvloop":
        outcomes = pytest.importorskip("uvloop").run(main())
    else:
        outcomes = asyncio.run(main())
    assert outcomes[0] == "HopError" and len(outcomes) == 11 and "answered" not in outcomes, outcomes
