"""Every input surface fuzzed (issue 11): scenario files, request traces (CSV
and Parquet), allocation files, experiment files, ``--param`` and the
numeric flags, checkpoints and result stores. Each case is a real ``idn``
process (forked by idn.fuzzcheck after the imports: real processes, cheap
start) under a wall-clock limit and an address-space limit, and must end in
success or exit status 2 with one line naming the file (or the flag, or the
parameter); never a traceback, a signal, a hang, or success on a non-finite
number.

The CI part draws CASES cases per surface. ``IDN_FUZZ_SLOW=1`` runs the
``slow`` test with SLOW_CASES per surface instead (minutes)."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

import fuzz_cases as fc
from idn.fuzzcheck import DEFAULT_MEMORY_MB, classify, run_cases

CASES = {"scenario": 250, "trace": 250, "allocation": 200, "experiment": 200, "param": 250, "checkpoint": 200, "store": 40}
SLOW_CASES = {k: 10 * v for k, v in CASES.items()}
TIMEOUT = 20.0
CHECKPOINT_RUN = ["--policy", "infida", "--slots", 30, "--checkpoint-every", 5, "--seed", 1, "--quiet", "--no-bound"]


def fixtures(d: Path) -> dict:
    """The valid inputs the mutations start from: a scenario, an allocation, a
    trace, an experiment with a finished store, and a run with a checkpoint."""
    from idn.experiments.sweep import run_sweep
    from idn.model.scenario import load_scenario
    from idn.policies.registry import make_policy
    from idn.sim.inputs import count_matrix, default_trace, request_types_for
    from idn.sim.loop import run_policy

    d.mkdir(parents=True, exist_ok=True)
    scenario = d / "tiny.yaml"
    fc.dump(fc.TINY, scenario, "yaml")
    allocation = d / "alloc.json"
    allocation.write_text(json.dumps(fc.ALLOCATION))
    trace = d / "trace.csv"
    fc.TRACE.to_csv(trace, index=False)
    experiment = d / "exp.yaml"
    fc.dump(fc.EXPERIMENT, experiment, "yaml")
    run_sweep(experiment, d / "store", progress=False)

    # a checkpoint exactly as `idn run scenario CHECKPOINT_RUN` leaves it when killed at slot 12
    run_dir = d / "run"
    run_dir.mkdir()
    idn = load_scenario(scenario)
    t = default_trace(idn, 30, 1)
    rt = request_types_for(idn, t)

    def stop(done, _total):
        if done == 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_policy(rt, make_policy("infida"), count_matrix(rt, t), seed=1, checkpoint=run_dir / "checkpoint.npz",
                   checkpoint_every=5, on_slot=stop)  # fmt: skip
    assert (run_dir / "checkpoint.npz").exists()
    return {"scenario": scenario, "allocation": allocation, "trace": trace, "experiment": experiment,
            "store": d / "store", "run": run_dir}  # fmt: skip


def build(d: Path, counts: dict) -> dict[str, list[dict]]:
    f = fixtures(d / "fixtures")
    return {
        "scenario": fc.scenario_cases(_dir(d, "scenario"), counts["scenario"]),
        "trace": fc.trace_cases(_dir(d, "trace"), counts["trace"], f["scenario"], f["allocation"]),
        "allocation": fc.allocation_cases(_dir(d, "allocation"), counts["allocation"], f["scenario"], f["trace"]),
        "experiment": fc.experiment_cases(_dir(d, "experiment"), counts["experiment"]),
        "param": fc.param_cases(_dir(d, "param"), counts["param"], f["scenario"]),
        "checkpoint": fc.checkpoint_cases(_dir(d, "checkpoint"), counts["checkpoint"], f["scenario"], f["run"],
                                          ["run", f["scenario"], *CHECKPOINT_RUN]),  # fmt: skip
        "store": fc.store_cases(_dir(d, "store"), counts["store"], f["experiment"], f["store"]),
    }


def _dir(d: Path, name: str) -> Path:
    (d / name).mkdir(parents=True, exist_ok=True)
    return d / name


def run_all(d: Path, counts: dict) -> dict[str, list[tuple[dict, dict, str | None]]]:
    surfaces = build(d, counts)
    flat = [(s, c) for s, cases in surfaces.items() for c in cases]
    results = run_cases([{"id": i, "argv": c["argv"]} for i, (_, c) in enumerate(flat)], jobs=2, timeout=TIMEOUT)
    out: dict[str, list] = {s: [] for s in surfaces}
    for (s, c), r in zip(flat, results):
        out[s].append((c, r, classify(r, c["names"], c["must_fail"])))
    report(out)
    return out


def report(out) -> None:
    """The fuzz report (pytest -s shows it): cases, outcomes and time per surface."""
    lines = [f"fuzz report: time limit {TIMEOUT:g} s, memory limit {DEFAULT_MEMORY_MB} MB (address space) per case"]
    for s, rows in out.items():
        outcome = Counter("ok" if r["status"] == 0 else f"exit {r['status']}" for _, r, _ in rows)
        failures = sum(problem is not None for *_, problem in rows)
        slowest = max((r["seconds"] for _, r, _ in rows), default=0)
        total = sum(r["seconds"] for _, r, _ in rows)
        lines.append(f"  {s:>10}: {len(rows)} cases, {dict(outcome)}, {failures} failures, "
                     f"{total:.1f} s in all, slowest {slowest:.2f} s")  # fmt: skip
    print("\n".join(lines), file=sys.stderr)


def failures(rows) -> str:
    bad = [(c, r, p) for c, r, p in rows if p is not None]
    return "\n".join(
        f"- {p}: idn {' '.join(map(str, c['argv']))}\n  stderr: {r['stderr'][-600:]!r}" for c, r, p in bad[:8]
    ) + (f"\n({len(bad)} failures)" if bad else "")


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    return run_all(tmp_path_factory.mktemp("fuzz"), CASES)


@pytest.mark.parametrize("surface", list(CASES))
def test_every_case_succeeds_or_fails_in_one_line(fuzzed, surface):
    rows = fuzzed[surface]
    assert len(rows) == CASES[surface]
    assert all(p is None for *_, p in rows), failures(rows)


def test_the_cases_reach_past_the_first_check(fuzzed):
    """A fuzz suite whose cases all fail at the door tests little: enough
    cases succeed, and enough fail, on every surface."""
    for surface, rows in fuzzed.items():
        ok = sum(r["status"] == 0 for _, r, _ in rows)
        if surface == "store":  # a damaged store is repaired by the sweep: every case ends well
            assert ok == len(rows)
        else:
            assert 0 < ok < len(rows), (surface, ok)
    for surface in ("scenario", "trace", "param"):  # non-finite numbers did go in
        assert sum(c["must_fail"] for c, _, _ in fuzzed[surface]) >= 5, surface


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("IDN_FUZZ_SLOW") != "1", reason="many more cases: set IDN_FUZZ_SLOW=1 (minutes)")
def test_many_more_cases(tmp_path):
    out = run_all(tmp_path, SLOW_CASES)
    for surface, rows in out.items():
        assert all(p is None for *_, p in rows), f"{surface}:\n{failures(rows)}"
