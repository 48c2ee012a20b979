"""The live dashboard (issue 20) in a real browser: headless Chromium (Debian's,
driven by Playwright, no browser download) opens the page that ``idn serve
--policy infida`` starts, while ``idn load`` replays a trace whose popular
task changes half-way. The page must name every node, redraw by itself,
draw its charts, log no console error and ask nothing of any host but
127.0.0.1; what it shows must be what the nodes and ``idn load`` measured;
a killed node must show as dead."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from runtime_helpers import IDN, models_dir, run_cli, serving  # noqa: F401

SLOTS, CHANGE = 10, 5
TASKS = ("digits", "wine", "breast_cancer")
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", "--metrics-recording-only"]  # fmt: skip


def chromium() -> str | None:
    """Debian's chromium (installed by .ci/run), or one on PATH."""
    for c in (os.environ.get("IDN_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    return None


def _get(url: str, raw: bool = False):
    with urllib.request.urlopen(url, timeout=10) as r:
        body = r.read()
    return body if raw else json.loads(body)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _until(check, timeout: float, step: float = 0.25):
    """check() until it returns something truthy, at most timeout seconds; the last value."""
    deadline = time.time() + timeout
    while True:
        out = check()
        if out or time.time() > deadline:
            return out
        time.sleep(step)


def shifting_trace(path: Path) -> Path:
    """digits popular at both access nodes for CHANGE slots, then wine."""
    rows = ["slot,source,task,count"]
    for t in range(SLOTS):
        hot = "digits" if t < CHANGE else "wine"
        rows += [f"{t},{s},{task},{24 if task == hot else 4}" for s in ("ap-1", "ap-2") for task in TASKS]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_the_dashboard_in_a_real_browser(models_dir, tmp_path):  # noqa: F811
    exe = chromium()
    if exe is None:
        pytest.skip("no chromium executable (/usr/bin/chromium: 'apt-get install -y chromium', as .ci/run does)")
    from playwright.sync_api import sync_playwright

    run_dir = tmp_path / "run"
    port = _free_port()
    extra = ["--policy", "infida", "--seed", "3", "--dashboard-port", str(port)]
    with serving(models_dir / "live-demo.yaml", models_dir, run_dir, None, extra=extra) as (nodes, proc):
        url = json.loads((run_dir / "serve.json").read_text())["dashboard"]
        assert url == f"http://127.0.0.1:{port}/"
        assert f"dashboard: {url}\n" in proc.lines
        trace = shifting_trace(tmp_path / "shift.csv")
        load = subprocess.Popen([*IDN, "load", str(models_dir / "live-demo.yaml"), "--run-dir", str(run_dir), "--trace",
                                 str(trace), "--duration", str(SLOTS), "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=exe, args=BROWSER_ARGS, headless=True)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    requests, problems = [], []
                    page.on("request", lambda r: requests.append(r.url))
                    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
                    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
                    page.goto(url, wait_until="load", timeout=30_000)
                    page.wait_for_selector('#topology g[data-node="ap-1"]', timeout=20_000)

                    # every node id, in the topology and in the per-node panel
                    for n in nodes:
                        assert page.locator(f'#topology g[data-node="{n}"] text.node-id').text_content() == n
                        assert page.locator(f'#nodes figure[data-node="{n}"] h3').inner_text().startswith(n)

                    # it redraws by itself: the slot advances, and once the load's slots come in, the charts follow
                    slot0 = int(page.get_attribute("#slot-now", "data-slot"))
                    assert _until(lambda: int(page.get_attribute("#slot-now", "data-slot")) > slot0, 8.0), "the page did not change"
                    assert _until(lambda: page.locator("#chart-latency path.series").count() >= 3, 60.0), "no latency drawn"
                    lat0 = page.get_attribute("#chart-latency path.series", "d")
                    assert _until(lambda: page.get_attribute("#chart-latency path.series", "d") != lat0, 8.0)

                    # charts drawn: lines per tier (measured and simulated), messages, loads, INFIDA's y as a heatmap
                    assert page.locator("#chart-share path.series").count() >= 2
                    assert page.locator("#chart-share path.series.dashed").count() >= 1  # the simulator's prediction
                    assert page.locator("#chart-cost path.series").count() == 2
                    assert page.locator("#chart-accuracy path.series").count() == 2
                    assert page.locator("#chart-messages path.series").count() == 3
                    for n in ("ap-1", "ap-2", "edge-1", "regional-1"):
                        assert page.locator(f'#nodes figure[data-node="{n}"] svg.heatmap rect').count() >= 4

                    out, err = load.communicate(timeout=SLOTS + 120)
                    assert load.returncode == 0, err[-2000:]
                    report = json.loads(out)
                    assert _until(lambda: "done" in page.inner_text("#status"), 5.0)

                    # what it shows is what the nodes and idn load measured
                    snap = _get(f"{url}api/snapshot?slots=200")
                    check_against_the_sources(snap, report, nodes)
                    check_y(url, nodes)

                    # a node killed shows as dead
                    os.kill(nodes["ap-2"]["pid"], signal.SIGKILL)
                    assert _until(lambda: page.get_attribute('#topology g[data-node="ap-2"]', "data-status") == "dead", 10.0)
                    assert "DEAD" in page.locator('#topology g[data-node="ap-2"] text.node-dead').text_content()
                    assert "ap-2: dead" in page.inner_text("#errors")
                    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
                finally:
                    browser.close()
        finally:
            if load.poll() is None:
                load.kill()
                load.communicate()
        assert not problems, problems
        hosts = {urlparse(u).hostname for u in requests}
        assert hosts == {"127.0.0.1"}, sorted(set(requests))
        assert any(u.endswith("/api/snapshot") for u in requests)

        check_idn_dashboard_and_the_api(run_dir, url, nodes)


def check_against_the_sources(snap: dict, report: dict, nodes: dict) -> None:
    slots = snap["slots"]
    assert set(snap["nodes"]) == set(nodes)
    # the load's slots, as idn load reported them, at their node slots
    k0 = snap["load"]["k0"]
    assert snap["load"]["status"] == "done" and snap["load"]["answered"] == report["answered"] == report["sent"]
    s = snap["series"]
    compared = 0
    for row in report["slots"]:
        i = slots.index(k0 + row["slot"])
        assert s["requests"][i] == row["requests"]
        assert s["cost"][i] == pytest.approx(row["mean_cost"], rel=1e-9)
        for tier, share in row["served_per_tier"].items():
            assert s["share"][tier][i] == pytest.approx(share, abs=1e-12)
        assert s["cost_predicted"][i] == pytest.approx(row["simulated_mean_cost"], rel=1e-9)
        assert 0 < s["latency_p50"][i] <= s["latency_p95"][i]
        compared += 1
    assert compared == SLOTS
    # the simulator's shares, weighted by its requests, are its whole-run shares
    sim = report["simulated"]
    for tier in ("access", "edge"):
        got = sum(s["share_predicted"][tier][slots.index(k0 + t)] * row["requests"] for t, row in enumerate(report["slots"]))
        assert got / sum(r["requests"] for r in report["slots"]) == pytest.approx(sim["served_per_tier"][tier], abs=0.02)
    # control messages and loads per slot: the sums of the nodes' own round records
    hist = {n: _get(f"{node['url']}/v1/history") for n, node in nodes.items()}
    for key in ("messages_sent", "messages_missed", "model_loads"):
        for t in range(k0, k0 + SLOTS):
            want = sum(r[key] for h in hist.values() for r in h if r["slot"] == t)
            assert s[key][slots.index(t)] == want, (key, t)
    assert sum(s["messages_sent"][slots.index(t)] for t in range(k0, k0 + SLOTS)) > 0


def check_y(url: str, nodes: dict) -> None:
    """INFIDA's y per node on the page's heatmap: for slot s, the y the node
    reported with next_round = s (the state its slot-s allocation came from);
    the page shows whole slots, so slot s once s is over."""
    for n in ("ap-1", "edge-1"):
        st = _get(f"{nodes[n]['url']}/v1/state")
        s = st["next_round"]
        snap = _until(lambda s=s: _with_slot(_get(f"{url}api/snapshot"), s), 6.0)
        assert snap, f"slot {s} never reached the page"
        col = {m: v[snap["slots"].index(s)] for m, v in snap["nodes"][n]["y"].items()}
        assert col == pytest.approx(st["y"], abs=1e-12), n
        assert snap["nodes"][n]["y_now"].keys() == st["y"].keys()


def _with_slot(snap: dict, s: int) -> dict | None:
    return snap if s in snap["slots"] else None


def check_idn_dashboard_and_the_api(run_dir: Path, served_url: str, nodes: dict) -> None:
    """`idn dashboard RUN` serves the same page for the same run; the API refuses what it does not know."""
    proc = subprocess.Popen([*IDN, "dashboard", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("dashboard: http://127.0.0.1:"), line
        url = line.split(" ", 1)[1].strip()
        assert url != served_url
        assert _get(url, raw=True) == _get(served_url, raw=True)  # the same page
        snap = _get(f"{url}api/snapshot")
        assert [n["id"] for n in snap["topology"]["nodes"]] == list(nodes)
        assert _get(f"{url}api/nodes/ap-1/state")["node"] == "ap-1"  # read through the server
        for bad, code in (("api/nodes/nope/state", 404), ("api/nodes/ap-1/allocation", 404), ("api/snapshot?slots=x", 400),
                          ("static/../serve.json", 404), ("static/nope.js", 404)):  # fmt: skip
            with pytest.raises(urllib.error.HTTPError) as exc:
                _get(f"{url}{bad}")
            assert exc.value.code == code, bad
        with pytest.raises(urllib.error.HTTPError) as exc:
            _get(f"{nodes['ap-1']['url']}/v1/history?since=-1")
        assert exc.value.code == 400
        with urllib.request.urlopen(url, timeout=10) as r:
            assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == 0


def test_idn_dashboard_refuses_a_directory_that_is_no_run(tmp_path):
    out = run_cli("dashboard", tmp_path / "nope")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"idn: error: {tmp_path / 'nope'}: no nodes.json (is 'idn serve ... --run-dir {tmp_path / 'nope'}' running?)"]


def test_a_dashboard_port_in_use_is_refused_in_one_line(models_dir, tmp_path):  # noqa: F811
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        out = run_cli("serve", models_dir / "live-demo.yaml", "--models", models_dir, "--run-dir", tmp_path / "run",
                      "--policy", "infida", "--dashboard-port", port)  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"idn: error: --dashboard-port {port}: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert not (tmp_path / "run" / "nodes.json").exists()  # no node started


def test_per_slot_differences_of_counters_and_the_served_models_of_metrics():
    from idn.runtime.dashboard.collect import _deltas, served_per_model
    from idn.runtime.node_parts import NodeMetrics

    # samples: the counter at the last poll of slots 3, 4, 6 (5 missed), 7 (the node restarted: counters from 0)
    samples = {3: {"served": 10}, 4: {"served": 25}, 6: {"served": 40}, 7: {"served": 4}}
    assert _deltas(samples, [4, 5, 6, 7, 8], "served") == [15, None, 15, 4, None]
    assert _deltas(samples, [3, 4], "served") == [None, 15]  # nothing before slot 3
    m = NodeMetrics("ap-1")
    for model, ms in (("digits/a", 1.0), ("digits/a", 2.0), ("wine/b", 1.0)):
        m.served(model, ms)
    assert served_per_model(m.render().decode()) == {"digits/a": 2.0, "wine/b": 1.0}
