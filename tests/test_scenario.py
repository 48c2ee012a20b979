import copy
import csv
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import yaml

from idn.model.catalog import catalog, catalog_names
from idn.model.request_types import build_request_types
from idn.model.scenario import ScenarioError, load_default_scenario, load_scenario, scenario_from_dict

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny.yaml"


def tiny() -> dict:
    return yaml.safe_load(TINY.read_text())


def errors_of(d: dict) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(d)
    return info.value.errors


# ---- catalog ---------------------------------------------------------------------


def test_catalog_matches_csv():
    rows = list(csv.DictReader((resources.files("idn") / "data" / "keras_applications.csv").open()))
    cat = catalog()
    assert catalog_names() == [r["model"] for r in rows] and len(cat) == 26
    for r in rows:
        e = cat[r["model"]]
        assert e.accuracy == float(r["top1_accuracy"]) and e.size_mb == float(r["size_mb"])
        assert e.service_ms == {"cpu": float(r["cpu_ms_per_step"]), "gpu": float(r["gpu_ms_per_step"])}
    assert cat["MobileNetV2"].service_ms == {"cpu": 25.9, "gpu": 3.8}


def test_catalog_bad_file(tmp_path):
    bad = tmp_path / "c.csv"
    bad.write_text("model,size_mb\nX,3\n")
    with pytest.raises(ValueError, match="missing column"):
        catalog(bad)


# ---- loading the shipped scenarios -----------------------------------------------


def test_tiny_example():
    idn = load_scenario(TINY)
    assert idn.name == "tiny" and idn.alpha == 1.0 and idn.slot_seconds == 1.0
    assert [n.id for n in idn.nodes] == ["cloud", "edge-1", "ap-1"]
    assert idn.tasks == ["vision-a"]
    assert [m.id for m in idn.models] == ["vision-a/small", "vision-a/MobileNetV2"]
    mnv2 = idn.models[1]
    assert (mnv2.task, mnv2.accuracy, mnv2.size_mb, mnv2.service_ms) == ("vision-a", 0.713, 14.0, {"cpu": 25.9, "gpu": 3.8})
    assert idn.graph["edge-1"]["cloud"]["latency_ms"] == 18.5 and idn.graph.number_of_edges() == 2
    assert idn.sources == ["ap-1"]
    assert idn.workload == {"kind": "stationary", "rate": 20, "zipf": 0.8}
    v, m = idn.node_index["ap-1"], idn.model_index["vision-a/small"]
    assert idn.service_time_ms[v, m] == pytest.approx(25.9 / 0.5)
    assert idn.capacity[v, m] == pytest.approx(2 * 1000 / (25.9 / 0.5))
    rt = build_request_types(idn)
    assert rt.n_types == 1 and [idn.nodes[v].id for v in rt.path(0)] == ["ap-1", "edge-1", "cloud"]


def test_default_scenario():
    idn = load_default_scenario()
    assert idn.name == "geant-demo" and 1 <= idn.alpha <= 2 and idn.workload["kind"] == "stationary"
    assert len(idn.tasks) == 10 and idn.tasks[0] == "task-0"
    per_task = np.bincount(idn.model_task)
    assert ((6 <= per_task) & (per_task <= 8)).all()
    assert len({m.id for m in idn.models}) == idn.n_models
    assert sum(n.repository for n in idn.nodes) == 1
    assert idn.sources == [n.id for n in idn.nodes if n.tier == "access"] and idn.sources
    rt = build_request_types(idn)
    assert rt.n_types == len(idn.sources) * 10
    assert [m.id for m in load_default_scenario().models] == [m.id for m in idn.models]


def test_json_and_default_name(tmp_path):
    import json

    path = tmp_path / "mine.json"
    d = tiny()
    del d["name"]
    path.write_text(json.dumps(d))
    assert load_scenario(path).name == "mine"


# ---- semantics ---------------------------------------------------------------------


def test_default_sources_rule():
    d = tiny()
    del d["sources"]
    assert scenario_from_dict(d).sources == ["ap-1"]
    d["nodes"][2]["tier"] = "edge"  # no access node left: every non-repository node
    assert scenario_from_dict(d).sources == ["edge-1", "ap-1"]


def test_generated_tasks_seeded():
    d = {**tiny(), "tasks": {"generate": {"count": 10, "models_per_task": [6, 8], "seed": 1}}}
    a, b = scenario_from_dict(d), scenario_from_dict(copy.deepcopy(d))
    assert a.tasks == [f"task-{i}" for i in range(10)]
    assert [m.id for m in a.models] == [m.id for m in b.models]
    names = catalog_names()
    for t in a.tasks:
        archs = [m.id.split("/", 1)[1] for m in a.models if m.task == t]
        assert 6 <= len(archs) <= 8 and len(set(archs)) == len(archs)
        assert archs == sorted(archs, key=names.index)  # catalog order
    d["tasks"]["generate"]["seed"] = 2
    assert [m.id for m in scenario_from_dict(d).models] != [m.id for m in a.models]
    d["tasks"] = {"generate": {"count": 3, "models_per_task": 2, "architectures": ["MobileNet", "VGG16"]}}
    assert [m.id for m in scenario_from_dict(d).models][:2] == ["task-0/MobileNet", "task-0/VGG16"]  # pool order


def test_topology_with_overrides():
    d = {
        "topology": {"tiered_tree": {"regional": 1, "edge_per_regional": 1, "access_per_edge": 2}},
        "nodes": [{"id": "edge-0", "budget_mb": 123}, {"id": "extra", "tier": "access"}],
        "links": [{"a": "access-0", "b": "edge-0", "latency_ms": 4}, {"a": "extra", "b": "edge-0", "latency_ms": 1}],
        "tasks": [{"id": "t", "models": ["MobileNet"]}],
    }
    idn = scenario_from_dict(d)
    assert [n.id for n in idn.nodes] == ["cloud", "regional-0", "edge-0", "access-0", "access-1", "extra"]
    edge = idn.nodes[2]
    assert (edge.budget_mb, edge.hardware, edge.speed) == (123, "gpu", 0.5)  # only the given field changed
    assert idn.graph["access-0"]["edge-0"]["latency_ms"] == 4.0
    assert idn.graph["access-1"]["edge-0"]["latency_ms"] == 2.0
    assert idn.sources == ["access-0", "access-1", "extra"]
    geant = scenario_from_dict({"topology": {"topozoo": "Geant2012", "per_hop_ms": 1}, "tasks": d["tasks"]})
    assert geant.n_nodes == 38 and geant.nodes[0].repository


# ---- errors: one message per problem, all of them -------------------------------------


def mutate(fn):
    d = tiny()
    fn(d)
    return d


CASES = [
    ("unknown link node", lambda d: d["links"][0].update(a="ap-9"), "links[0].a: unknown node 'ap-9' (did you mean 'ap-1'?)"),
    ("negative budget", lambda d: d["nodes"][2].update(budget_mb=-5), "nodes[2].budget_mb: must be >= 0, got -5"),
    ("zero speed", lambda d: d["nodes"][1].update(speed=0), "nodes[1].speed: must be > 0, got 0"),
    ("zero workers", lambda d: d["nodes"][1].update(workers=0), "nodes[1].workers: must be > 0, got 0"),
    ("fractional workers", lambda d: d["nodes"][1].update(workers=1.5), "nodes[1].workers: must be an integer, got 1.5"),
    ("negative latency", lambda d: d["links"][1].update(latency_ms=-1), "links[1].latency_ms: must be > 0, got -1"),
    ("zero service time", lambda d: d["tasks"][0]["models"][0]["service_ms"].update(gpu=0),
     "tasks[0].models[0].service_ms.gpu: must be > 0, got 0"),
    ("accuracy above 1", lambda d: d["tasks"][0]["models"][0].update(accuracy=71), "tasks[0].models[0].accuracy: must be <= 1, got 71"),
    ("accuracy zero", lambda d: d["tasks"][0]["models"][0].update(accuracy=0), "tasks[0].models[0].accuracy: must be > 0, got 0"),
    ("task without model", lambda d: d["tasks"].append({"id": "vision-b", "models": []}), "tasks[1] 'vision-b': has no model"),
    ("no repository", lambda d: (d["nodes"][0].update(repository=False), d["tasks"].append({"id": "vision-b", "models": ["VGG16"]})),
     "tasks[1] 'vision-b': no repository can serve it (no node has repository: true)"),
    ("unreachable", lambda d: d["links"].pop(), "nodes[1] 'edge-1': no path to any repository"),
    ("duplicate node", lambda d: d["nodes"].append({"id": "edge-1", "tier": "edge"}), "nodes[3].id: duplicate node id 'edge-1' (also nodes[1])"),
    ("duplicate task", lambda d: d["tasks"].append({"id": "vision-a", "models": ["VGG16"]}), "tasks[1].id: duplicate task id 'vision-a' (also tasks[0])"),
    ("duplicate model", lambda d: d["tasks"][0]["models"].append("MobileNetV2"),
     "tasks[0].models[2]: duplicate model id 'MobileNetV2' in task 'vision-a' (also models[1])"),
    ("unknown tier", lambda d: d["nodes"][1].update(tier="core"), "nodes[1].tier: must be one of 'access', 'edge', 'regional' or 'cloud', got 'core'"),
    ("unknown hardware", lambda d: d["nodes"][1].update(hardware="tpu"), "nodes[1].hardware: must be one of 'cpu' or 'gpu', got 'tpu'"),
    ("unknown catalog name", lambda d: d["tasks"][0]["models"].append("MobilNetV2"),
     "tasks[0].models[2]: unknown catalog model 'MobilNetV2' (did you mean 'MobileNetV2', 'MobileNet'?)"),
    ("unknown top-level key", lambda d: d.update(sourcs=["ap-1"]), "sourcs: unknown key (did you mean 'sources'?)"),
    ("unknown node key", lambda d: d["nodes"][1].update(budget=3), "nodes[1].budget: unknown key (did you mean 'budget_mb'?)"),
    ("unknown source", lambda d: d.update(sources=["ap-1", "ap-7"]), "sources[1]: unknown node 'ap-7' (did you mean 'ap-1'?)"),
    ("missing service time", lambda d: d["tasks"][0]["models"][0]["service_ms"].pop("cpu"),
     "tasks[0].models[0].service_ms: no 'cpu' time, but node 'ap-1' has cpu hardware"),
    ("self link", lambda d: d["links"].append({"a": "ap-1", "b": "ap-1", "latency_ms": 1}), "links[2]: link from node 'ap-1' to itself"),
    ("duplicate link", lambda d: d["links"].append({"a": "edge-1", "b": "ap-1", "latency_ms": 1}),
     "links[2]: duplicate link 'edge-1'-'ap-1' (also links[0])"),
    ("missing tasks", lambda d: d.pop("tasks"), "tasks: required (a list of tasks, or {generate: {...}})"),
    ("missing key", lambda d: d["links"][0].pop("latency_ms"), "links[0].latency_ms: required"),
    ("slash in task id", lambda d: d["tasks"][0].update(id="a/b"),
     "tasks[0].id: must not contain '/' (model ids are '<task>/<model>'), got 'a/b'"),
    ("negative alpha", lambda d: d.update(alpha=-1), "alpha: must be >= 0, got -1"),
    ("bad topology", lambda d: d.update(topology={"topozoo": "Geant201"}), "topology.topozoo: unknown topology 'Geant201'"),
    ("bad topology option", lambda d: d.update(topology={"tiered_tree": {"regionals": 2}}), "topology.tiered_tree.regionals: unknown parameter (did you mean 'regional'"),
    ("bad tier override", lambda d: d.update(topology={"tiered_tree": {"speed": {"edge": -1}}}), "topology.tiered_tree.speed.edge: must be > 0, got -1"),
    ("bad generate", lambda d: d.update(tasks={"generate": {"count": 2, "models_per_task": [9, 3]}}),
     "tasks.generate.models_per_task: must satisfy 1 <= lo <= hi, got [9, 3]"),
    ("too many per task", lambda d: d.update(tasks={"generate": {"count": 2, "models_per_task": 40}}),
     "tasks.generate.models_per_task: at most 26 architectures available, got [40, 40]"),
]  # fmt: skip


@pytest.mark.parametrize("name, fn, message", CASES, ids=[c[0] for c in CASES])
def test_error_messages(name, fn, message):
    errors = errors_of(mutate(fn))
    assert any(e.startswith(message) for e in errors), errors
    assert all("\n" not in e for e in errors)


def test_all_problems_are_collected():
    def many(d):
        d["nodes"][2].update(budget_mb=-5)
        d["nodes"][1].update(hardware="tpu")
        d["links"][0].update(a="ap-9")
        d["tasks"].append({"id": "vision-b", "models": []})
        d["tasks"][0]["models"].append("Nope")
        d["extra"] = 1

    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(mutate(many))
    err = info.value
    assert isinstance(err, ValueError) and len(err.errors) == 6
    assert str(err) == "\n".join(err.errors)
    for frag in ("nodes[2].budget_mb", "nodes[1].hardware", "links[0].a", "tasks[1] 'vision-b'", "tasks[0].models[2]", "extra:"):
        assert sum(e.startswith(frag) for e in err.errors) == 1, (frag, err.errors)


def test_yaml_syntax_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nnodes:\n  - {id: a, tier: access\nlinks: []\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    (msg,) = info.value.errors
    assert msg.startswith(f"{path}:4:") and "YAML syntax error" in msg
    assert info.value.path == path


def test_file_errors(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario(tmp_path / "none.yaml")
    (tmp_path / "e.yaml").write_text("")
    with pytest.raises(ScenarioError, match="empty scenario file"):
        load_scenario(tmp_path / "e.yaml")
    (tmp_path / "l.yaml").write_text("- 1\n")
    with pytest.raises(ScenarioError, match="must be a mapping"):
        load_scenario(tmp_path / "l.yaml")
    (tmp_path / "b.json").write_text('{"name": }')
    with pytest.raises(ScenarioError, match=r"b\.json:1:10: JSON syntax error"):
        load_scenario(tmp_path / "b.json")


def test_catalog_file_relative_to_scenario(tmp_path):
    (tmp_path / "cat.csv").write_text(
        "model,size_mb,top1_accuracy,cpu_ms_per_step,gpu_ms_per_step\nTinyNet,1,0.5,10,1\n"
    )
    d = tiny()
    d["catalog"] = "cat.csv"
    d["tasks"][0]["models"][1] = "TinyNet"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(d))
    idn = load_scenario(tmp_path / "s.yaml")
    assert idn.models[1].id == "vision-a/TinyNet" and idn.models[1].accuracy == 0.5


def test_workload_trace_path_relative_to_scenario(tmp_path):
    d = tiny()
    d["workload"] = {"kind": "trace", "path": "trace.csv"}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(d))
    assert load_scenario(tmp_path / "s.yaml").workload == {"kind": "trace", "path": str(tmp_path / "trace.csv")}
    d["workload"]["path"] = "/abs/trace.csv"
    assert scenario_from_dict(d, base_dir=tmp_path).workload["path"] == "/abs/trace.csv"


def test_source_weights_from_topology_demands():
    """`source_weights: topology`: rates follow topohub's demand data."""
    from idn.model.topology import topology_demand_weights
    from idn.sim.inputs import default_trace

    d = {
        "topology": {"topozoo": "sndlib/geant"},
        "tasks": {"generate": {"count": 2, "models_per_task": 2, "seed": 1}},
        "workload": {"kind": "stationary", "rate": 200, "source_weights": "topology"},
    }
    idn = scenario_from_dict(d)
    demand = topology_demand_weights("sndlib/geant")
    weights = idn.workload["source_weights"]
    assert set(weights) == set(idn.sources)
    assert all(weights[s] == demand[s] for s in idn.sources)
    trace = default_trace(idn, 400, seed=3)
    per_source = trace.groupby("source")["count"].sum()
    share = np.array([weights[s] for s in idn.sources]) / sum(weights.values())
    observed = per_source.reindex(idn.sources).fillna(0).to_numpy() / per_source.sum()
    np.testing.assert_allclose(observed, share, atol=0.01)


def test_source_weights_from_a_topology_without_demands():
    d = {
        "topology": {"topozoo": "Geant2012"},
        "tasks": {"generate": {"count": 2, "models_per_task": 2, "seed": 1}},
        "workload": {"kind": "stationary", "source_weights": "topology"},
    }
    with pytest.raises(ScenarioError, match=r"workload.source_weights: 'topology' needs a topohub graph with demand data"):
        scenario_from_dict(d)
