"""`idn reproduce paper --quick`: the whole study pipeline (two topologies,
two workloads, five policies, alpha and budget sweeps, LP bounds, report),
reduced, run as a real process."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd

from idn.experiments.store import load_runs


def test_quick_paper_study_produces_the_report(tmp_path):
    out = tmp_path / "paper"
    proc = subprocess.run(
        [sys.executable, "-m", "idn.cli", "reproduce", "paper", "--quick", "--out", str(out), "--jobs", "2", "--quiet"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    html = (out / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 20
    runs = pd.concat([load_runs(out / "quick-alpha"), load_runs(out / "quick-budget")])
    assert set(runs["scenario"]) == {"tree", "geant"}
    assert set(runs["workload"]) == {"stationary", "shifting"}
    assert set(runs["policy"]) == {"infida", "online-greedy", "static-greedy", "infida-offline", "cloud-only"}
    assert runs["lp_bound"].notna().all()
    adapt = load_runs(out / "quick-adapt")
    assert set(adapt["policy"]) == {"infida", "local-greedy", "lfu", "lru", "static-greedy", "cloud-only"}
    assert (adapt["total_gain"] <= adapt["per_slot_lp_bound"] * (1 + 1e-9)).all()
    runs = pd.concat([runs, adapt])
    # no policy beats the bound that holds for every policy
    assert (runs["total_gain"] <= runs["per_slot_lp_bound"] * (1 + 1e-9)).all()
    meta = json.loads((out / "reproduce.json").read_text())
    assert meta["runs"] == len(runs.drop_duplicates("run_id"))
    assert "Headline:" in html and "INFIDA against each heuristic" in html and "Adversarial sequence" in html
    for stem in ("latency-accuracy_tree_stationary", "gain-vs-budget_geant_shifting", "psi-regret_tree_shifting",
                 "gain-over-time_tree_shift-10", "adversarial-regret"):
        assert (out / "report" / "figures" / f"{stem}.png").stat().st_size > 5000


def test_the_real_demand_study_needs_its_data_and_says_so(tmp_path, monkeypatch, capsys):
    from idn.cli import main

    monkeypatch.delenv("IDN_SERVEGEN", raising=False)
    assert main(["reproduce", "paper", "--out", str(tmp_path / "o"), "--only", "real"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "need the ServeGen traces" in err[0] and "--servegen DIR" in err[0]
    assert main(["reproduce", "paper", "--out", str(tmp_path / "o"), "--only", "real", "--servegen", str(tmp_path / "none")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing ran
