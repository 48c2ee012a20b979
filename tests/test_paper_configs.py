"""The study's experiment files: the tree's long sweep (adapt-tree-long)
completes adapt-tree with the workloads its 150 slots cannot hold, under
the same policies, seeds, grid and bounds, and is part of the full study
but not of --quick."""

from __future__ import annotations

from idn.experiments.config import load_experiment
from idn.experiments.reproduce import config_paths


def _experiment(stem: str):
    (path,) = config_paths("paper", False, [stem])
    return load_experiment(path)


def test_adapt_tree_long_is_in_the_full_study_only():
    assert "adapt-tree-long" in [p.stem for p in config_paths("paper", False)]
    assert "adapt-tree-long" not in [p.stem for p in config_paths("paper", True)]
    assert [p.stem for p in config_paths("paper", False, ["adapt-tree-long"])] == ["adapt-tree-long"]


def test_adapt_tree_long_completes_the_tree_with_geants_long_workloads():
    short, long, geant = _experiment("adapt-tree"), _experiment("adapt-tree-long"), _experiment("adapt-geant")
    assert long.name == "adapt-tree-long"  # "adapt" in the name: the report's headline covers it
    assert list(long.scenarios) == list(short.scenarios) == ["big-tree"]
    assert long.policies == short.policies and long.seeds == short.seeds == [0, 1, 2, 3, 4]
    assert long.grid == short.grid and long.bounds and short.bounds
    # the tree now has every workload GEANT has, the long ones as GEANT runs them
    tree = set(long.workloads["big-tree"]) | set(short.workloads["big-tree"])
    assert tree == set(geant.workloads["geant40"])
    for w in ("shift-250", "diurnal"):
        assert long.workloads["big-tree"][w] == geant.workloads["geant40"][w]
    assert long.slots == geant.slots == 500


def test_the_real_demand_sweeps_match_the_adapt_study(monkeypatch):
    """`--only real` names the five real-demand sweeps: the ServeGen traces on
    both study topologies at 0.15x budgets, 7 days (10-minute or hourly slots)
    or a day at 1-minute slots sampled within windows, the adapt study's
    policies, five seeds, bounds. Validated against the shipped excerpt
    (validation reads two slots)."""
    from importlib import resources

    monkeypatch.setenv("IDN_SERVEGEN", str(resources.files("idn") / "data" / "servegen"))
    stems = [p.stem for p in config_paths("paper", False, ["real"])]
    assert stems == ["real-geant", "real-geant-hourly", "real-fine", "real-tree-hourly", "real-tree"]
    assert not any(s.startswith("real") for s in (p.stem for p in config_paths("paper", True)))
    geant = _experiment("adapt-geant")
    days = {}
    for stem in stems:
        exp = _experiment(stem)
        assert exp.policies == geant.policies and exp.seeds == [0, 1, 2, 3, 4] and exp.bounds
        assert exp.grid["budget_scale"] == [0.15] and exp.grid["alpha"] == [2.0]
        ((scenario, workloads),) = exp.workloads.items()
        ((_, spec),) = workloads.items()
        assert spec["kind"] == "servegen" and "path" not in spec  # the data's place is not part of a run's identity
        days[(scenario, spec["slot_seconds"])] = exp.slots * spec["slot_seconds"] / 86400
        assert spec.get("sample", False) == (spec["slot_seconds"] < 600)
    assert days == {("geant40", 600): 7, ("geant40", 3600): 7, ("geant40", 60): 1, ("big-tree", 3600): 7, ("big-tree", 600): 7}


def test_adapt_periodic_runs_the_diurnal_days_of_both_topologies_with_the_periodic_hint():
    periodic, long, geant = _experiment("adapt-periodic"), _experiment("adapt-tree-long"), _experiment("adapt-geant")
    assert "adapt-periodic" in [p.stem for p in config_paths("paper", False)]
    assert "adapt-periodic" not in [p.stem for p in config_paths("paper", True)]
    assert list(periodic.scenarios) == ["geant40", "big-tree"]
    # the same days, seeds, slots, grid and bounds, so the runs pair with the other policies'
    for name, other in (("geant40", geant), ("big-tree", long)):
        assert periodic.workloads[name] == {"diurnal": other.workloads[name]["diurnal"]}
    assert periodic.seeds == long.seeds and periodic.slots == long.slots == geant.slots == 500
    assert periodic.grid == long.grid and periodic.bounds
    (name, params), *rest = periodic.policies
    assert name == "infida" and params["hint"] == "periodic" and params["hint_period"] == 250
    day = periodic.workloads["geant40"]["diurnal"]["day_slots"]
    assert params["hint_period"] == day
