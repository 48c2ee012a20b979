"""The live IDN's HTTP endpoints fuzzed (issue 11, item 5; issue 19): malformed
bodies, huge bodies, bodies nested 100,000 deep, wrong types, non-finite numbers and a bounded flood,
sent to a running ``idn serve``. Every bad request gets a 4xx (never a 5xx,
never a dropped connection), and the nodes keep serving afterwards."""

from __future__ import annotations

import asyncio
import json
import math
import os

import aiohttp
import pytest
from hypothesis import strategies as st
from runtime_helpers import models_dir, serving  # noqa: F401

import fuzz_cases as fc

ALLOCATION = {"edge-1": ["digits/digits-logreg", "wine/wine-logreg"], "ap-1": [], "ap-2": [], "regional-1": []}
FEATURES = {"digits": 64, "wine": 13, "breast_cancer": 30}
VALID = {
    ("POST", "/v2/models/wine/infer"): {"id": "r1", "inputs": [{"name": "X", "shape": [1, 13], "datatype": "FP32", "data": [0.0] * 13}]},
    ("PUT", "/v1/allocation"): {"models": ["wine/wine-logreg"]},
    ("PUT", "/v1/announce"): {"from": "ap-2", "version": 1, "models": []},
    ("PUT", "/v1/counts"): {"slot": 0, "counts": [["ap-1", "wine", 3]]},
}
CASES, FLOOD, CONCURRENCY = 200, 300, 16
# JSON nested 100,000 deep (Python's json module raises RecursionError on it: a 500 before issue 19)
DEEP = [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"]  # fmt: skip


@pytest.fixture(scope="module")
def cluster(models_dir, tmp_path_factory):  # noqa: F811
    run_dir = tmp_path_factory.mktemp("live-fuzz") / "run"
    with serving(models_dir / "live-demo.yaml", models_dir, run_dir, ALLOCATION) as (nodes, proc):
        yield nodes, (run_dir / "token").read_text().strip(), proc


def bodies():
    """(endpoint, body bytes, must be refused, with the token)."""
    endpoint = st.sampled_from(sorted(VALID))

    def mutated(ep):
        return fc.doc_mutation(VALID[ep]).map(lambda m: (ep, json.dumps(m[0], allow_nan=True).encode(), m[1], True))

    return st.one_of(
        endpoint.flatmap(mutated),
        st.tuples(endpoint, st.binary(max_size=300), st.just(True), st.booleans()),
        st.tuples(endpoint, fc.values.map(lambda v: json.dumps(v, allow_nan=True).encode()), st.just(True), st.just(True)),
        st.tuples(endpoint, st.sampled_from([b"{", b"", b"null", b"[]", b'{"task": ', b"\xff\xfe{}", b"NaN"]),
                  st.just(True), st.just(True)),
        st.tuples(endpoint, st.just(b"[" + b"0," * (600 * 1024) + b"0]"), st.just(True), st.just(True)),  # > 1 MB
        st.tuples(endpoint, st.sampled_from(DEEP), st.just(True), st.just(True)),
        st.tuples(st.just(("POST", "/v2/models/wine/infer")),
                  st.sampled_from([math.nan, math.inf, -math.inf, 1e400, 1e39]).map(
                      lambda v: json.dumps({"inputs": [{"name": "X", "shape": [1, 13], "datatype": "FP32", "data": [v] * 13}]},
                                           allow_nan=True).encode()),
                  st.just(True), st.just(True)),
        st.tuples(st.just(("PUT", "/v1/counts")),
                  st.sampled_from([math.nan, math.inf, -1.0, 1e300]).map(
                      lambda v: json.dumps({"slot": 0, "counts": [["ap-1", "wine", v]]}, allow_nan=True).encode()),
                  st.just(True), st.just(True)),
        st.tuples(st.just(("PUT", "/v1/counts")),
                  st.sampled_from([math.nan, math.inf, -1, 1e300, "0", True]).map(
                      lambda v: json.dumps({"slot": v, "counts": [["ap-1", "wine", 1]]}, allow_nan=True).encode()),
                  st.just(True), st.just(True)),
    )  # fmt: skip


def _must_be_refused(ep, body: bytes, flagged: bool) -> bool:
    """A mutation can leave a body valid (a changed version number, say); a
    non-finite number, a wrong type at the top, or a non-JSON body cannot."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return True
    return not isinstance(doc, dict) or (flagged and _has_non_finite(doc))


def _has_non_finite(doc) -> bool:
    if isinstance(doc, float):
        return not math.isfinite(doc)
    if isinstance(doc, dict):
        return any(_has_non_finite(v) for v in doc.values())
    if isinstance(doc, list):
        return any(_has_non_finite(v) for v in doc)
    return False


async def _send_all(url: str, token: str, cases) -> list:
    sem = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def one(case):
            (method, route), body, _, with_token = case
            headers = {"Content-Type": "application/json"}
            if with_token:
                headers["Authorization"] = f"Bearer {token}"
            async with sem:
                try:
                    async with session.request(method, url + route, data=body, headers=headers) as r:
                        await r.read()
                        return r.status
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    return f"{type(exc).__name__}: {exc}"

        return await asyncio.gather(*(one(c) for c in cases))


async def _alive(nodes) -> bool:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for n in nodes.values():
            async with session.get(n["url"] + "/healthz") as r:
                if r.status != 200:
                    return False
        ep = ("POST", "/v2/models/wine/infer")
        async with session.post(nodes["ap-1"]["url"] + ep[1], json=VALID[ep]) as r:
            return r.status == 200 and (await r.json())["parameters"]["idn_node"] in nodes  # wherever the fuzzed allocations put it


def test_bad_requests_get_a_4xx_and_the_nodes_keep_serving(cluster):
    nodes, token, _ = cluster
    cases = fc.draw_cases(bodies(), CASES, 8)
    statuses = []
    for target in ("ap-1", "edge-1"):
        statuses += asyncio.run(_send_all(nodes[target]["url"], token, cases))
    cases = cases + cases
    bad = []
    for (ep, body, flagged, with_token), status in zip(cases, statuses):
        refused = isinstance(status, int) and 400 <= status < 500
        ok = isinstance(status, int) and (refused or (status == 200 and with_token or ep[0] == "POST" and status == 200))
        if not ok or (_must_be_refused(ep, body, flagged) and not refused):
            bad.append((ep, body[:120], with_token, status))
    assert not bad, f"{len(bad)} of {len(cases)} requests answered wrongly, e.g. {bad[:6]}"
    assert sum(400 <= s < 500 for s in statuses if isinstance(s, int)) > len(cases) // 2
    assert asyncio.run(_alive(nodes))
    for n in nodes.values():
        os.kill(n["pid"], 0)  # still running


def test_a_bounded_flood_is_answered_and_the_nodes_keep_serving(cluster):
    nodes, token, _ = cluster
    flood = [(("POST", f"/v2/models/{t}/infer"),
              json.dumps({"inputs": [{"name": "X", "shape": [1, n], "datatype": "FP32", "data": [0.5] * n}]}).encode(), False, False)
             for t, n in list(FEATURES.items()) * (FLOOD // 3)]  # fmt: skip
    statuses = asyncio.run(_send_all(nodes["ap-1"]["url"], token, flood))
    assert all(isinstance(s, int) and s < 500 for s in statuses), sorted(set(map(str, statuses)))
    assert sum(s == 200 for s in statuses) >= len(flood) * 0.9
    assert asyncio.run(_alive(nodes))
