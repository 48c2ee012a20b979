"""Checkpoints are data (npz + JSON, idn.sim.checkpoint), never pickles:
every policy resumed from one ends exactly as an uninterrupted run; a
corrupt, foreign or pickled checkpoint is refused in one line and nothing
in it runs; --restart starts over."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from idn.model.scenario import scenario_from_dict
from idn.policies.registry import make_policy
from idn.sim import checkpoint as ckpt
from idn.sim.inputs import count_matrix, default_trace, request_types_for
from idn.sim.loop import run_policy

TREE = {
    "name": "small-tree",
    "topology": {"tiered_tree": {"regional": 1, "edge_per_regional": 2, "access_per_edge": 2}},
    "tasks": {"generate": {"count": 3, "models_per_task": [2, 3], "seed": 1}},
    "workload": {"kind": "stationary", "rate": 20, "zipf": 0.8},
}
SLOTS, EVERY, STOP = 60, 7, 30


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def inputs():
    idn = scenario_from_dict(TREE)
    trace = default_trace(idn, SLOTS, 5)
    rt = request_types_for(idn, trace)
    return rt, count_matrix(rt, trace)


def stop_at(slot):
    def on_slot(done, _total):
        if done == slot:
            raise Interrupt

    return on_slot


POLICIES = [
    ("infida", {}),
    ("infida", {"rounding": "coupled"}),
    ("infida", {"learning": "static", "eta": 0.01}),
    ("infida", {"learning": "static"}),
    ("infida", {"hint": "periodic", "hint_period": 5, "hint_window": 2, "rounding": "coupled"}),
    ("online-greedy", {"window": 3}),
    ("static-greedy", {}),
    ("infida-offline", {"iterations": 20}),
    ("cloud-only", {}),
]


@pytest.mark.parametrize("name, params", POLICIES, ids=[f"{n}{p}" for n, p in POLICIES])
def test_every_policy_resumes_to_the_uninterrupted_run(tmp_path, inputs, name, params):
    rt, counts = inputs
    ref = run_policy(rt, make_policy(name, **params), counts, seed=2)
    path = tmp_path / ckpt.NAME
    with pytest.raises(Interrupt):
        run_policy(rt, make_policy(name, **params), counts, seed=2, checkpoint=path, checkpoint_every=EVERY,
                   on_slot=stop_at(STOP))  # fmt: skip
    assert path.exists()
    with np.load(path, allow_pickle=False) as z:
        assert json.loads(bytes(z["__meta__"]).decode())["next_slot"] == STOP // EVERY * EVERY
    resumed_from = []
    got = run_policy(rt, make_policy(name, **params), counts, seed=2, checkpoint=path, checkpoint_every=EVERY,
                     on_slot=lambda done, _t: resumed_from.append(done))  # fmt: skip
    assert resumed_from[0] == STOP // EVERY * EVERY + 1  # it did resume, not start over
    assert not path.exists()
    pd.testing.assert_frame_equal(got.slots.drop(columns="seconds"), ref.slots.drop(columns="seconds"))
    np.testing.assert_array_equal(got.final_allocation, ref.final_allocation)


def interrupted(tmp_path, inputs, seed=2) -> Path:
    rt, counts = inputs
    path = tmp_path / ckpt.NAME
    with pytest.raises(Interrupt):
        run_policy(rt, make_policy("infida"), counts, seed=seed, checkpoint=path, checkpoint_every=EVERY,
                   on_slot=stop_at(STOP))  # fmt: skip
    return path


def resume(path, inputs, seed=2, name="infida"):
    rt, counts = inputs
    return run_policy(rt, make_policy(name), counts, seed=seed, checkpoint=path, checkpoint_every=EVERY)


def rewrite(path: Path, change) -> None:
    """Load the checkpoint's members, let change edit them, write them back."""
    with np.load(path, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    change(members)
    with open(path, "wb") as fh:
        np.savez(fh, **members)


def set_meta(members, **kw):
    meta = json.loads(bytes(members["__meta__"]).decode())
    meta.update(kw)
    members["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


CORRUPTIONS = {
    "garbage": lambda p: p.write_bytes(b"garbage\n" * 10),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "another format": lambda p: rewrite(p, lambda m: set_meta(m, format="other")),
    "future version": lambda p: rewrite(p, lambda m: set_meta(m, version=99)),
    "next slot out of range": lambda p: rewrite(p, lambda m: set_meta(m, next_slot=10**6)),
    "nan in the state": lambda p: rewrite(p, lambda m: m["state.y"].__setitem__(0, np.nan)),
    "state of another shape": lambda p: rewrite(p, lambda m: m.__setitem__("state.y", m["state.y"][:-1])),
    "rows of another shape": lambda p: rewrite(p, lambda m: m.__setitem__("rows", m["rows"][:-1])),
    "missing state entry": lambda p: rewrite(p, lambda m: m.pop("state.grad_sq")),
    "bad rng state": lambda p: rewrite(p, lambda m: set_meta(m, state={"rng": "x"})),
    "object array": lambda p: zipfile.ZipFile(p, "a").writestr("evil.npy", pickled_object_npy()),
}


def pickled_object_npy() -> bytes:
    """An .npy member holding an object array: loading it would unpickle."""
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize("how", list(CORRUPTIONS))
def test_a_corrupt_checkpoint_is_refused_in_one_line(tmp_path, inputs, how):
    path = interrupted(tmp_path, inputs)
    CORRUPTIONS[how](path)
    with pytest.raises(ckpt.CheckpointError) as err:
        resume(path, inputs)
    msg = str(err.value)
    assert msg.startswith(f"{path}: corrupt, or from another run (") and msg.endswith("; --restart to start over")
    assert "\n" not in msg


def test_a_checkpoint_of_another_run_is_refused(tmp_path, inputs):
    path = interrupted(tmp_path, inputs, seed=2)
    with pytest.raises(ckpt.CheckpointError, match="fingerprint is another run's"):
        resume(path, inputs, seed=3)
    with pytest.raises(ckpt.CheckpointError, match="fingerprint is another run's"):
        resume(path, inputs, name="online-greedy")


class Trap:
    """Unpickling this creates a file: the proof a pickle was loaded."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


SCENARIO = Path(__file__).resolve().parents[1] / "examples" / "tiny.yaml"


def idn(*args):
    return subprocess.run([sys.executable, "-m", "idn.cli", *map(str, args)], capture_output=True, text=True)


def test_cli_never_unpickles_and_restart_starts_over(tmp_path):
    out, marker = tmp_path / "run", tmp_path / "pwned"
    out.mkdir()
    (out / "checkpoint.pkl").write_bytes(pickle.dumps(Trap(marker)))
    args = ["run", SCENARIO, "--policy", "infida", "--slots", 20, "--out", out, "--quiet", "--no-bound"]
    p = idn(*args)
    assert p.returncode == 2 and not marker.exists()
    assert p.stderr == (
        f"idn: error: {out}/checkpoint.pkl: corrupt, or from another run (a pickled checkpoint of an older idn, "
        "which is never loaded); --restart to start over\n"
    )
    (out / "checkpoint.pkl").unlink()
    (out / "checkpoint.npz").write_bytes(b"garbage\n")  # finding 7: "invalid literal for int()" before
    p = idn(*args)
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert p.stderr.startswith(f"idn: error: {out}/checkpoint.npz: corrupt, or from another run (unreadable")
    p = idn(*args, "--restart")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["slots"] == 20 and not (out / "checkpoint.npz").exists() and not marker.exists()


def test_state_dict_is_data_only(inputs):
    rt, counts = inputs
    for name, params in POLICIES:
        policy = make_policy(name, **params).start(rt, 0, trace=counts)
        for key, value in policy.state_dict().items():
            assert isinstance(value, np.ndarray) or json.loads(json.dumps(value)) == value, (name, key)
