"""A sweep's result store is not trusted blindly: resuming re-checks every
result file (readable, the expected columns and rows, the parameters of the
run its name claims) and runs the damaged ones again, so the results after
recovery equal an uninterrupted sweep's; ``idn report`` names unreadable
files and reports without them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from idn.experiments.store import load_runs, load_slots
from idn.experiments.sweep import run_sweep

TREE = {
    "name": "small-tree",
    "topology": {"tiered_tree": {"regional": 1, "edge_per_regional": 2, "access_per_edge": 1}},
    "tasks": {"generate": {"count": 2, "models_per_task": [2, 3], "seed": 1}},
}
EXPERIMENT = {
    "name": "trust",
    "scenarios": {"tree": "tree.yaml"},
    "workloads": {"stationary": {"kind": "stationary", "rate": 10, "zipf": 0.8}},
    "slots": 12,
    "seeds": [0, 1],
    "policies": {"infida": {}, "cloud-only": {}},
    "bounds": True,
}
TIMING = ["seconds_per_slot", "seconds"]


def idn(*args):
    return subprocess.run([sys.executable, "-m", "idn.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("trust")
    (d / "tree.yaml").write_text(yaml.safe_dump(TREE))
    (d / "exp.yaml").write_text(yaml.safe_dump(EXPERIMENT))
    run_sweep(d / "exp.yaml", d / "ref", progress=False)
    return d


def same(a: Path, b: Path) -> None:
    for load in (load_runs, load_slots):
        x, y = (load(p).drop(columns=TIMING, errors="ignore") for p in (a, b))
        assert len(x) == len(y) > 0
        pd.testing.assert_frame_equal(x, y)


def test_damaged_results_are_run_again_and_equal_the_uninterrupted_sweep(reference, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(reference / "ref", store)
    runs = sorted((store / "runs").glob("*.parquet"))
    bounds = sorted((store / "bounds").glob("*.parquet"))
    assert len(runs) == 4 and len(bounds) == 2
    truncated, foreign, no_slots, empty_slots = runs
    truncated.write_bytes(truncated.read_bytes()[:-40])  # finding 6: a truncated file counted as done
    shutil.copy(runs[1], runs[3])  # a good file under another run's name: the fingerprint differs
    foreign, swapped = runs[1], runs[3]
    (store / "slots" / no_slots.name).unlink()
    pd.DataFrame({"x": [1]}).to_parquet(bounds[0])  # readable, but not a bound
    p = idn("sweep", reference / "exp.yaml", "--out", store, "--quiet")
    assert p.returncode == 0, p.stderr
    assert "4 runs, 3 run now, 1 already done; LP bounds: 1 computed, 1 already done." in p.stdout
    assert "4 damaged result file(s) moved to" in p.stdout
    for line in (
        f"{truncated}: unreadable (",
        f"{swapped}: holds run_id ",
        f"{store / 'slots' / no_slots.name}: missing",
        f"{bounds[0]}: no column 'bound_key'",
    ):
        assert line in p.stdout, p.stdout
    assert foreign.exists() and sorted((store / "corrupt" / "runs").glob("*.parquet"))
    same(reference / "ref", store)
    p = idn("sweep", reference / "exp.yaml", "--out", store, "--quiet")  # and now all is done
    assert "0 run now, 4 already done" in p.stdout and "damaged result file" not in p.stdout


def test_report_names_unreadable_files_and_reports_without_them(reference, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(reference / "ref", store, ignore=shutil.ignore_patterns("report"))
    bad = sorted((store / "runs").glob("*.parquet"))[0]
    bad.write_bytes(b"PAR1 not really")
    bad_slots = sorted((store / "slots").glob("*.parquet"))[-1]
    bad_slots.write_bytes(b"")
    p = idn("report", store)
    assert p.returncode == 0, p.stderr
    warnings = [line for line in p.stderr.splitlines() if line.startswith("idn: warning:")]
    assert len(warnings) == 2, p.stderr
    assert warnings[0].startswith(f"idn: warning: {bad}: unreadable (") and warnings[0].endswith("; reported without it")
    assert warnings[1].startswith(f"idn: warning: {bad_slots}: unreadable (")
    assert "Traceback" not in p.stderr and (store / "report" / "report.html").exists()
    skipped = []
    runs = load_runs(store, skipped)
    assert len(runs) == 3 and bad.stem not in set(runs["run_id"]) and len(skipped) == 1


def test_a_parameter_that_changed_kind_between_versions_still_loads(reference, tmp_path):
    """INFIDA's fill was true/false, now "marginal"/"state": a store holding
    runs of both versions loads, with that column as text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    store = tmp_path / "mixed"
    shutil.copytree(reference / "ref", store)
    infida = [p for p in sorted((store / "runs").glob("*.parquet")) if pq.read_table(p)["policy"][0].as_py() == "infida"]
    assert len(infida) == 2 and pq.read_table(infida[0])["param_fill"][0].as_py() == "marginal"
    old = pq.read_table(infida[0])
    old = old.set_column(old.schema.get_field_index("param_fill"), "param_fill", pa.array([True]))
    pq.write_table(old, infida[0])
    runs = load_runs(store)
    fills = runs.loc[runs.policy == "infida", "param_fill"].tolist()
    assert sorted(fills) == ["marginal", "true"]
    assert len(runs) == len(load_runs(reference / "ref"))
