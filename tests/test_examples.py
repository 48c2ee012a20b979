"""The examples in examples/ run as a user would run them: real processes,
from a clean working directory, checked on what they print."""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pandas as pd

from idn.experiments.store import load_runs

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run(*args, cwd, env=None):
    out = subprocess.run([*map(str, args)], capture_output=True, text=True, cwd=cwd, env=env)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return out.stdout


def table(stdout: str, first_column: str) -> pd.DataFrame:
    """The whitespace-separated table a script printed, from its header line on;
    labels like 'most-popular (W=10)' are kept whole."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [first_column])
    header = lines[start].split()
    rows = []
    for line in lines[start + 1 :]:
        parts = line.split()
        rows.append([" ".join(parts[: len(parts) - len(header) + 1]), *map(float, parts[len(parts) - len(header) + 1 :])])
    return pd.DataFrame(rows, columns=header)


def test_custom_policy_example(tmp_path):
    out = run(sys.executable, EXAMPLES / "custom_policy.py", "--slots", 40, "--seed", 1, cwd=tmp_path)
    assert re.search(r"geant-demo: 40 slots, \d+ requests, seed 1", out)
    t = table(out, "policy").set_index("policy")
    assert set(t.index) == {"most-popular (W=10)", "most-popular (W=30)", "infida", "online-greedy"}
    pct = t["pct_of_LP_bound"]
    assert ((pct > 0) & (pct <= 100.0 + 1e-6)).all()
    assert t["time_avg_gain"].is_monotonic_decreasing  # sorted best first
    # refreshing more often tracks the workload better; a 30-slot window has refreshed once in 40 slots
    assert t.loc["most-popular (W=10)", "time_avg_gain"] > t.loc["most-popular (W=30)", "time_avg_gain"]


def test_custom_workload_example(tmp_path):
    out = run(sys.executable, EXAMPLES / "custom_workload.py", "--slot-seconds", 2, cwd=tmp_path)
    assert "timestamp,client_site,service" in out  # the sample log it wrote, in the user's own columns
    m = re.search(r"(\d+) requests -> (\d+) slots of 2 s", out)
    assert m and int(m.group(2)) == 45  # 90 s of log in 2 s slots
    t = table(out, "policy").set_index("policy")
    assert set(t.index) == {"infida", "online-greedy"}
    assert ((t["normalized_gain"] > 0) & (t["normalized_gain"] <= 1)).all()
    assert list(tmp_path.iterdir()) == []  # the sample log lived in a temporary directory


def test_custom_workload_example_reads_a_given_log(tmp_path, monkeypatch, capsys):
    # in this process (the real-process run is the test above): the script's main() on a user's log
    log = tmp_path / "mine.csv"
    log.write_text(
        "timestamp,client_site,service\n"
        "2026-01-01T00:00:00.5Z,TR,task-1\n2026-01-01T00:00:00.9Z,TR,task-1\n2026-01-01T00:00:03.2Z,CY,task-2\n"
    )
    monkeypatch.setattr(sys, "argv", ["custom_workload.py", str(log)])
    runpy.run_path(str(EXAMPLES / "custom_workload.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "3 requests -> 4 slots of 1 s" in out
    assert set(table(out, "policy")["policy"]) == {"infida", "online-greedy"}


def test_custom_policy_sweep_experiment(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")]))
    exp = tmp_path / "sweep.yaml"  # the shipped file, shortened to keep the suite fast
    exp.write_text((EXAMPLES / "custom_policy_sweep.yaml").read_text().replace("slots: 60", "slots: 15"))
    run(sys.executable, "-m", "idn.cli", "sweep", exp, "--out", tmp_path / "out", "--quiet", cwd=tmp_path, env=env)
    runs = load_runs(tmp_path / "out")
    grid = sorted(zip(runs["policy"], runs["param_window"].fillna(0), runs["param_eta_scale"].fillna(0)))
    assert grid == [
        ("custom_policy:MostPopular", 5, 0), ("custom_policy:MostPopular", 20, 0),
        ("infida", 0, 0.5), ("infida", 0, 1.0), ("infida", 0, 2.0), ("online-greedy", 10, 0),  # online greedy has a window too
    ]  # fmt: skip
    assert (runs["total_gain"] <= runs["per_slot_lp_bound"] * (1 + 1e-9)).all()
