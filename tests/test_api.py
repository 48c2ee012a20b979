"""The public API (``import idn``): docs/api.md runs as written, block by
block, and the pieces it shows hold what they claim."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import idn
from idn.experiments.store import load_runs
from idn.policies import base, registry
from idn.sim.loop import SLOT_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "api.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
FILE_MARK = re.compile(r"#\s*file:\s*(\S+)\s*\n")


def blocks() -> list[tuple[str, str]]:
    return [(lang, code) for lang, code in FENCE.findall(DOC.read_text())]


def test_doc_blocks_are_of_known_kinds():
    kinds = {lang for lang, _ in blocks()}
    assert kinds <= {"python", "bash", "yaml", "toml"}, kinds
    assert len(blocks()) >= 10


def test_every_code_block_of_docs_api_runs(tmp_path, monkeypatch, capsys):
    """Python blocks run in one session, in order; ``# file: NAME`` blocks are
    written to the scratch directory (the cwd, on PYTHONPATH); shell blocks
    run there as real processes; the toml block's entry points must resolve."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    namespace: dict = {"__name__": "__docs__"}
    registered = set(registry.policy_names()) & set(registry.POLICIES)  # built-ins imported first
    saved_path = list(sys.path)
    try:
        for i, (lang, code) in enumerate(blocks()):
            where = f"docs/api.md block {i + 1} ({lang})"
            mark = FILE_MARK.match(code)
            if mark:
                (tmp_path / mark.group(1)).write_text(code)
                if lang == "yaml":
                    assert isinstance(yaml.safe_load(code), dict), where
            elif lang == "python":
                exec(compile(code, where, "exec"), namespace)
            elif lang == "bash":
                out = subprocess.run(code, shell=True, capture_output=True, text=True, cwd=tmp_path)
                assert out.returncode == 0, f"{where}: {out.stderr}"
            elif lang == "toml":
                eps = tomllib.loads(code)["project"]["entry-points"]["idn.policies"]
                for name, ref in eps.items():
                    assert issubclass(registry.policy_class(ref), idn.Policy), where
            else:
                pytest.fail(f"{where}: no way to run it")
    finally:
        sys.path[:] = saved_path
        for name in set(registry.POLICIES) - registered:
            del registry.POLICIES[name]
        for mod in ("my_policies", "my_workloads", "my_topologies"):
            sys.modules.pop(mod, None)
    printed = capsys.readouterr().out
    # what the doc's comments promise
    assert "IDNView(38 nodes, 69 models, 130 request types)" in printed
    assert "nodes[0].tier: must be one of" in printed
    assert "read-only:" in printed
    assert "5 ['ap-0', 'ap-1', 'ap-2']" in printed
    binned = namespace["idn"].bin_requests(namespace["log"], 1.0)
    assert binned.values.tolist() == [[0, "TR", "task-0", 2], [1, "CY", "task-0", 1], [2, "TR", "task-0", 1]]
    # the shell blocks' outputs exist
    assert (tmp_path / "out" / "cf" / "summary.json").exists()
    runs = load_runs(tmp_path / "out" / "sweep")
    assert sorted(runs["policy"]) == ["infida", "infida", "my_policies:CheapestFirst", "my_policies:CheapestFirst"]
    table, b = namespace["table"], namespace["b"]
    assert (table["total_gain"] <= b["per_slot_lp_bound"] * (1 + 1e-9)).all()


# ---------------------------------------------------------------- the pieces
@pytest.fixture(scope="module")
def small():
    net = idn.scenario_from_dict({
        "name": "api", "topology": {"tiered_tree": {"regional": 1, "edge_per_regional": 2, "access_per_edge": 2}},
        "tasks": {"generate": {"count": 3, "models_per_task": [3, 4], "seed": 2}},
        "workload": {"kind": "stationary", "rate": 30},
    })  # fmt: skip
    trace = idn.generate_trace(net, slots=25, seed=3)
    rt = idn.request_types(net, trace)
    return net, rt, idn.count_matrix(rt, trace)


def test_lazy_exports_all_resolve():
    for name in idn.__all__:
        assert getattr(idn, name) is not None, name
    assert idn.Policy is base.Policy and idn.make_policy is registry.make_policy
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        idn.nope  # noqa: B018


def test_import_idn_is_cheap():
    code = "import sys, idn; print(sorted(m for m in ('numba', 'pandas', 'idn.api') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_view_matches_the_request_types_and_is_read_only(small):
    net, rt, _ = small
    v = idn.view(rt)
    assert (v.n_nodes, v.n_models, v.n_types) == (net.n_nodes, net.n_models, rt.n_types)
    assert v.node_ids == tuple(n.id for n in net.nodes) and v.node_tiers[0] == "cloud"
    assert v.model_tasks == tuple(m.task for m in net.models)
    for rho in (0, rt.n_types - 1):
        c = v.candidates(rho)
        s = rt.entries(rho)
        assert c["node"].tolist() == rt.node[s].tolist() and c["model"].tolist() == rt.model[s].tolist()
        assert c["cost_ms"].is_monotonic_increasing
        assert np.isinf(c["capacity"].iloc[-1])  # the fallback: a repository
        assert c["node_id"].iloc[-1] == "cloud"
    for arr in (v.permanent, v.size_mb, v.budget_mb, v.capacity, v.offsets, v.entry_node, v.entry_cost):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = arr[0]
    assert np.shares_memory(v.size_mb, net.size_mb)  # a view, not a copy
    x = v.empty_allocation()
    x[1, 0] = 1.0  # the policy's own array
    assert not net.permanent[1, 0]
    with pytest.raises(IndexError, match="out of range"):
        v.candidates(rt.n_types)


def test_run_equals_run_policy_and_summarize_equals_summary(small):
    _, rt, counts = small
    frame = idn.run(rt, counts, ["online-greedy", idn.make_policy("infida", eta_scale=2.0)], seed=5)
    assert list(frame.columns) == ["policy", *SLOT_COLUMNS]
    assert frame.groupby("policy", sort=False).size().to_dict() == {"online-greedy": 25, "infida": 25}
    direct = idn.run_policy(rt, idn.make_policy("infida", eta_scale=2.0), counts, seed=5)
    got = frame[frame.policy == "infida"].drop(columns=["policy", "seconds"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, direct.slots.drop(columns="seconds"))
    summary = idn.summarize(frame).set_index("policy")
    want = direct.summary()
    for key in ("total_gain", "normalized_gain", "mean_latency_ms", "model_loads"):
        assert summary.loc["infida", key] == pytest.approx(want[key])
    assert summary["total_gain"].is_monotonic_decreasing


def test_run_labels(small):
    _, rt, counts = small
    with pytest.raises(ValueError, match="two policies labelled 'infida'"):
        idn.run(rt, counts[:2], ["infida", "infida"])
    with pytest.raises(TypeError, match="expected a Policy or a policy name, got int"):
        idn.run(rt, counts[:2], [3])
    one = idn.run(rt, counts[:4], "cloud-only")
    assert set(one.policy) == {"cloud-only"} and (one.gain == 0).all()


def test_bounds_bound_every_run(small):
    _, rt, counts = small
    b = idn.bounds(rt, counts)
    table = idn.summarize(idn.run(rt, counts, ["static-greedy", "online-greedy", "infida"]))
    assert (table["total_gain"] <= b["per_slot_lp_bound"] * (1 + 1e-9)).all()
    static = table.set_index("policy").loc["static-greedy", "total_gain"]
    assert static <= b["static_lp_bound"] * (1 + 1e-9)
    assert static >= 0.5 * b["static_lp_bound"]  # and the bound is not vacuous


def test_readme_library_block_runs(capsys):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Use it as a library") :]
    lang, code = FENCE.search(section).groups()
    assert lang == "python" and "idn.run(" in code
    exec(compile(code.replace("slots=100", "slots=15"), "README.md", "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out
    assert "infida" in printed and "online-greedy" in printed and "total_gain" in printed
