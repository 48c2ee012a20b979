"""The `idn` command line, run as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny.yaml"


def idn(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "idn.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def requests_csv(tmp_path):
    return write(tmp_path / "req.csv", "slot,source,task,count\n0,ap-1,vision-a,30\n1,ap-1,vision-a,10\n1,edge-1,vision-a,5\n")


def test_validate_prints_summary():
    out = idn("validate", TINY)
    assert out.returncode == 0, out.stderr
    assert "scenario 'tiny': valid" in out.stdout
    assert "1 access, 1 edge, 1 cloud" in out.stdout
    assert "request types: 1, candidate entries: 3" in out.stdout


def test_validate_errors_one_line_each_exit_2(tmp_path):
    bad = write(
        tmp_path / "bad.yaml",
        "nodes:\n  - {id: cloud, tier: cloud, hardware: gpu, repository: true}\n"
        "  - {id: ap, tier: access, hardware: cpu, budget_mb: -5}\n"
        "links:\n  - {a: ap, b: clod, latency_ms: 2}\ntasks:\n  - {id: t, models: [MobileNetV2]}\n",
    )
    out = idn("validate", bad)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "nodes[1].budget_mb: must be >= 0, got -5" in out.stderr
    assert "links[0].b: unknown node 'clod'" in out.stderr


def test_evaluate_json_matches_hand_computation(tmp_path, requests_csv):
    alloc = write(tmp_path / "alloc.json", json.dumps({"ap-1": ["vision-a/MobileNetV2"], "edge-1": ["vision-a/small"]}))
    out = idn("evaluate", TINY, "--allocation", alloc, "--requests", requests_csv, "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert [s["slot"] for s in res["slots"]] == [0, 1]
    assert set(res["total"]) == {"total_requests", "total_gain", "total_cost", "normalized_gain", "mean_latency_ms", "mean_accuracy",
                                 "requests", "gain", "cost"}  # the old names: aliases until 0.3 (idn.output_names)
    # ap-1 -> edge-1 (2 ms): small at edge-1 (gpu, speed 0.5): 4 + 7.6 + 29 = 40.6 ms per request, capacity
    # 1000 / 7.6 = 131 per slot, so all 30 requests of slot 0 go there; the fallback is MobileNetV2
    # (accuracy 0.713) at the cloud: 41 + 3.8 + 28.7 = 73.5, so the gain of slot 0 is 30 * (73.5 - 40.6) = 987.
    s0 = res["slots"][0]
    assert s0["requests"] == 30
    assert s0["cost"] == pytest.approx(30 * 40.6)
    assert s0["gain"] == pytest.approx(30 * (73.5 - 40.6))
    assert s0["mean_latency_ms"] == pytest.approx(4 + 7.6)
    assert res["total"]["requests"] == res["total"]["total_requests"] == 45


@pytest.mark.parametrize(
    "alloc, req, message",
    [
        ({"ap-9": []}, None, "allocation: unknown node 'ap-9'"),
        ({"ap-1": ["vision-a/nope"]}, None, "node 'ap-1': unknown model 'vision-a/nope'"),
        ({"ap-1": ["vision-a/small", "vision-a/MobileNetV2", "vision-a/small"]}, None, None),
        ({}, "slot,source,task,count\n0,ap-1,vision-a,-3\n", "column 'count': '-3' is negative"),
        ({}, "slot,source,task,count\n0,ap-7,vision-a,3\n", "unknown node 'ap-7'"),
        ({}, "slot,source,task,count\n0,ap-1,vision-z,3\n", "unknown task 'vision-z'"),
    ],
)
def test_evaluate_bad_input(tmp_path, requests_csv, alloc, req, message):
    a = write(tmp_path / "a.json", json.dumps(alloc))
    r = write(tmp_path / "r.csv", req) if req else requests_csv
    out = idn("evaluate", TINY, "--allocation", a, "--requests", r)
    if message is None:
        assert out.returncode == 0  # a model listed twice is still one model
        return
    assert out.returncode == 2
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_evaluate_over_budget(tmp_path, requests_csv):
    scen = TINY.read_text().replace("budget_mb: 60", "budget_mb: 20")
    s = write(tmp_path / "s.yaml", scen)
    a = write(tmp_path / "a.json", json.dumps({"ap-1": ["vision-a/small", "vision-a/MobileNetV2"]}))
    out = idn("evaluate", s, "--allocation", a, "--requests", requests_csv)
    assert out.returncode == 2
    assert "node 'ap-1' holds 28 MB of models, over its budget of 20 MB" in out.stderr


def test_run_writes_summary_table_and_allocation(tmp_path):
    out_dir = tmp_path / "run"
    out = idn("run", TINY, "--policy", "infida", "--slots", 40, "--seed", 3, "--out", out_dir, "--quiet")
    assert out.returncode == 0, out.stderr
    summary = json.loads((out_dir / "summary.json").read_text())
    for key in ("policy", "slots", "total_gain", "time_avg_gain", "normalized_gain", "mean_latency_ms", "mean_accuracy",
                "model_loads", "control_messages", "seconds_per_slot", "lp_bound", "fraction_of_bound"):  # fmt: skip
        assert key in summary, key
    assert summary["policy"] == "infida" and summary["slots"] == 40
    slots = pd.read_csv(out_dir / "slots.csv")
    assert len(slots) == 40
    assert slots["gain"].sum() == pytest.approx(summary["total_gain"])
    alloc = json.loads((out_dir / "allocation.json").read_text())
    assert set(alloc) == {"edge-1", "ap-1"}
    assert summary["total_gain"] <= summary["per_slot_lp_bound"] * (1 + 1e-9)


def test_run_unknown_policy_is_one_line(tmp_path):
    out = idn("run", TINY, "--policy", "infdia", "--slots", 5, "--out", tmp_path / "x", "--quiet")
    assert out.returncode == 2
    assert "unknown policy 'infdia'; did you mean infida" in out.stderr


def test_trace_generate_and_show(tmp_path):
    path = tmp_path / "t.parquet"
    out = idn("trace", "generate", TINY, "--kind", "shifting", "--param", "period=10", "--slots", 30, "--out", path)
    assert out.returncode == 0, out.stderr
    shown = idn("trace", "show", path)
    assert shown.returncode == 0, shown.stderr
    assert "30" in shown.stdout


def test_version_and_the_policies_in_help():
    from idn import __version__

    out = idn("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"idn {__version__}"
    for command in ("run", "serve"):
        text = idn(command, "--help").stdout
        for name, knows in [("infida", "online"), ("online-greedy", "centralized"), ("static-greedy", "offline"),
                            ("cloud-only", "static"), ("lfu", "online")]:
            line = next((ln for ln in text.splitlines() if ln.strip().startswith(name + " ")), "")
            assert f" {knows}" in line, (command, name, line)
    assert "live on every node" in next(ln for ln in idn("serve", "--help").stdout.splitlines() if ln.strip().startswith("infida "))


def test_one_name_for_one_number_in_summary_and_bound(tmp_path):
    """summary.json and bound --json call the static bound and the bound's
    method by the same names (the old ones stay as aliases until 0.3)."""
    assert idn("run", TINY, "--policy", "infida", "--slots", "20", "--out", tmp_path / "r", "--quiet").returncode == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    out = idn("bound", TINY, "--slots", "20", "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    bound = json.loads(out.stdout)
    assert summary["static_lp_bound"] == pytest.approx(bound["static_lp_bound"]) and summary["lp_bound"] == summary["static_lp_bound"]
    assert summary["bound_method"] == bound["bound_method"] == bound["method"]
    assert {"bound_seconds", "seconds", "gap", "per_slot_lp_bound"} <= set(bound)
