"""Experiment sweeps: grid expansion, stored values checked against direct
runs, resume after SIGKILL, local vs Ray backends, and bad experiment files."""

from __future__ import annotations

import copy
import json
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from idn.cli import main
from idn.experiments.config import ExperimentError, load_experiment
from idn.experiments.store import load_runs, load_slots
from idn.experiments.sweep import SweepError, expand, run_sweep

TIMING = ["seconds_per_slot", "seconds"]
TREE = {
    "name": "small-tree",
    "topology": {"tiered_tree": {"regional": 1, "edge_per_regional": 2, "access_per_edge": 2}},
    "tasks": {"generate": {"count": 3, "models_per_task": [2, 3], "seed": 1}},
}
EXPERIMENT = {
    "name": "small",
    "scenarios": {"tree": "tree.yaml"},
    "workloads": {"stationary": {"kind": "stationary", "rate": 20, "zipf": 0.8}},
    "slots": 40,
    "seeds": [0, 1],
    "policies": {"infida": {"eta_scale": [0.5, 1]}, "online-greedy": {"window": 5}, "cloud-only": {}},
    "grid": {"alpha": [0.5, 4]},
}
N_RUNS = 2 * 2 * 4  # seeds x alpha x policy variants


def write_experiment(d: Path, exp: dict | None = None) -> Path:
    (d / "tree.yaml").write_text(yaml.safe_dump(TREE))
    path = d / "exp.yaml"
    path.write_text(yaml.safe_dump(exp or EXPERIMENT, sort_keys=False))
    return path


def without_timing(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[c for c in TIMING if c in df.columns])


def assert_same_results(a: Path, b: Path) -> None:
    for load in (load_runs, load_slots):
        x, y = without_timing(load(a)), without_timing(load(b))
        assert len(x) and len(x) == len(y)
        pd.testing.assert_frame_equal(x, y)


@pytest.fixture(scope="module")
def done_sweep(tmp_path_factory):
    """The small experiment swept once, in-process: (experiment file, result dir, summary)."""
    d = tmp_path_factory.mktemp("sweep")
    path = write_experiment(d)
    summary = run_sweep(path, d / "out", progress=False)
    return path, d / "out", summary


# ---------------------------------------------------------------- expansion
def test_expand_crosses_every_axis_with_stable_ids(tmp_path):
    exp = load_experiment(write_experiment(tmp_path))
    runs, bounds = expand(exp)
    assert len(runs) == N_RUNS and bounds == []
    assert len({r.key for r in runs}) == N_RUNS
    assert [r.key for r in runs] == [r.key for r in expand(load_experiment(tmp_path / "exp.yaml"))[0]]
    combos = {(r.params["seed"], r.params["alpha"], r.params["policy"], r.params.get("param_eta_scale")) for r in runs}
    assert len(combos) == N_RUNS
    # one bound group per (seed, alpha): the policies share it
    assert len({r.params["bound_key"] for r in runs}) == 4
    # an int for a float default is the same run as the float
    again = copy.deepcopy(EXPERIMENT)
    again["policies"] = {"infida": {"eta_scale": [1.0]}}
    one = {r.key for r in expand(load_experiment(write_experiment(tmp_path, again)))[0]}
    assert one < {r.key for r in runs}


# ---------------------------------------------------------------- stored values
def test_stored_rows_equal_direct_runs(done_sweep):
    from idn.model.scenario import scenario_from_dict
    from idn.policies.registry import make_policy
    from idn.sim.inputs import count_matrix, request_types_for
    from idn.sim.loop import run_policy
    from idn.workloads import from_spec

    _, out, summary = done_sweep
    assert summary["ran"] == N_RUNS and summary["skipped"] == 0
    runs, slots = load_runs(out), load_slots(out)
    assert len(runs) == N_RUNS and runs["run_id"].is_unique
    assert len(slots) == N_RUNS * 40
    assert not slots.duplicated(["run_id", "slot"]).any()
    assert (out / "experiment.yaml").exists()

    row = runs[(runs.policy == "infida") & (runs.param_eta_scale == 0.5) & (runs.alpha == 4.0) & (runs.seed == 1)]
    assert len(row) == 1
    row = row.iloc[0]
    idn = scenario_from_dict(TREE).with_changes(alpha=4.0)
    trace = from_spec(EXPERIMENT["workloads"]["stationary"], idn.sources, idn.tasks, 40, 1)
    rt = request_types_for(idn, trace)
    counts = count_matrix(rt, trace, slots=40)
    result = run_policy(rt, make_policy("infida", eta_scale=0.5), counts, seed=1)
    expected = result.summary()
    for key in ("total_gain", "normalized_gain", "mean_latency_ms", "mean_accuracy", "model_loads", "control_messages"):
        assert row[key] == pytest.approx(expected[key], rel=1e-12), key
    mine = slots[slots.run_id == row.run_id].reset_index(drop=True)
    cols = [c for c in result.slots.columns if c != "seconds"]
    pd.testing.assert_frame_equal(mine[cols], result.slots[cols], check_dtype=False)
    assert json.loads(row.final_allocation) == idn.allocation_to_ids(result.final_allocation)


def test_common_random_numbers_and_alpha_matters(done_sweep):
    _, out, _ = done_sweep
    slots = load_slots(out)
    # every policy and alpha of one seed sees the same requests, slot by slot
    per_seed = slots.groupby(["seed", "slot"])["requests"].nunique()
    assert (per_seed == 1).all()
    assert not np.array_equal(
        slots[slots.seed == 0].groupby("slot")["requests"].first(), slots[slots.seed == 1].groupby("slot")["requests"].first()
    )
    runs = load_runs(out)
    cloud = runs[runs.policy == "cloud-only"]
    assert np.allclose(cloud.total_gain, 0.0)
    # a dearer accuracy point (alpha) weighs the accuracy term more: gains differ
    g = runs[runs.policy == "online-greedy"].set_index(["seed", "alpha"]).total_gain
    assert g[(0, 0.5)] != g[(0, 4.0)]
    assert runs.lp_bound.isna().all()


def test_rerun_skips_done_and_extension_runs_only_new(done_sweep, tmp_path):
    path, out, _ = done_sweep
    again = run_sweep(path, out, progress=False)
    assert again["ran"] == 0 and again["skipped"] == N_RUNS
    bigger = copy.deepcopy(EXPERIMENT)
    bigger["seeds"] = [0, 1, 2]
    ext = tmp_path / "ext"
    ext.mkdir()
    # copy the finished store, then extend it by one seed
    shutil.copytree(out, ext / "out")
    s = run_sweep(write_experiment(ext, bigger), ext / "out", progress=False)
    assert s["skipped"] == N_RUNS and s["ran"] == N_RUNS // 2
    assert len(load_runs(ext / "out")) == N_RUNS * 3 // 2


# ---------------------------------------------------------------- kill and resume
def test_sigkilled_sweep_resumes_to_identical_results(tmp_path, done_sweep):
    exp = copy.deepcopy(EXPERIMENT)
    exp["slots"] = 150  # long enough runs that the kill lands mid-sweep
    path = write_experiment(tmp_path, exp)
    ref = tmp_path / "ref"
    run_sweep(path, ref, progress=False)
    for attempt in range(3):
        out = tmp_path / f"killed-{attempt}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "idn.cli", "sweep", str(path), "--out", str(out), "--jobs", "1", "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        n = 0
        while proc.poll() is None:
            n = len(list((out / "runs").glob("*.parquet"))) if (out / "runs").exists() else 0
            if n >= 1:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        proc.wait()
        n = len(list((out / "runs").glob("*.parquet")))
        if proc.returncode == -signal.SIGKILL and 1 <= n < N_RUNS:
            break
    else:
        pytest.fail("could not kill the sweep part-way in 3 attempts")
    resumed = run_sweep(path, out, progress=False)
    assert resumed["skipped"] == n and resumed["ran"] == N_RUNS - n
    assert_same_results(out, ref)
    assert load_runs(out)["run_id"].is_unique
    assert not list(out.glob("*/.*.tmp"))  # a temp file of the killed process is cleaned up


# ---------------------------------------------------------------- backends
def test_process_pool_equals_in_process(done_sweep, tmp_path):
    path, out, _ = done_sweep
    s = run_sweep(path, tmp_path / "pool", jobs=2, progress=False)
    assert s["ran"] == N_RUNS
    assert_same_results(tmp_path / "pool", out)


def test_ray_backend_equals_local(done_sweep, tmp_path):
    ray = pytest.importorskip("ray")
    path, out, _ = done_sweep
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")
    try:
        s = run_sweep(path, tmp_path / "ray", backend="ray", progress=False)
    finally:
        ray.shutdown()
    assert s["ran"] == N_RUNS and s["backend"] == "ray"
    assert_same_results(tmp_path / "ray", out)


# ---------------------------------------------------------------- bounds
def test_bounds_computed_once_per_group_and_merged(tmp_path, monkeypatch):
    import idn.upper_bounds

    calls = []

    def fake_bounds(rt, counts):  # known numbers, so the merge can be checked exactly
        calls.append(counts.sum())
        return {"static_lp_bound": float(counts.sum()), "per_slot_lp_bound": 2.0 * float(counts.sum())}

    stub = types.ModuleType("idn.upper_bounds")
    stub.bounds = fake_bounds
    stub.certified_bounds = lambda rt, counts, method: {**fake_bounds(rt, counts), "method": "lp", "seconds": 0.0, "gap": None}
    monkeypatch.setitem(sys.modules, "idn.upper_bounds", stub)
    monkeypatch.setattr(idn, "upper_bounds", stub, raising=False)
    exp = copy.deepcopy(EXPERIMENT)
    exp["bounds"] = True
    s = run_sweep(write_experiment(tmp_path, exp), tmp_path / "out", progress=False)
    assert s["bounds"] == 4 and s["bounds_computed"] == 4 and len(calls) == 4
    runs, slots = load_runs(tmp_path / "out"), load_slots(tmp_path / "out")
    requests = slots.groupby("run_id")["requests"].sum()
    for _, r in runs.iterrows():
        assert r.lp_bound == requests[r.run_id]
        assert r.per_slot_lp_bound == 2 * requests[r.run_id]
        assert r.fraction_of_bound == pytest.approx(r.total_gain / r.lp_bound)
        assert r.fraction_of_per_slot_bound == pytest.approx(r.total_gain / (2 * requests[r.run_id]))
    again = run_sweep(tmp_path / "exp.yaml", tmp_path / "out", progress=False)
    assert again["bounds_computed"] == 0 and len(calls) == 4


@pytest.mark.parametrize("asked, method", [(True, "lp"), ("lp", "lp"), ("fast", "fast")])
def test_the_file_chooses_the_bounds_method(tmp_path, asked, method):
    """`bounds: true` is auto (the LP at this size); `lp` and `fast` are taken
    as they are. Either bound holds for every run of the group."""
    exp = copy.deepcopy(EXPERIMENT)
    exp.update(bounds=asked, seeds=[0], grid={"alpha": [2]})
    run_sweep(write_experiment(tmp_path, exp), tmp_path / "out", progress=False)
    bounds = pd.concat([pd.read_parquet(f) for f in (tmp_path / "out" / "bounds").glob("*.parquet")])
    assert len(bounds) == 1 and (bounds["bound_method"] == method).all()
    runs = load_runs(tmp_path / "out")
    assert (runs["total_gain"] <= runs["per_slot_lp_bound"] * (1 + 1e-9)).all()
    static = runs[runs["policy"] == "cloud-only"]  # a static allocation: under the static bound too
    assert (static["total_gain"] <= static["lp_bound"] * (1 + 1e-9)).all()


def test_another_bounds_method_is_another_bound_not_the_stored_one(tmp_path):
    exp = copy.deepcopy(EXPERIMENT)
    exp.update(bounds="fast", seeds=[0], grid={"alpha": [2]})
    path = write_experiment(tmp_path, exp)
    run_sweep(path, tmp_path / "out", progress=False)
    exp["bounds"] = "lp"
    again = run_sweep(write_experiment(tmp_path, exp), tmp_path / "out", progress=False)
    assert again["bounds_computed"] == 1  # computed with the LP, not the fast bound reused
    methods = sorted(pd.read_parquet(f)["bound_method"].iloc[0] for f in (tmp_path / "out" / "bounds").glob("*.parquet"))
    assert methods == ["fast", "lp"]


# ---------------------------------------------------------------- failures
def test_failing_run_names_it_and_keeps_finished_runs(tmp_path):
    exp = copy.deepcopy(EXPERIMENT)
    exp["seeds"] = [0]
    exp["grid"] = {"alpha": [1]}
    exp["policies"] = {"cloud-only": {}, "fixed": {"allocation": {"nope": []}}}
    path = write_experiment(tmp_path, exp)
    with pytest.raises(SweepError, match=r"run \w+ \(tree/stationary seed=0 alpha=1.*fixed.*unknown node 'nope'"):
        run_sweep(path, tmp_path / "out", progress=False)
    assert load_runs(tmp_path / "out")["policy"].tolist() == ["cloud-only"]


def _bad(tmp_path, change) -> Path:
    exp = copy.deepcopy(EXPERIMENT)
    change(exp)
    return write_experiment(tmp_path, exp)


BAD = {
    "unknown policy": (lambda e: e["policies"].update({"infdia": {}}), "policies.infdia: unknown policy 'infdia'; did you mean infida?"),
    "unknown parameter": (
        lambda e: e["policies"].update({"infida": {"eta_scal": [1]}}),
        "policies.infida: policy 'infida': unknown parameter 'eta_scal'",
    ),
    "empty grid": (lambda e: e["grid"].update({"alpha": []}), "grid.alpha: empty list"),
    "empty policy axis": (lambda e: e["policies"].update({"infida": {"eta_scale": []}}), "policies.infida.eta_scale: empty list"),
    "unknown axis": (lambda e: e["grid"].update({"alpah": [1]}), "grid.alpah: unknown axis (did you mean 'alpha'?)"),
    "missing scenario file": (lambda e: e["scenarios"].update({"x": "nope.yaml"}), "scenarios.x: scenario file not found:"),
    "invalid scenario": (lambda e: e["scenarios"].update({"x": {"nodes": []}}), "scenarios.x: tasks: required"),
    "unknown workload kind": (
        lambda e: e["workloads"].update({"w": {"kind": "stationery"}}),
        "workloads.w: unknown workload kind 'stationery'",
    ),
    "unknown workload parameter": (
        lambda e: e["workloads"].update({"w": {"kind": "stationary", "rat": 2}}),
        "workloads.w: unknown parameter 'rat' for workload kind 'stationary'",
    ),
    "bad workload value": (lambda e: e["workloads"].update({"w": {"kind": "stationary", "rate": -3}}), "workloads.w: "),
    "unknown key": (lambda e: e.update({"seed": 3}), "seed: unknown key (did you mean 'seeds'?)"),
    "bad slots": (lambda e: e.update({"slots": 0}), "slots: must be > 0, got 0"),
    "empty seeds": (lambda e: e.update({"seeds": []}), "seeds: empty list"),
    "negative budget scale": (lambda e: e["grid"].update({"budget_scale": [1, -1]}), "grid.budget_scale[1]: must be >= 0"),
    "unknown bounds method": (lambda e: e.update({"bounds": "exact"}), "bounds: must be true, false, auto, lp or fast, got 'exact'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_experiment_fails_at_once_with_one_line(tmp_path, capsys, case):
    change, message = BAD[case]
    path = _bad(tmp_path, change)
    with pytest.raises(ExperimentError) as err:
        load_experiment(path)
    assert str(err.value).startswith(f"{path}: {message}")
    assert "\n" not in str(err.value)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == f"idn: error: {err.value}"
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written


def test_missing_experiment_file(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == f"idn: error: experiment file not found: {tmp_path / 'none.yaml'}"
