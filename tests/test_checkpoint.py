"""`idn run --checkpoint-every K`: a real process killed with SIGKILL once its
checkpoint exists, then started again with the same arguments, ends with the
same slots table and final allocation as a run never interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

TREE = {
    "name": "small-tree",
    "topology": {"tiered_tree": {"regional": 1, "edge_per_regional": 2, "access_per_edge": 2}},
    "tasks": {"generate": {"count": 3, "models_per_task": [2, 3], "seed": 1}},
    "workload": {"kind": "stationary", "rate": 20, "zipf": 0.8},
}
SLOTS, EVERY = 800, 50


def idn_run(scenario: Path, out: Path) -> list[str]:
    args = ["run", scenario, "--policy", "infida", "--slots", SLOTS, "--out", out, "--checkpoint-every", EVERY]
    return [sys.executable, "-m", "idn.cli", *map(str, args), "--seed", "3", "--no-bound", "--quiet"]


def finish(cmd: list[str]) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def kill_once_checkpointed(cmd: list[str], checkpoint: Path) -> bool:
    """Start cmd, SIGKILL it as soon as the checkpoint exists; True if it was
    killed with the checkpoint still there (not after the run had finished)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and not checkpoint.exists():
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode == -signal.SIGKILL and checkpoint.exists()


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    scenario = tmp_path / "tree.yaml"
    scenario.write_text(yaml.safe_dump(TREE))
    ref = tmp_path / "ref"
    finish(idn_run(scenario, ref))
    assert not (ref / "checkpoint.npz").exists()  # removed once the run is over

    for attempt in range(3):
        out = tmp_path / f"killed-{attempt}"
        if kill_once_checkpointed(idn_run(scenario, out), out / "checkpoint.npz"):
            break
    else:
        pytest.fail("the run finished before it could be killed, 3 times")
    assert not (out / "slots.csv").exists()
    with np.load(out / "checkpoint.npz", allow_pickle=False) as z:
        state = json.loads(bytes(z["__meta__"]).decode())
    assert state["format"] == "idn-checkpoint" and state["version"] == 1
    assert state["next_slot"] % EVERY == 0 and 0 < state["next_slot"] < SLOTS

    # the resumed process will take this checkpoint up: its fingerprint is this run's
    from idn.model.scenario import load_scenario
    from idn.policies.registry import make_policy
    from idn.sim.inputs import count_matrix, default_trace, request_types_for
    from idn.sim.loop import _fingerprint

    idn = load_scenario(scenario)
    trace = default_trace(idn, SLOTS, 3)
    rt = request_types_for(idn, trace)
    assert state["fingerprint"] == _fingerprint(rt, make_policy("infida"), count_matrix(rt, trace), 3)

    finish(idn_run(scenario, out))
    assert not (out / "checkpoint.npz").exists()
    a = pd.read_csv(out / "slots.csv").drop(columns=["seconds"])
    b = pd.read_csv(ref / "slots.csv").drop(columns=["seconds"])
    assert len(a) == SLOTS and a["slot"].tolist() == list(range(SLOTS))
    pd.testing.assert_frame_equal(a, b)
    assert json.loads((out / "allocation.json").read_text()) == json.loads((ref / "allocation.json").read_text())
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (out, ref))
    sa.pop("seconds_per_slot"), sb.pop("seconds_per_slot")
    assert sa == sb
