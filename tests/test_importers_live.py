"""An imported real trace (the shipped ServeGen excerpt) replayed against a
live IDN: ``idn serve`` / ``idn load`` take it as it is."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pandas as pd
from runtime_helpers import models_dir, run_cli, serving  # noqa: F401

EXCERPT = Path(str(resources.files("idn") / "data" / "servegen"))


def test_an_imported_trace_runs_live(models_dir, tmp_path):  # noqa: F811
    scenario = models_dir / "live-demo.yaml"
    trace = tmp_path / "real.csv"
    out = run_cli("trace", "import", "servegen", EXCERPT, "--scenario", scenario, "--out", trace,
                  "--rate", 25, "--slots", 4, "--seed", 1)  # fmt: skip
    assert out.returncode == 0, out.stderr
    mapping = json.loads((tmp_path / "real.mapping.json").read_text())
    n = int(pd.read_csv(trace)["count"].sum())
    assert mapping["requests"] == n and mapping["time_compression"] == 600.0
    assert abs(n - 200) <= 3  # 25 per source and slot, 2 access nodes, 4 slots (cumulative rounding)
    with serving(scenario, models_dir, tmp_path / "run", None) as (nodes, _):
        assert {"ap-1", "ap-2"} <= set(nodes)
        load = run_cli("load", scenario, "--run-dir", tmp_path / "run", "--trace", trace, "--duration", 4, "--json")
    assert load.returncode == 0, load.stderr
    rep = json.loads(load.stdout)
    assert rep["sent"] == rep["answered"] == n and rep["errors"] == 0 and rep["lost"] == 0
    assert rep["simulated"]["requests"] == n  # the simulator ran the same trace
