"""Where ``idn serve --backend ray`` puts the nodes (runtime/ray_placement.py),
and the mistakes it refuses in one line before anything starts. No Ray here:
the cluster tests are tests/test_runtime_ray.py."""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest
from runtime_helpers import models_dir  # noqa: F401

from idn.cli import main
from idn.model.scenario import scenario_from_dict
from idn.runtime.ray_placement import RayHost, check_resources, choose_host, default_placement, hosts_from_ray, read_placement


def tree(regional: int = 3, edge_per: int = 3, access_per: int = 3):
    """The tiered tree: 1 cloud, ``regional`` regional nodes, ``edge_per`` edges under each, ``access_per`` access nodes under each edge."""
    return scenario_from_dict({"name": "tree", "tasks": {"generate": {"count": 2, "models_per_task": [2, 2], "seed": 1}},
                               "topology": {"tiered_tree": {"regional": regional, "edge_per_regional": edge_per,
                                                            "access_per_edge": access_per}}})  # fmt: skip


def hosts(k: int, **resources) -> list[RayHost]:
    return [RayHost(f"n{i}", f"10.0.0.{i}", {"CPU": 1.0, **{r: 1.0 for r, at in resources.items() if i in at}}) for i in range(k)]


@pytest.mark.parametrize("k", [1, 2, 3, 5, 13, 50])
def test_default_placement_spreads_and_keeps_a_tier_apart(k):
    idn = tree()
    placed = default_placement(idn, hosts(k), {})
    assert set(placed) == {n.id for n in idn.nodes}
    tier_of = {n.id: n.tier for n in idn.nodes}
    for tier in ("access", "edge", "regional", "cloud"):
        per_host = Counter(placed[n] for n in placed if tier_of[n] == tier)
        size = sum(per_host.values())
        # a tier's nodes on distinct Ray nodes while there are enough, else as even as can be
        assert max(per_host.values()) == -(-size // k), (tier, per_host)
        assert len(per_host) == min(size, k)
    totals = Counter(placed.values())
    assert len(totals) == min(k, 40) and max(totals.values()) - min(totals.values()) <= 1, totals


def test_default_placement_counts_pinned_nodes_and_is_deterministic():
    idn = tree(regional=1, edge_per=2, access_per=2)  # cloud, regional-0, edge-0, edge-1, access-0 .. access-3
    hs = hosts(3, **{"site-a": {0}, "site-b": {1, 2}})
    pinned = {"access-0": "site-a", "access-1": "site-a", "cloud": "site-b"}
    placed = default_placement(idn, hs, pinned)
    assert set(placed) == {n.id for n in idn.nodes} - set(pinned)
    # access-0 and -1 count on n0 (the only site-a); cloud's site-b is on two Ray nodes: not counted
    assert {placed["access-2"], placed["access-3"]} == {"n1", "n2"}
    assert placed["regional-0"] == "n1" and placed["edge-0"] == "n2" and placed["edge-1"] == "n1"  # by hand: fewest in all
    assert placed == default_placement(idn, list(hs), dict(pinned))
    # the same cluster listed in another order places the same way (hosts_from_ray sorts it)
    raw = [{"NodeID": h.node_id, "NodeManagerAddress": h.host, "Resources": h.resources, "Alive": True} for h in hs]
    assert hosts_from_ray(raw[::-1]) == hs
    assert hosts_from_ray([{**raw[0], "Alive": False}, *raw[1:]]) == hs[1:]


def test_choose_host_replaces_a_lost_node_apart_from_its_tier():
    """After a loss: the access node goes where no access node is, the
    busiest Ray node last (the rule that placed it at start)."""
    tier_of = {"a1": "access", "a2": "access", "a3": "access", "e1": "edge", "e2": "edge"}
    where = {"a1": "n0", "a2": "n1", "e1": "n2", "e2": "n2"}
    assert choose_host("access", hosts(3), where, tier_of) == "n2"
    assert choose_host("edge", hosts(3), where, tier_of) == "n0"  # n0, n1: no edge, one node each: the first
    assert choose_host("access", hosts(2), where, tier_of) == "n0"


def test_placement_file_and_resources_are_checked(tmp_path):
    idn = tree(regional=1, edge_per=1, access_per=1)
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"edge-0": "site-b", "access-0": "site-a"}))
    assert read_placement(f, idn) == {"edge-0": "site-b", "access-0": "site-a"}
    for bad, words in [({"edge-9": "site-b"}, ["unknown node 'edge-9'", "edge-0"]),
                       ({"edge-0": 3}, ["'edge-0'", "non-empty string"]), (["edge-0"], ["expected an object"])]:  # fmt: skip
        f.write_text(json.dumps(bad))
        with pytest.raises(ValueError) as exc:
            read_placement(f, idn)
        assert all(w in str(exc.value) for w in words), exc.value
    f.write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_placement(f, idn)
    with pytest.raises(ValueError, match="file not found"):
        read_placement(tmp_path / "none.json", idn)
    check_resources({"edge-0": "site-b"}, hosts(2, **{"site-b": {1}}))
    with pytest.raises(ValueError, match=r"'edge-0' asks for resource 'site-z'.*custom resources: site-b\)$"):
        check_resources({"edge-0": "site-z"}, hosts(2, **{"site-b": {1}}))


def test_serve_refuses_bad_ray_options_before_starting_anything(capsys, models_dir, tmp_path):  # noqa: F811
    scen = models_dir / "live-demo.yaml"
    place = tmp_path / "p.json"
    place.write_text(json.dumps({"edge-9": "site-b"}))
    run = tmp_path / "run"
    for argv, words in [
        (["--placement", place], ["--backend ray"]),
        (["--address", "127.0.0.1:6379"], ["--backend ray"]),
        (["--backend", "ray", "--nodes", "ap-1"], ["--nodes and --peers"]),
        (["--backend", "ray", "--placement", place], ["unknown node 'edge-9'"]),
    ]:
        assert main(["serve", str(scen), "--models", str(models_dir), "--run-dir", str(run), *map(str, argv)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("idn: error:") and all(w in err for w in words), err
    assert not run.exists()


def test_an_actor_sweeps_the_files_of_actors_that_died_without_stopping(tmp_path, monkeypatch):
    """The model files and checkpoint an actor wrote stay behind when its Ray
    node is lost; the next actor on the machine removes those whose process is gone."""
    import subprocess
    import sys
    import tempfile

    from idn.runtime.ray_node import DIR_PREFIX, sweep_stale

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for name, pid in (("gone", dead.stdout.strip()), ("alive", str(os.getpid())), ("unreadable", "not a pid")):
        d = tmp_path / f"{DIR_PREFIX}{name}"
        (d / "models").mkdir(parents=True)
        (d / "owner.pid").write_text(pid)
    (tmp_path / "other-tool-dir").mkdir()
    sweep_stale()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{DIR_PREFIX}alive", f"{DIR_PREFIX}unreadable", "other-tool-dir"]
