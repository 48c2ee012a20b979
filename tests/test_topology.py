import json
import math
from importlib import resources

import networkx as nx
import pytest
import topohub
from hypothesis import given, settings
from hypothesis import strategies as st

from idn.model.request_types import build_request_types
from idn.model.scenario import scenario_from_dict
from idn.model.topology import (
    _sanitize,
    tiered_tree,
    topohub_names,
    topology_demand_weights,
    topozoo,
)


def as_graph(nodes, links):
    g = nx.Graph()
    g.add_nodes_from(n["id"] for n in nodes)
    g.add_edges_from((ln["a"], ln["b"], {"latency_ms": ln["latency_ms"]}) for ln in links)
    return g


# ---- tiered tree -------------------------------------------------------------


def test_tiered_tree_defaults_shape():
    nodes, links = tiered_tree()
    assert len(nodes) == 40 and len(links) == 39
    tiers = [n["tier"] for n in nodes]
    assert tiers == ["cloud"] + ["regional"] * 3 + ["edge"] * 9 + ["access"] * 27
    g = as_graph(nodes, links)
    assert nx.is_tree(g)
    by_id = {n["id"]: n for n in nodes}
    assert by_id["cloud"]["repository"] and sum(n["repository"] for n in nodes) == 1
    assert by_id["access-5"] == {"id": "access-5", "tier": "access", "hardware": "cpu", "budget_mb": 100.0,
                                 "speed": 0.25, "workers": 1, "repository": False}  # fmt: skip
    assert by_id["edge-4"]["hardware"] == "gpu" and by_id["edge-4"]["budget_mb"] == 500.0
    assert by_id["regional-2"]["workers"] == 4 and by_id["regional-2"]["budget_mb"] == 4000.0
    assert by_id["cloud"]["workers"] == 8


def test_tiered_tree_latencies_and_parents():
    nodes, links = tiered_tree()
    g = as_graph(nodes, links)
    # access-a hangs under edge-(a // 3), which hangs under regional-(a // 9)
    for a in range(27):
        path = nx.shortest_path(g, f"access-{a}", "cloud")
        assert path == [f"access-{a}", f"edge-{a // 3}", f"regional-{a // 9}", "cloud"]
        lats = [g[u][v]["latency_ms"] for u, v in zip(path[:-1], path[1:])]
        assert lats == [2.0, 8.0, 25.0]
        assert nx.shortest_path_length(g, f"access-{a}", "cloud", weight="latency_ms") == 35.0


def test_tiered_tree_request_paths():
    nodes, links = tiered_tree()
    idn = scenario_from_dict({"nodes": nodes, "links": links, "tasks": {"generate": {"count": 2, "seed": 3}}})
    rt = build_request_types(idn)
    assert rt.n_types == 27 * 2
    for rho in range(rt.n_types):
        path = [idn.nodes[v].id for v in rt.path(rho)]
        assert len(path) == 4 and path[-1] == "cloud"
        assert [idn.nodes[idn.node_index[p]].tier for p in path] == ["access", "edge", "regional", "cloud"]


def test_tiered_tree_overrides_and_budget_scale():
    nodes, links = tiered_tree(latency_ms={"edge_regional": 5}, speed={"edge": 0.75}, budget_scale=0.5,
                               budget_mb={"access": 60})  # fmt: skip
    by_id = {n["id"]: n for n in nodes}
    assert by_id["access-0"]["budget_mb"] == 30.0
    assert by_id["edge-0"]["budget_mb"] == 250.0 and by_id["edge-0"]["speed"] == 0.75
    assert by_id["regional-0"]["budget_mb"] == 2000.0
    assert {ln["latency_ms"] for ln in links if ln["a"].startswith("edge")} == {5.0}


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.floats(0.1, 50), st.floats(0.1, 50),
       st.floats(0.1, 50))  # fmt: skip
@settings(max_examples=40, deadline=None)
def test_tiered_tree_any_size(r, e, a, l1, l2, l3):
    nodes, links = tiered_tree(r, e, a, latency_ms={"access_edge": l1, "edge_regional": l2, "regional_cloud": l3})
    assert len(nodes) == 1 + r + r * e + r * e * a
    g = as_graph(nodes, links)
    assert nx.is_tree(g)
    dist = nx.single_source_dijkstra_path_length(g, "cloud", weight="latency_ms")
    for n in nodes:
        want = {"cloud": 0, "regional": l3, "edge": l3 + l2, "access": l3 + l2 + l1}[n["tier"]]
        assert dist[n["id"]] == pytest.approx(want)
        assert g.degree(n["id"]) == {"cloud": r, "regional": e + 1, "edge": a + 1, "access": 1}[n["tier"]]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"regional": 0}, "regional: must be an integer >= 1, got 0"),
        ({"latency_ms": {"access_cloud": 1}}, "latency_ms: unknown key 'access_cloud'"),
        ({"latency_ms": {"access_edge": -1}}, "latency_ms.access_edge: must be > 0, got -1"),
        ({"speed": {"edge": 0}}, "speed.edge: must be > 0, got 0"),
        ({"hardware": {"core": "gpu"}}, "hardware: unknown tier 'core'"),
        ({"budget_scale": -2}, "budget_scale: must be >= 0, got -2"),
    ],
)
def test_tiered_tree_bad_parameters(kwargs, message):
    with pytest.raises(ValueError) as info:
        tiered_tree(**kwargs)
    assert str(info.value).startswith(message)


# ---- topology zoo ----------------------------------------------------------------


def raw_geant():
    """Straight from topohub's file: {(name_a, name_b): km}, degrees by name."""
    raw = json.loads((resources.files(topohub) / "data/topozoo/Geant2012.json").read_text())
    names = {str(n["id"]): n["name"] for n in raw["nodes"]}
    dist = {frozenset((names[str(e["source"])], names[str(e["target"])])): e["dist"] for e in raw["edges"]}
    return names, dist


def test_geant_latencies_from_distance():
    names, dist = raw_geant()
    nodes, links = topozoo("Geant2012", per_hop_ms=0.7)
    assert len(nodes) == len(names) + 1 and nodes[0]["id"] == "cloud"
    assert {n["id"] for n in nodes[1:]} == set(names.values())  # GEANT names are already clean and unique
    isp = [ln for ln in links if "cloud" not in (ln["a"], ln["b"])]
    assert len(isp) == len(dist)
    for ln in isp:
        assert ln["latency_ms"] == pytest.approx(dist[frozenset((ln["a"], ln["b"]))] / 200 + 0.7, abs=1e-12)
    assert nx.is_connected(as_graph(nodes, links))


def test_geant_cloud_and_tier_rule():
    nodes, links = topozoo("Geant2012")
    g = as_graph(nodes, links)
    cloud_links = [ln for ln in links if "cloud" in (ln["a"], ln["b"])]
    assert len(cloud_links) == 1 and cloud_links[0]["latency_ms"] == 20.0
    attach = cloud_links[0]["a"]
    # plain reference: the most central ISP node by total latency (Floyd-Warshall)
    isp = g.copy()
    isp.remove_node("cloud")
    fw = nx.floyd_warshall(isp, weight="latency_ms")
    totals = {u: sum(fw[u].values()) for u in isp}
    assert totals[attach] == pytest.approx(min(totals.values()))
    assert attach == "DE"

    tier = {n["id"]: n["tier"] for n in nodes}
    counts = {t: sum(1 for v in tier.values() if v == t) for t in ("cloud", "regional", "edge", "access")}
    n_isp = len(nodes) - 1
    assert counts == {"cloud": 1, "regional": math.ceil(n_isp / 3), "access": math.ceil(n_isp / 3),
                      "edge": n_isp - 2 * math.ceil(n_isp / 3)}  # fmt: skip
    assert tier[attach] == "regional"
    deg = {u: isp.degree(u) for u in isp}
    rank = {"access": 0, "edge": 1, "regional": 2}
    for u in isp:
        for v in isp:
            if deg[u] > deg[v] and u != attach and v != attach:
                assert rank[tier[u]] >= rank[tier[v]], (u, v)
    by_id = {n["id"]: n for n in nodes}
    assert by_id["MT"]["tier"] == "access" and by_id["MT"]["hardware"] == "cpu" and by_id["MT"]["budget_mb"] == 100.0
    assert by_id["cloud"]["repository"] and not any(n["repository"] for n in nodes[1:])


def test_geant_deterministic_and_options():
    assert topozoo("Geant2012") == topozoo("Geant2012")
    nodes, links = topozoo("Geant2012", cloud="NL", cloud_latency_ms=7, budget_scale=2)
    assert {"a": "NL", "b": "cloud", "latency_ms": 7.0} in links
    assert {n["id"]: n["budget_mb"] for n in nodes}["MT"] == 200.0
    nodes, _ = topozoo("Geant2012", regional_fraction=0, access_fraction=1)
    assert {n["tier"] for n in nodes[1:]} == {"access"}


def test_topozoo_unknown_name_suggests():
    with pytest.raises(ValueError, match=r"unknown topology 'Geant201'.*did you mean.*'Geant2012'"):
        topozoo("Geant201")
    with pytest.raises(ValueError, match=r"cloud: no node 'Germany'"):
        topozoo("Geant2012", cloud="Germany")
    assert "Geant2012" in topohub_names() and len(topohub_names()) > 100


def test_duplicate_names_get_suffixes():
    nodes, links = topozoo("Garr199904")
    ids = [n["id"] for n in nodes]
    assert len(set(ids)) == len(ids)
    assert "MI" in ids and "MI-2" in ids
    assert all(_sanitize(i) == i for i in ids)
    g = as_graph(nodes, links)
    assert set(g.nodes) == set(ids) and nx.is_connected(g)


def test_sanitize():
    assert _sanitize("São Paulo, BR") == "Sao-Paulo-BR"
    assert _sanitize("  (x) ") == "x"
    assert _sanitize("???") == ""


def test_demand_weights():
    assert topology_demand_weights("Geant2012") is None  # topohub has no demands for the Zoo
    raw = topohub.get("sndlib/geant")
    weights = topology_demand_weights("sndlib/geant")
    nodes, _ = topozoo("sndlib/geant")
    assert set(weights) == {n["id"] for n in nodes[1:]}
    total = sum(sum(row.values()) for row in raw["graph"]["demands"].values())
    assert sum(weights.values()) == pytest.approx(total)
    at = next(n["id"] for n in raw["nodes"] if n["name"] == "at1.at")
    assert weights["at1.at"] == pytest.approx(sum(raw["graph"]["demands"][int(at)].values()))
