"""Plug-ins from outside the package: a policy class, a workload generator and
a topology builder in a temporary module on PYTHONPATH, reached by
``module:Name``, by an experiment file, and (policies) by the entry-point
group ``idn.policies`` of a tiny dist-info. Real processes for the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import idn
from idn.cli import main
from idn.experiments.report import report_dir
from idn.experiments.store import load_runs
from idn.experiments.sweep import run_sweep
from idn.policies import registry
from idn.sim.inputs import count_matrix, default_trace, request_types_for
from idn.sim.loop import run_policy

MODULE = "idn_plugin_mod"
PLUGIN_SOURCE = '''
import numpy as np
import pandas as pd
from idn import Policy


class RandomFill(Policy):
    """Every `refresh` slots each node is refilled with random models that fit."""

    name = "random-fill"
    defaults = {"refresh": 5}
    state_attrs = ("t", "x")  # what a checkpoint must carry over

    def _start(self, trace):
        self.t = 0
        self.x = self._empty_allocation()

    def propose(self):
        if self.t % self.params["refresh"] == 0:
            net = self.rt.idn
            self.x = self._empty_allocation()
            for v in np.flatnonzero(~net.repository):
                room = net.budget_mb[v]
                for m in self.rng.permutation(net.n_models):
                    if net.size_mb[m] <= room:
                        self.x[v, m], room = 1.0, room - net.size_mb[m]
        self.t += 1
        return self.x


class NotAPolicy:
    pass


def not_a_class():
    pass


def bursty(sources, tasks, slots, seed, rate=5.0, every=4):
    """`rate` requests per source and task, times 5 every `every` slots."""
    rng = np.random.default_rng(seed)
    rows = [(t, s, k, rng.poisson(rate * (5 if t % every == 0 else 1)))
            for t in range(slots) for s in sources for k in tasks]
    return pd.DataFrame(rows, columns=["slot", "source", "task", "count"])


def unknown_task(sources, tasks, slots, seed):
    return pd.DataFrame({"slot": [0], "source": [sources[0]], "task": ["no-such-task"], "count": [3]})


def wrong_signature(n, tasks):
    return None


def chain(length=3, budget_mb=300.0):
    """cloud - n0 - n1 - ... : a chain of edge nodes, the last one an access node."""
    nodes = [{"id": "cloud", "tier": "cloud", "hardware": "gpu", "workers": 4, "repository": True}]
    links, prev = [], "cloud"
    for i in range(length):
        tier = "access" if i == length - 1 else "edge"
        nodes.append({"id": f"n{i}", "tier": tier, "hardware": "gpu", "speed": 0.5, "budget_mb": budget_mb})
        links.append({"a": prev, "b": f"n{i}", "latency_ms": 5.0})
        prev = f"n{i}"
    return nodes, links


def not_a_topology():
    return "ring"
'''

SCENARIO = """
name: plug
topology: {tiered_tree: {regional: 1, edge_per_regional: 2, access_per_edge: 2}}
tasks: {generate: {count: 4, models_per_task: [3, 4], seed: 1}}
workload: {kind: stationary, rate: 40, zipf: 0.8}
"""
SLOTS, SEED = 30, 2


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    """The plug-in module and a dist-info declaring its entry points (what
    ``pip install`` of a package with [project.entry-points."idn.policies"]
    leaves behind), on sys.path for this process and on PYTHONPATH for children."""
    d = tmp_path_factory.mktemp("plugins")
    (d / f"{MODULE}.py").write_text(PLUGIN_SOURCE)
    info = d / "idn_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: idn-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[idn.policies]\nrandom-fill-ep = {MODULE}:RandomFill\nbroken-ep = {MODULE}:Missing\n"
    )
    (d / "scenario.yaml").write_text(SCENARIO)
    sys.path.insert(0, str(d))
    yield d
    sys.path.remove(str(d))
    sys.modules.pop(MODULE, None)


def env_with(path: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(path), *filter(None, [env.get("PYTHONPATH")])])
    return env


def cli(*args, path: Path, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "idn.cli", *map(str, args)], capture_output=True, text=True, env=env_with(path), cwd=cwd
    )


@pytest.fixture(scope="module")
def reference(plugin_dir):
    """The same class registered inside the package under its own name, run in
    process: the per-slot gains every plug-in route must reproduce."""
    mod = __import__(MODULE)
    assert "random-fill" not in registry.policy_names()
    registry.register(mod.RandomFill)
    try:
        net = idn.load_scenario(plugin_dir / "scenario.yaml")
        trace = default_trace(net, SLOTS, SEED)
        rt = request_types_for(net, trace)
        result = run_policy(rt, registry.make_policy("random-fill", refresh=3), count_matrix(rt, trace), seed=SEED)
    finally:
        del registry.POLICIES["random-fill"]
    gains = result.slots["gain"].to_numpy()
    assert gains.sum() > 0 and len(set(np.round(gains, 6))) > 3  # a real, varying run
    return gains


# ---------------------------------------------------------------- policies
@pytest.mark.parametrize("name", [f"{MODULE}:RandomFill", "random-fill-ep"])
def test_idn_run_with_a_plugin_policy_matches_the_registered_class(plugin_dir, reference, tmp_path, name):
    out = cli("run", plugin_dir / "scenario.yaml", "--policy", name, "--param", "refresh=3", "--slots", SLOTS,
              "--seed", SEED, "--out", tmp_path / "run", "--quiet", "--no-bound", path=plugin_dir)  # fmt: skip
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["policy"] == name  # recorded as asked for, so it resolves again
    assert summary["params"] == {"refresh": 3}
    slots = pd.read_csv(tmp_path / "run" / "slots.csv")
    np.testing.assert_allclose(slots["gain"].to_numpy(), reference, rtol=1e-12)
    if name == "random-fill-ep":
        return
    # the same requests with another policy seed draw other models: the loop's seed reaches the plug-in
    net = idn.load_scenario(plugin_dir / "scenario.yaml")
    trace = default_trace(net, SLOTS, SEED)
    rt = request_types_for(net, trace)
    other = run_policy(rt, registry.make_policy(name, refresh=3), count_matrix(rt, trace), seed=SEED + 1)
    assert other.slots["gain"].sum() != pytest.approx(reference.sum())


def test_plugin_policy_resumes_from_a_checkpoint(plugin_dir, reference, tmp_path):
    net = idn.load_scenario(plugin_dir / "scenario.yaml")
    trace = default_trace(net, SLOTS, SEED)
    rt = request_types_for(net, trace)
    counts = count_matrix(rt, trace)
    ckpt = tmp_path / "ckpt"

    def stop_at_13(done, total):
        if done == 13:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_policy(rt, registry.make_policy(f"{MODULE}:RandomFill", refresh=3), counts, seed=SEED, checkpoint=ckpt,
                   checkpoint_every=5, on_slot=stop_at_13)  # fmt: skip
    done = []
    resumed = run_policy(rt, registry.make_policy(f"{MODULE}:RandomFill", refresh=3), counts, seed=SEED, checkpoint=ckpt,
                         checkpoint_every=5, on_slot=lambda d, _: done.append(d))  # fmt: skip
    assert done[0] == 11  # it did resume, after the checkpoint of slot 10
    np.testing.assert_allclose(resumed.slots["gain"].to_numpy(), reference, rtol=1e-12)


def test_entry_point_names_are_listed(plugin_dir):
    names = registry.policy_names()
    assert {"random-fill-ep", "broken-ep", "infida", "cloud-only"} <= set(names)
    assert registry.policy_class("random-fill-ep") is __import__(MODULE).RandomFill


def _experiment(plugin_dir: Path) -> Path:
    path = plugin_dir / "exp.yaml"
    path.write_text(textwrap.dedent(f"""
        name: plug-sweep
        scenarios: {{plug: scenario.yaml}}
        slots: {SLOTS}
        seeds: [{SEED}]
        policies:
          {MODULE}:RandomFill: {{refresh: [3, 6]}}
          random-fill-ep: {{refresh: 3}}
          cloud-only: {{}}
        """))
    return path


def test_sweep_with_plugin_policies_local_pool_and_report(plugin_dir, reference, tmp_path):
    exp = _experiment(plugin_dir)
    out = cli("sweep", exp, "--out", tmp_path / "s", "--jobs", "2", "--quiet", path=plugin_dir)
    assert out.returncode == 0, out.stderr
    runs = load_runs(tmp_path / "s").set_index(["policy", "param_refresh"])
    assert len(runs) == 4
    for key in ((f"{MODULE}:RandomFill", 3), ("random-fill-ep", 3)):
        assert runs.loc[key, "total_gain"] == pytest.approx(reference.sum(), rel=1e-12)
    assert runs.loc[(f"{MODULE}:RandomFill", 6), "total_gain"] != pytest.approx(reference.sum())
    # the report (idn report's function, in this process where the module imports) lists the
    # plug-ins beside the built-in policy, and asks the class whether it is offline
    html = report_dir(tmp_path / "s").read_text()
    assert f"{MODULE}:RandomFill (refresh=6)" in html and "random-fill-ep" in html and "cloud-only" in html


def test_sweep_with_a_plugin_policy_on_ray(plugin_dir, reference, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("PYTHONPATH", env_with(plugin_dir)["PYTHONPATH"])  # Ray's workers inherit it
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    try:
        s = run_sweep(_experiment(plugin_dir), tmp_path / "ray", backend="ray", progress=False)
    finally:
        ray.shutdown()
    assert s["ran"] == 4
    runs = load_runs(tmp_path / "ray").set_index(["policy", "param_refresh"])
    assert runs.loc[(f"{MODULE}:RandomFill", 3), "total_gain"] == pytest.approx(reference.sum(), rel=1e-12)
    assert runs.loc[("random-fill-ep", 3), "total_gain"] == pytest.approx(reference.sum(), rel=1e-12)


BAD_POLICIES = [
    ("no_such_module_xyz:Foo", "policy 'no_such_module_xyz:Foo': no module named 'no_such_module_xyz'"),
    (f"{MODULE}:RandomFil", f"policy '{MODULE}:RandomFil': module '{MODULE}' has no attribute 'RandomFil' (did you mean 'RandomFill'?)"),
    (f"{MODULE}:NotAPolicy", f"policy '{MODULE}:NotAPolicy': NotAPolicy is not a subclass of idn.Policy"),
    (f"{MODULE}:not_a_class", f"policy '{MODULE}:not_a_class': a function is not a subclass of idn.Policy"),
    ("broken-ep", f"policy 'broken-ep' (entry point '{MODULE}:Missing' in group 'idn.policies'): module '{MODULE}' has no attribute 'Missing'"),
    ("random-fil-ep", "unknown policy 'random-fil-ep'; did you mean random-fill-ep"),
]  # fmt: skip


@pytest.mark.parametrize("name, message", BAD_POLICIES)
def test_bad_policy_reference_is_one_line_exit_2(plugin_dir, tmp_path, capsys, name, message):
    # the CLI's own entry point in this process (the module is on sys.path here): a real process per
    # case would cost seconds each; test_bad_reference_in_a_real_process checks the process boundary
    code = main(["run", str(plugin_dir / "scenario.yaml"), "--policy", name, "--slots", "3", "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("idn: error: ")
    assert message in err
    assert not (tmp_path / "r").exists()  # nothing ran


def test_bad_reference_in_a_real_process(plugin_dir, tmp_path):
    out = cli("run", plugin_dir / "scenario.yaml", "--policy", f"{MODULE}:NotAPolicy", "--out", tmp_path / "r", path=plugin_dir)
    assert out.returncode == 2
    assert out.stderr == f"idn: error: policy '{MODULE}:NotAPolicy': NotAPolicy is not a subclass of idn.Policy\n"


@pytest.mark.parametrize("name, message", BAD_POLICIES[:4])
def test_bad_policy_key_in_an_experiment_file_is_one_line(plugin_dir, tmp_path, capsys, name, message):
    exp = tmp_path / "bad.yaml"
    exp.write_text(f"scenarios: {{plug: {plugin_dir / 'scenario.yaml'}}}\nslots: 3\npolicies:\n  '{name}': {{}}\n")
    code = main(["sweep", str(exp), "--out", str(tmp_path / "s"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert f"policies.{name}: {message}" in err


class _Broken(idn.Policy):
    """Proposes what ``mode`` says, from slot 2 on (before that: only the permanent pairs)."""

    name = "broken"
    defaults = {"mode": "over-budget"}

    def _start(self, trace):
        self.t = 0

    def propose(self):
        net, self.t = self.rt.idn, self.t + 1
        x = self._empty_allocation()
        if self.t <= 2:
            return x
        if self.params["mode"] == "over-budget":
            x[~net.repository] = 1.0
        elif self.params["mode"] == "fractional":
            x[1, 0] = 0.5
        elif self.params["mode"] == "drops-permanent":
            x[net.repository] = 0.0
        else:
            x = x[:, :-1]
        return x


@pytest.mark.parametrize(
    "mode, message",
    [
        ("over-budget", "policy 'broken', slot 2: propose(): node 'edge-0' holds 1367 MB of models, over its budget of 500 MB"),
        ("fractional", "policy 'broken', slot 2: propose(): x['regional-0', 'task-0/"),
        ("drops-permanent", "policy 'broken', slot 2: propose() drops the permanent pair ('cloud', 'task-0/"),
        ("shape", "policy 'broken', slot 2: propose() returned shape"),
    ],
)
def test_a_plugin_allocation_that_breaks_the_contract_stops_the_run(plugin_dir, mode, message):
    net = idn.load_scenario(plugin_dir / "scenario.yaml")
    trace = default_trace(net, 5, 0)
    rt = request_types_for(net, trace)
    with pytest.raises(ValueError) as err:
        run_policy(rt, _Broken(mode=mode), count_matrix(rt, trace))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


# ---------------------------------------------------------------- workloads
def test_plugin_workload_generator(plugin_dir, tmp_path):
    net = idn.load_scenario(plugin_dir / "scenario.yaml")
    spec = {"kind": f"{MODULE}:bursty", "rate": 2.0, "every": 3}
    trace = idn.generate_trace(net, 9, seed=4, workload=spec)
    per_slot = trace.groupby("slot")["count"].sum()
    assert list(per_slot.index) == list(range(9))
    assert per_slot[[0, 3, 6]].mean() > 3 * per_slot[[1, 2, 4, 5, 7, 8]].mean()  # the bursts are there
    pd.testing.assert_frame_equal(trace, idn.generate_trace(net, 9, seed=4, workload=spec))
    # the same from the command line, and in a scenario's workload: key
    out = cli("trace", "generate", plugin_dir / "scenario.yaml", "--kind", f"{MODULE}:bursty", "--param", "rate=2.0",
              "--param", "every=3", "--slots", 9, "--seed", 4, "--out", tmp_path / "t.csv", path=plugin_dir)  # fmt: skip
    assert out.returncode == 0, out.stderr
    pd.testing.assert_frame_equal(idn.read_trace(tmp_path / "t.csv"), trace)
    scen = tmp_path / "s.yaml"
    scen.write_text(SCENARIO.replace("{kind: stationary, rate: 40, zipf: 0.8}", f"{{kind: '{MODULE}:bursty', rate: 2.0, every: 3}}"))
    pd.testing.assert_frame_equal(idn.generate_trace(idn.load_scenario(scen), 9, seed=4), trace)


@pytest.mark.parametrize(
    "kind, extra, message",
    [
        ("nope_mod_xyz:gen", "", "workload generator 'nope_mod_xyz:gen': no module named 'nope_mod_xyz'"),
        (f"{MODULE}:bursti", "", f"workload generator '{MODULE}:bursti': module '{MODULE}' has no attribute 'bursti'"),
        (f"{MODULE}:NotAPolicy", "", f"workload generator '{MODULE}:NotAPolicy': a type, not a function"),
        (f"{MODULE}:wrong_signature", "", "its first parameters must be sources, tasks, slots, seed, got n, tasks"),
        (f"{MODULE}:bursty", "--param=burst=2", f"unknown parameter 'burst' for workload kind '{MODULE}:bursty'"),
        (f"{MODULE}:unknown_task", "", f"workload generator '{MODULE}:unknown_task' row 1: unknown task 'no-such-task'"),
    ],
)  # fmt: skip
def test_bad_workload_plugin_is_one_line(plugin_dir, tmp_path, capsys, kind, extra, message):
    args = ["trace", "generate", str(plugin_dir / "scenario.yaml"), "--kind", kind, "--slots", "3", "--out", str(tmp_path / "t.csv")]
    code = main(args + ([extra] if extra else []))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1
    assert message in err


# ---------------------------------------------------------------- topologies
def test_plugin_topology_builder(plugin_dir, tmp_path):
    scen = tmp_path / "chain.yaml"
    scen.write_text(f"name: chain\ntopology: {{'{MODULE}:chain': {{length: 4, budget_mb: 200}}}}\ntasks: [{{id: t, models: [MobileNetV2, ResNet50]}}]\n")
    out = cli("validate", scen, path=plugin_dir)
    assert out.returncode == 0, out.stderr
    assert "3 edge" in out.stdout and "1 access" in out.stdout
    net = idn.load_scenario(scen)
    assert [n.id for n in net.nodes] == ["cloud", "n0", "n1", "n2", "n3"]
    assert net.sources == ["n3"] and list(net.budget_mb) == [0.0, 200.0, 200.0, 200.0, 200.0]
    rt = idn.request_types(net)
    assert list(rt.path(0)) == [4, 3, 2, 1, 0]  # from the access end of the chain to the cloud


@pytest.mark.parametrize(
    "key, message",
    [
        ("nope_mod_xyz:ring", "topology: topology builder 'nope_mod_xyz:ring': no module named 'nope_mod_xyz'"),
        (f"{MODULE}:chian", f"topology: topology builder '{MODULE}:chian': module '{MODULE}' has no attribute 'chian' (did you mean 'chain'?)"),
        (f"{MODULE}:not_a_topology", f"topology builder '{MODULE}:not_a_topology' must return (nodes, links): two lists of dicts"),
        (f"{MODULE}:chain", f"topology.{MODULE}:chain.width: unknown parameter"),
    ],
)  # fmt: skip
def test_bad_topology_plugin_is_one_line(plugin_dir, tmp_path, capsys, key, message):
    params = "{width: 3}" if key.endswith(":chain") else "{}"
    scen = tmp_path / "bad.yaml"
    scen.write_text(f"topology: {{'{key}': {params}}}\ntasks: [{{id: t, models: [MobileNetV2]}}]\n")
    code = main(["validate", str(scen)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert message in err
