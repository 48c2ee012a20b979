"""Shared by the live-IDN tests: the models, built once per test session, and
a running ``idn serve`` that is always stopped, even when a test fails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest

IDN = [sys.executable, "-m", "idn.cli"]


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """``idn models build --quick`` once per session (shared by every runtime
    test module through a fixed directory under the session's base temp)."""
    from dataclasses import replace

    from idn.runtime.models import build_models, demo_scenario, write_catalog

    out = tmp_path_factory.getbasetemp() / "idn-live-models"
    if not (out / "live-demo.yaml").exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            built = build_models(out, seed=0, quick=True, runs=30)
        # service times measured on a busy machine can reorder the models' costs (and
        # so where a request is served); the tests take them from one quiet measurement
        built = [replace(b, service_ms=SERVICE_MS[b.variant]) for b in built]
        write_catalog(out / "catalog.csv", built)
        # the runtime tests' hardware: capacity binds at the access nodes only, and an edge
        # holds a quarter of all bytes (the demo's tiers bind everywhere: test_runtime_cli checks them)
        edge = 0.25 * sum(b.size_mb for b in built)
        (out / "live-demo.yaml").write_text(demo_scenario(built, tiers=TEST_TIERS, edge_budget_mb=edge))
        (out / "shipped-demo.yaml").write_text(demo_scenario(built))
    return out


# tier: (workers, ms per request for a task's fastest model): the first demo's hardware (40, 5, 1
# and 0.5 ms for a median model), in the speeds it gave the pinned models below (x 0.005 / 0.00655)
TEST_TIERS = {"access": (1, 30.5), "edge": (2, 3.8), "regional": (4, 0.76), "cloud": (4, 0.38)}
# ms per request, as `idn models build --quick` measured them on an idle core
SERVICE_MS = {"logreg": 0.005, "mlp-small": 0.0065, "mlp-large": 0.007, "forest": 0.0066}


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


@contextmanager
def serving(scenario: Path, models: Path, run_dir: Path, allocation: dict | None, extra=(), timeout: float = 300.0):
    """Start ``idn serve`` and wait for its ready line; yield {node id: node}
    from nodes.json and the launcher's Popen (its lines up to ready in ``proc.lines``). On exit: SIGTERM to the launcher, then SIGKILL to the
    launcher's process group and to any node it left behind."""
    cmd = [*IDN, "serve", str(scenario), "--models", str(models), "--run-dir", str(run_dir), *extra]
    if allocation is not None:  # None: the policy in extra chooses (live INFIDA)
        cmd += ["--allocation", str(write_json(run_dir.parent / f"{run_dir.name}-alloc.json", allocation))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    nodes = {}
    try:
        deadline = time.time() + timeout
        line, proc.lines = "", []
        while "ready" not in line:
            line = proc.stdout.readline()
            proc.lines.append(line)
            if not line and proc.poll() is not None:
                raise RuntimeError(f"idn serve exited with {proc.returncode}")
            if time.time() > deadline:
                raise RuntimeError("idn serve was not ready in time")
        nodes = {n["id"]: n for n in json.loads((run_dir / "nodes.json").read_text())}
        yield nodes, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for n in nodes.values():  # a node the launcher failed to stop
            try:
                os.kill(n["pid"], signal.SIGKILL)
            except (ProcessLookupError, TypeError):
                pass
        proc.stdout.close()


def constant_trace(path: Path, per_slot: dict, slots: int) -> Path:
    """A trace with the same counts in every slot: {(source, task): count}."""
    rows = ["slot,source,task,count"]
    for t in range(slots):
        rows += [f"{t},{s},{task},{n}" for (s, task), n in per_slot.items()]
    path.write_text("\n".join(rows) + "\n")
    return path


def run_cli(*args, timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run([*IDN, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def infer(url: str, task: str, x, headers: dict | None = None, timeout: float = 20.0) -> tuple[int, dict]:
    """POST one row to ``url``'s ``/v2/models/{task}/infer`` (JSON); (status, answer)."""
    import urllib.error
    import urllib.request

    body = json.dumps({"inputs": [{"name": "X", "shape": [1, len(x)], "datatype": "FP32", "data": [float(v) for v in x]}]})
    req = urllib.request.Request(f"{url}/v2/models/{task}/infer", data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def where(answer: dict) -> tuple[str, str, list[str]]:
    """(node, model, path) of an answer: where and by what it was served, and the nodes it passed."""
    p = answer["parameters"]
    return p["idn_node"], p["idn_model"], p["idn_path"].split(",")
