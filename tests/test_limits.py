"""Limits stated up front (idn.limits): inputs that would not fit in memory
are refused before anything is built, in one line giving the estimate and
the limit; --memory-limit raises the limit. Real processes, with the limit
set by IDN_MEMORY_LIMIT_GB so the outcome does not depend on the machine."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

TREE_100 = {
    "topology": {"tiered_tree": {"regional": 100, "edge_per_regional": 100, "access_per_edge": 100}},
    "tasks": {"generate": {"count": 10, "models_per_task": [6, 8], "seed": 1}},
}
MID = {
    "topology": {"tiered_tree": {"regional": 4, "edge_per_regional": 5, "access_per_edge": 10}},
    "tasks": {"generate": {"count": 10, "models_per_task": [6, 8], "seed": 1}},
    "workload": {"kind": "stationary", "rate": 5},
}


def idn(*args, limit_gb=4.0, timeout=60):
    env = {**os.environ, "IDN_MEMORY_LIMIT_GB": str(limit_gb)}
    return subprocess.run([sys.executable, "-m", "idn.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)  # fmt: skip


def one_line(p) -> str:
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    return p.stderr


def test_a_tree_of_100_x_100_x_100_is_refused_with_an_estimate(tmp_path):
    path = tmp_path / "tree.yaml"
    path.write_text(yaml.safe_dump(TREE_100))
    msg = one_line(idn("validate", path, timeout=30))  # refused before building: no 10^6 node dicts
    assert msg.startswith(f"idn: error: {path}: topology.tiered_tree: 10,000,000 request types with up to ")
    assert "would need about " in msg and "GB of memory, over the limit of 4 GB; raise it with --memory-limit GB" in msg


def test_memory_limit_flag_raises_the_limit(tmp_path):
    path = tmp_path / "mid.yaml"
    path.write_text(yaml.safe_dump(MID))
    msg = one_line(idn("validate", path, limit_gb=0.01))
    assert "request types with up to " in msg and "over the limit of 10.2 MB" in msg
    p = idn("--memory-limit", "1", "validate", path, limit_gb=0.01)
    assert p.returncode == 0 and "valid" in p.stdout, p.stderr


def test_trace_files_and_slots_are_checked_before_reading(tmp_path):
    scenario = tmp_path / "mid.yaml"
    scenario.write_text(yaml.safe_dump(MID))
    csv = tmp_path / "big.csv"
    rows = pd.DataFrame({"slot": range(50_000), "source": "access-0", "task": "task-0", "count": 1})
    rows.to_csv(csv, index=False)
    msg = one_line(idn("trace", "show", csv, limit_gb=0.005))
    assert msg.startswith(f"idn: error: {csv}: a ") and "MB CSV trace would need about" in msg
    pq = tmp_path / "big.parquet"
    rows.to_parquet(pq, index=False)
    msg = one_line(idn("trace", "show", pq, limit_gb=0.005))
    assert msg.startswith(f"idn: error: {pq}: a trace of 50,000 rows would need about")
    # one row far in the future asks for a count matrix of 10^12 slots
    far = tmp_path / "far.csv"
    far.write_text("slot,source,task,count\n1000000000000,access-0,task-0,1\n")
    msg = one_line(idn("run", scenario, "--policy", "cloud-only", "--trace", far, "--out", tmp_path / "o", "--quiet"))
    assert "a count matrix of 1,000,000,000,001 slots x " in msg
    # and --slots of the scenario's own workload
    msg = one_line(idn("run", scenario, "--policy", "cloud-only", "--slots", 10**8, "--out", tmp_path / "o", "--quiet"))
    assert msg.startswith("idn: error: workload stationary: 100,000,000 slots of 200 sources x 10 tasks would need")


@pytest.mark.parametrize("flag, value", [("--slots", 0), ("--slots", -5), ("--seed", -1), ("--checkpoint-every", -2)])
def test_numeric_flags_out_of_range(tmp_path, flag, value):
    scenario = tmp_path / "mid.yaml"
    scenario.write_text(yaml.safe_dump(MID))
    msg = one_line(idn("run", scenario, "--policy", "cloud-only", flag, value, "--out", tmp_path / "o"))
    assert msg.startswith(f"idn: error: {flag}: must be an integer from ") and msg.endswith(f", got {value}\n")
