"""``idn serve`` / ``idn load`` / the ``catalog:`` key: user mistakes end in
one line and exit status 2, before any process starts."""

from __future__ import annotations

import json

import pytest
from runtime_helpers import models_dir  # noqa: F401

from idn.cli import main
from idn.model.scenario import load_scenario


def _fails(capsys, argv, *words):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("idn: error:"), err
    for w in words:
        assert w in err, err


def test_the_built_catalog_feeds_the_simulator(models_dir):  # noqa: F811
    idn = load_scenario(models_dir / "live-demo.yaml")
    assert [n.tier for n in idn.nodes].count("access") == 2 and {n.tier for n in idn.nodes} == {"access", "edge", "regional", "cloud"}
    assert len(idn.tasks) == 3 and all(sum(m.task == t for m in idn.models) >= 4 for t in idn.tasks)
    rows = {r.split(",")[0]: r.split(",") for r in (models_dir / "catalog.csv").read_text().splitlines()[1:]}
    m = idn.models[idn.model_index["digits/digits-logreg"]]
    assert m.accuracy == pytest.approx(float(rows["digits-logreg"][5])) and m.size_mb == pytest.approx(float(rows["digits-logreg"][4]))
    # an access node's budget holds the smallest model of each task, not every model
    ap = idn.nodes[idn.node_index["ap-1"]]
    assert idn.size_mb.sum() > ap.budget_mb >= sum(min(x.size_mb for x in idn.models if x.task == t) for t in idn.tasks)


def test_serve_rejects_bad_input(capsys, models_dir, tmp_path):  # noqa: F811
    scen = models_dir / "live-demo.yaml"
    _fails(capsys, ["serve", tmp_path / "nope.yaml", "--models", models_dir], "nope.yaml")
    _fails(capsys, ["serve", scen, "--models", tmp_path], "no catalog.csv")
    bad = tmp_path / "alloc.json"
    bad.write_text(json.dumps({"ap-1": ["digits/digits-forest", "digits/digits-mlp-large", "wine/wine-forest"]}))
    _fails(capsys, ["serve", scen, "--models", models_dir, "--allocation", bad, "--run-dir", tmp_path / "r"], "over its budget")
    bad.write_text(json.dumps({"ap-9": []}))
    _fails(capsys, ["serve", scen, "--models", models_dir, "--allocation", bad, "--run-dir", tmp_path / "r"], "unknown node 'ap-9'")
    _fails(capsys, ["serve", scen, "--models", models_dir, "--nodes", "ap-1", "--run-dir", tmp_path / "r"], "--peers")
    _fails(capsys, ["serve", scen, "--models", models_dir, "--policy", "greedyy", "--run-dir", tmp_path / "r"], "unknown policy")


def test_load_rejects_bad_input(capsys, models_dir, tmp_path):  # noqa: F811
    scen = models_dir / "live-demo.yaml"
    _fails(capsys, ["load", scen, "--run-dir", tmp_path], "no nodes.json")
    (tmp_path / "nodes.json").write_text(json.dumps([{"id": "ap-1", "tier": "access", "url": "http://10.0.0.7:80", "pid": 1}]))
    (tmp_path / "serve.json").write_text(json.dumps({"models": str(models_dir), "epoch": 0, "peers": {}}))
    _fails(capsys, ["load", scen, "--run-dir", tmp_path], "loopback")
    trace = tmp_path / "t.csv"
    trace.write_text("slot,source,task,count\n0,ap-1,speech,3\n")
    _fails(capsys, ["load", scen, "--run-dir", tmp_path, "--trace", trace], "unknown task 'speech'")


def test_models_build_is_seeded_and_measures_what_it_wrote(models_dir, tmp_path):  # noqa: F811
    """A second build with the same seed gives the same models; the catalog's
    accuracy is what the .onnx file scores on the held-out data written beside it."""
    import csv
    import warnings

    import numpy as np

    from idn.runtime.models import _session, build_models, predict

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = build_models(tmp_path / "again", seed=0, quick=True, runs=5)
    with open(models_dir / "catalog.csv", newline="") as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    assert len(again) == len(rows) >= 12 and len({b.task for b in again}) >= 3
    for b in again:
        r = rows[b.name]
        assert b.accuracy == pytest.approx(float(r["top1_accuracy"]), abs=1e-6)
        assert b.size_mb == pytest.approx(float(r["size_mb"]), rel=1e-5)
        assert float(r["size_mb"]) * 1e6 == pytest.approx((models_dir / r["file"]).stat().st_size, rel=1e-5)
        assert 0 < float(r["cpu_ms_per_step"]) < 1000
    r = rows["wine-forest"]
    data = np.load(models_dir / "data" / "wine.npz")
    acc = float(np.mean(predict(_session(models_dir / r["file"]), data["x"]) == data["y"]))
    assert acc == pytest.approx(float(r["top1_accuracy"]), abs=1e-6)
    # variants span accuracy and size
    assert max(b.size_mb for b in again) > 10 * min(b.size_mb for b in again)


def test_serve_rejects_a_bad_live_policy(capsys, models_dir, tmp_path):  # noqa: F811
    scen = models_dir / "live-demo.yaml"
    base = ["serve", scen, "--models", models_dir, "--run-dir", tmp_path / "run"]
    _fails(capsys, [*base, "--policy", "infida", "--param", "eta_scale=-1"], "eta_scale")
    _fails(capsys, [*base, "--policy", "infida", "--param", "rounding=sometimes"], "rounding")
    _fails(capsys, [*base, "--policy", "infidaa"], "unknown policy", "infida")
    alloc = tmp_path / "a.json"
    alloc.write_text("{}")
    _fails(capsys, [*base, "--policy", "lfu", "--allocation", alloc], "--allocation", "lfu")
    assert not (tmp_path / "run").exists()  # nothing started, nothing written


def test_paths_that_cross_both_ways_are_refused_for_live_infida(models_dir):  # noqa: F811
    """Paths to the nearest repository never cross both ways (they form a
    shortest-path forest), so the check guards request types built some
    other way: here, the demo's types with one path reversed by hand."""
    import numpy as np

    from idn.runtime.control import check_control_graph
    from idn.runtime.routing import live_request_types

    rt = live_request_types(load_scenario(models_dir / "live-demo.yaml"))
    check_control_graph(rt)  # the demo's paths: fine
    rho = int(np.argmax(np.diff(rt.path_offsets)))  # a type from an access node: ap, edge, regional, cloud
    a = rt.path_offsets[rho]
    p = rt.path_nodes[a : rt.path_offsets[rho + 1]]
    assert len(p) >= 3
    crossed = rt.path_nodes.copy()
    crossed[a : a + 2] = p[:2][::-1]  # p2 -> p1 -> p3: against the paths of p1's other types
    rt.path_nodes = crossed
    with pytest.raises(ValueError, match="never cross both ways"):
        check_control_graph(rt)
    assert np.array_equal(rt.path_nodes, crossed)


def test_the_shipped_demo_serves_at_every_tier(models_dir):  # noqa: F811
    """live-demo.yaml as 'idn models build' writes it (here on the quick build):
    with the allocation 'idn serve' computes and the scenario's own load,
    every tier serves a visible share, and the cloud's answers are the slowest."""
    from idn.runtime.launcher import allocation_from_policy
    from idn.runtime.load import simulate
    from idn.sim.inputs import default_trace

    idn = load_scenario(models_dir / "shipped-demo.yaml")
    alloc = allocation_from_policy(idn, "static-greedy")
    sim = simulate(idn, default_trace(idn, 10, 0), alloc)
    shares = sim["served_per_tier"]
    assert set(shares) == {"access", "edge", "regional", "cloud"}
    assert all(f >= 0.05 for f in shares.values()), shares
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    # the demo's capacities bind at the three lower tiers: not one of them could take it all
    assert max(shares.values()) < 0.5, shares
