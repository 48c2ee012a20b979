"""Workloads: generator statistics, spec parsing, trace files, binning and
the dense conversion used by the simulator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idn.workloads import (
    WORKLOAD_KINDS,
    adversarial,
    adversarial_schedule,
    bin_requests,
    diurnal,
    flash_crowd,
    format_summary,
    from_spec,
    read_trace,
    shifting,
    stationary,
    summarize,
    to_matrix,
    validate_trace,
    workload_parameters,
    write_trace,
    zipf_popularity,
)
from idn.workloads.generators import shifting_popularity

SOURCES = ["a0", "a1", "a2", "a3"]
TASKS = [f"t{i}" for i in range(6)]


def per_slot_task(trace: pd.DataFrame, slots: int, tasks=TASKS) -> np.ndarray:
    """(T, N) counts summed over sources, plain pandas."""
    table = trace.pivot_table(index="slot", columns="task", values="count", aggfunc="sum", fill_value=0)
    return table.reindex(index=range(slots), columns=tasks, fill_value=0).to_numpy(dtype=float)


def zipf_slope(counts: np.ndarray) -> float:
    c = np.sort(counts)[::-1]
    ranks = np.arange(1, len(c) + 1)
    return float(np.polyfit(np.log(ranks), np.log(c), 1)[0])


# ---- popularity -------------------------------------------------------------
@given(n=st.integers(1, 50), s=st.floats(0.0, 3.0))
def test_zipf_popularity_shape(n, s):
    p = zipf_popularity(n, s)
    assert p.sum() == pytest.approx(1.0)
    assert np.all(np.diff(p) <= 1e-15)
    np.testing.assert_allclose(p[0] / p, np.arange(1, n + 1) ** s, rtol=1e-9)


# ---- stationary ---------------------------------------------------------------
def test_stationary_mean_rate():
    slots, rate = 2000, 20.0
    tr = stationary(SOURCES, TASKS, slots, seed=1, rate=rate)
    per_source_slot = tr.groupby("source")["count"].sum() / slots
    sigma = np.sqrt(rate / slots)
    assert np.all(np.abs(per_source_slot.to_numpy() - rate) < 6 * sigma)
    assert tr["count"].sum() / (slots * len(SOURCES)) == pytest.approx(rate, abs=6 * sigma / 2)


@pytest.mark.parametrize("s", [0.5, 0.8, 1.2])
def test_stationary_zipf_exponent(s):
    tasks = [f"t{i}" for i in range(12)]
    tr = stationary(SOURCES, tasks, 400, seed=3, rate=300.0, zipf=s)
    totals = tr.groupby("task")["count"].sum().reindex(tasks).to_numpy()
    assert zipf_slope(totals) == pytest.approx(-s, abs=0.03)


def test_ranking_order_and_random():
    tr = stationary(SOURCES, TASKS, 300, seed=4, rate=200.0, zipf=1.0, ranking="order")
    totals = tr.groupby("task")["count"].sum().reindex(TASKS).to_numpy()
    assert np.all(np.diff(totals) < 0)  # ranked in the given order
    rankings = set()
    for seed in range(6):
        tr = stationary(SOURCES, TASKS, 50, seed=seed, rate=200.0, zipf=1.5)
        rankings.add(tr.groupby("task")["count"].sum().idxmax())
    assert len(rankings) > 1  # the seeded ranking does move the top task


def test_source_weights_list_and_mapping():
    w = [1.0, 2.0, 3.0, 2.0]
    slots, rate = 2000, 10.0
    tr = stationary(SOURCES, TASKS, slots, seed=2, rate=rate, source_weights=w)
    got = (tr.groupby("source")["count"].sum() / slots).reindex(SOURCES).to_numpy()
    want = rate * np.array(w) / np.mean(w)
    assert np.all(np.abs(got - want) < 6 * np.sqrt(want / slots))
    tr2 = stationary(SOURCES, TASKS, slots, seed=2, rate=rate, source_weights=dict(zip(SOURCES, w)))
    pd.testing.assert_frame_equal(tr, tr2)


@pytest.mark.parametrize(
    "weights, match",
    [
        ({"a0": 1, "a1": 1, "a2": 1}, "no weight for source node 'a3'"),
        ({"a0": 1, "a1": 1, "a2": 1, "a3": 1, "zz": 1}, "unknown source node 'zz'"),
        ([1, 2], "2 weights for 4 sources"),
        ([1, -1, 1, 1], r"source_weights\[a1\]"),
        ([0, 0, 0, 0], "all weights are 0"),
    ],
)
def test_source_weights_errors(weights, match):
    with pytest.raises(ValueError, match=match):
        stationary(SOURCES, TASKS, 5, seed=0, source_weights=weights)


# ---- shifting -----------------------------------------------------------------
@pytest.mark.parametrize("mode", ["rotate", "reshuffle"])
def test_shift_happens_at_multiples_of_period(mode):
    slots, period = 600, 70
    tr = shifting(SOURCES, TASKS, slots, seed=5, rate=500.0, zipf=1.2, period=period, mode=mode)
    top = per_slot_task(tr, slots).argmax(axis=1)
    changes = np.flatnonzero(np.diff(top)) + 1
    np.testing.assert_array_equal(changes, np.arange(period, slots, period))


def test_rotate_moves_every_task_up_one_rank():
    slots, period = 40, 10
    tr = shifting(SOURCES, TASKS, slots, seed=6, rate=400.0, zipf=1.2, period=period, mode="rotate", ranking="order")
    counts = per_slot_task(tr, slots)
    for e in range(slots // period):
        epoch = counts[e * period : (e + 1) * period].sum(axis=0)
        order = np.argsort(-epoch)
        np.testing.assert_array_equal(order, np.roll(np.arange(len(TASKS)), -e))


def test_drift_popularity_interpolates():
    n, slots, period, s = 6, 95, 20, 1.0
    pop = shifting_popularity(np.random.default_rng(0), n, slots, s, period, "drift", "random")
    np.testing.assert_allclose(pop.sum(axis=1), 1.0)
    zipf = zipf_popularity(n, s)
    for t in range(0, slots, period):  # pure rankings exactly at multiples of the period
        np.testing.assert_allclose(np.sort(pop[t])[::-1], zipf)
    # gradual: one slot moves at most 1/period of the way between two rankings
    assert np.abs(np.diff(pop, axis=0)).sum(axis=1).max() <= 2.0 / period + 1e-12
    mid = pop[period // 2]
    assert not np.allclose(np.sort(mid)[::-1], zipf)  # in between, a mixture
    # successive rankings have different top tasks
    tops = [int(np.argmax(pop[t])) for t in range(0, slots, period)]
    assert all(a != b for a, b in zip(tops, tops[1:]))


def test_drift_trace_follows_its_popularity():
    slots, period, rate = 300, 60, 50.0
    tr = shifting(SOURCES, TASKS, slots, seed=8, rate=rate, zipf=1.0, period=period, mode="drift")
    # the generator draws the popularity first from the same seeded stream
    pop = shifting_popularity(np.random.default_rng(8), len(TASKS), slots, 1.0, period, "drift", "random")
    want = rate * len(SOURCES) * pop.sum(axis=0)
    got = per_slot_task(tr, slots).sum(axis=0)
    assert np.all(np.abs(got - want) < 6 * np.sqrt(want))


# ---- diurnal ------------------------------------------------------------------
def test_diurnal_peak_to_trough():
    day, days, rate, ratio = 48, 30, 100.0, 4.0
    tr = diurnal(SOURCES, TASKS, day * days, seed=9, rate=rate, day_slots=day, peak_to_trough=ratio)
    per_slot = tr.groupby("slot")["count"].sum().reindex(range(day * days), fill_value=0).to_numpy()
    by_phase = per_slot.reshape(days, day).mean(axis=0)
    # fit mean + amplitude * cos(phase - peak): robust to the noise of single slots
    angle = 2 * np.pi * np.arange(day) / day
    basis = np.column_stack([np.ones(day), np.cos(angle), np.sin(angle)])
    mean, c, s = np.linalg.lstsq(basis, by_phase, rcond=None)[0]
    amplitude = np.hypot(c, s)
    assert (mean + amplitude) / (mean - amplitude) == pytest.approx(ratio, rel=0.05)
    assert np.arctan2(s, c) % (2 * np.pi) == pytest.approx(np.pi, abs=0.05)  # peak at mid-day
    want = rate * len(SOURCES) * (1 + 0.6 * np.cos(angle - np.pi))  # a = (4 - 1) / (4 + 1)
    assert np.all(np.abs(by_phase - want) < 6 * np.sqrt(want / days))
    assert per_slot.mean() == pytest.approx(rate * len(SOURCES), rel=0.01)  # rate is the daily mean


def test_diurnal_flat_when_ratio_one():
    a = diurnal(SOURCES, TASKS, 100, seed=1, rate=5.0, peak_to_trough=1.0, ranking="order")
    b = stationary(SOURCES, TASKS, 100, seed=1, rate=5.0, ranking="order")
    pd.testing.assert_frame_equal(a, b)


def test_diurnal_phases_each_part_of_the_day_has_its_own_top_task_the_same_every_day():
    """8 parts of a 40-slot day, 25 days: in the middle of each part (before
    its blend) the part's top task gets its Zipf share; the next part's top
    task differs; day after day the same parts come back."""
    day, days, phases, zipf = 40, 25, 8, 1.4
    tasks = [f"t{i}" for i in range(12)]
    tr = diurnal(SOURCES, tasks, day * days, seed=4, rate=50.0, day_slots=day, peak_to_trough=1.0, zipf=zipf,
                 phases=phases, blend=0.4)  # fmt: skip
    m = tr.pivot_table(index="slot", columns="task", values="count", aggfunc="sum", fill_value=0)
    m = m.reindex(index=range(day * days), columns=tasks, fill_value=0).to_numpy(float)
    by_slot_of_day = m.reshape(days, day, len(tasks)).sum(axis=0)
    part_len = day // phases
    tops = []
    for k in range(phases):
        held = by_slot_of_day[k * part_len : k * part_len + 3].sum(axis=0)  # the first 3 of 5 slots: before the blend
        share = held / held.sum()
        tops.append(int(np.argmax(share)))
        assert share.max() == pytest.approx(zipf_popularity(len(tasks), zipf)[0], abs=0.03)
    assert all(tops[k] != tops[(k + 1) % phases] for k in range(phases - 1))
    first, second = m[: day * 12].reshape(12, day, -1).sum(axis=0), m[day * 12 : day * 24].reshape(12, day, -1).sum(axis=0)
    for k in range(phases):  # the same top task in the first and second half of the days
        assert np.argmax(first[k * part_len : k * part_len + 3].sum(axis=0)) == tops[k]
        assert np.argmax(second[k * part_len : k * part_len + 3].sum(axis=0)) == tops[k]


@settings(max_examples=60, deadline=None)
@given(
    phases=st.integers(1, 6),
    day=st.integers(6, 60),
    blend=st.floats(0.0, 1.0),
    seed=st.integers(0, 10**6),
)
def test_daily_popularity_is_a_distribution_starting_each_part_at_its_own_and_repeating_daily(phases, day, blend, seed):
    from idn.workloads.generators import daily_popularity

    rng = np.random.default_rng(seed)
    pops = rng.dirichlet(np.ones(5), size=phases)
    pop = daily_popularity(pops, 3 * day, day, blend)
    assert pop.shape == (3 * day, 5)
    np.testing.assert_allclose(pop.sum(axis=1), 1.0)
    np.testing.assert_allclose(pop[:day], pop[day : 2 * day])  # every day the same
    for t in range(day):  # a slot where a part starts (exactly, in slots) holds that part's popularity
        if (t * phases) % day == 0:
            np.testing.assert_allclose(pop[t], pops[t * phases // day])
    if blend == 0.0:  # no blending: every slot holds its part's popularity
        np.testing.assert_allclose(pop[:day], pops[(np.arange(day) * phases) // day])
    if phases == 1:
        np.testing.assert_allclose(pop, np.broadcast_to(pops[0], pop.shape))


def test_diurnal_with_one_phase_is_unchanged_by_the_blend():
    a = diurnal(SOURCES, TASKS, 120, seed=2, rate=5.0, day_slots=30)
    b = diurnal(SOURCES, TASKS, 120, seed=2, rate=5.0, day_slots=30, phases=1, blend=0.9)
    pd.testing.assert_frame_equal(a, b)


# ---- flash crowd ----------------------------------------------------------------
def _window_ratio(counts, start, stop):
    inside = counts[start:stop].mean(axis=0)
    outside = np.concatenate([counts[:start], counts[stop:]]).mean(axis=0)
    return inside / outside


def test_flash_crowd_task_only_in_window():
    slots, start, dur, factor = 600, 200, 150, 5.0
    tr = flash_crowd(SOURCES, TASKS, slots, seed=10, rate=100.0, zipf=0.5, start=start, duration=dur, task="t2", factor=factor)
    ratio = _window_ratio(per_slot_task(tr, slots), start, start + dur)
    assert ratio[2] == pytest.approx(factor, rel=0.05)
    np.testing.assert_allclose(np.delete(ratio, 2), 1.0, rtol=0.05)


def test_flash_crowd_region():
    slots, start, dur, factor = 500, 100, 100, 3.0
    region = ["a1", "a3"]
    tr = flash_crowd(SOURCES, TASKS, slots, seed=11, rate=50.0, start=start, duration=dur, source=region, factor=factor)
    table = tr.pivot_table(index="slot", columns="source", values="count", aggfunc="sum", fill_value=0)
    counts = table.reindex(index=range(slots), columns=SOURCES, fill_value=0).to_numpy(dtype=float)
    ratio = _window_ratio(counts, start, start + dur)
    np.testing.assert_allclose(ratio, [1.0, factor, 1.0, factor], rtol=0.05)


def test_flash_crowd_default_is_least_popular_task():
    slots, start, dur = 300, 100, 100
    tr = flash_crowd(SOURCES, TASKS, slots, seed=12, rate=100.0, zipf=1.0, ranking="order", start=start, duration=dur, factor=20.0)
    ratio = _window_ratio(per_slot_task(tr, slots), start, start + dur)
    assert ratio[-1] == pytest.approx(20.0, rel=0.1)
    np.testing.assert_allclose(ratio[:-1], 1.0, rtol=0.1)


def test_flash_crowd_unknown_target():
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        flash_crowd(SOURCES, TASKS, 10, seed=0, task="nope")
    with pytest.raises(ValueError, match="unknown source node 'zz'"):
        flash_crowd(SOURCES, TASKS, 10, seed=0, source=["a0", "zz"])


# ---- adversarial ------------------------------------------------------------------
@pytest.mark.parametrize("block", [1, 3])
def test_adversarial_only_scheduled_task(block):
    slots = 50
    tr = adversarial(SOURCES, TASKS, slots, seed=13, rate=30.0, block=block)
    schedule = adversarial_schedule(TASKS, slots, block)
    assert schedule[: 2 * block : block] == TASKS[:2]
    assert (tr["task"].to_numpy() == np.asarray(schedule)[tr["slot"].to_numpy()]).all()
    seen = tr.groupby("slot")["task"].unique()
    assert len(seen) == slots and all(len(v) == 1 for v in seen)  # each slot has requests, of one task
    assert tr["count"].sum() / (slots * len(SOURCES)) == pytest.approx(30.0, rel=0.05)


# ---- determinism and specs ---------------------------------------------------------
GENERATED = [k for k in WORKLOAD_KINDS if k not in ("trace", "servegen")]  # those two read data (test_importers.py)


@pytest.mark.parametrize("kind", GENERATED)
def test_same_seed_same_trace(kind):
    a = from_spec({"kind": kind}, SOURCES, TASKS, 60, seed=21)
    b = from_spec({"kind": kind}, SOURCES, TASKS, 60, seed=21)
    c = from_spec({"kind": kind}, SOURCES, TASKS, 60, seed=22)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    pd.testing.assert_frame_equal(a, validate_trace(a))  # generators emit canonical traces


def test_from_spec_passes_parameters():
    spec = {"kind": "shifting", "rate": 7, "zipf": 1.1, "period": 9, "mode": "reshuffle"}
    direct = shifting(SOURCES, TASKS, 40, 5, rate=7, zipf=1.1, period=9, mode="reshuffle")
    pd.testing.assert_frame_equal(from_spec(spec, SOURCES, TASKS, 40, 5), direct)
    assert "period" in workload_parameters("shifting") and "seed" not in workload_parameters("shifting")


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"kind": "poisson"}, r"^unknown workload kind 'poisson' \(known: stationary, "),
        ({"kind": "stationary", "rte": 3}, r"^unknown parameter 'rte' for workload kind 'stationary'"),
        ({"kind": "stationary", "seed": 3}, r"^workload parameter 'seed' is set by the scenario"),
        ({"rate": 3}, r"^workload spec has no 'kind'"),
        ("stationary", r"^workload spec must be a mapping"),
        ({"kind": "stationary", "rate": -1}, r"'rate' must be >= 0"),
        ({"kind": "stationary", "rate": "fast"}, r"'rate' must be a finite number"),
        ({"kind": "shifting", "mode": "spin"}, r"'mode' must be 'rotate', 'reshuffle' or 'drift'"),
        ({"kind": "shifting", "period": 0}, r"'period' must be >= 1"),
        ({"kind": "diurnal", "peak_to_trough": 0.5}, r"'peak_to_trough' must be >= 1"),
        ({"kind": "diurnal", "phases": 0}, r"'phases' must be >= 1"),
        ({"kind": "diurnal", "day_slots": 4, "phases": 5}, r"'phases' must be at most day_slots \(4\)"),
        ({"kind": "diurnal", "phases": 2, "blend": 1.5}, r"'blend' must be between 0 and 1"),
        ({"kind": "stationary", "ranking": "alpha"}, r"'ranking' must be 'random' or 'order'"),
    ],
)
def test_from_spec_errors(spec, match):
    with pytest.raises(ValueError, match=match) as err:
        from_spec(spec, SOURCES, TASKS, 10, seed=0)
    assert "\n" not in str(err.value)


def test_bad_sources_and_tasks():
    with pytest.raises(ValueError, match="duplicate id 'a0'"):
        stationary(["a0", "a0"], TASKS, 5, 0)
    with pytest.raises(ValueError, match="tasks must be a non-empty list"):
        stationary(SOURCES, [], 5, 0)


def test_zero_slots_is_empty():
    tr = stationary(SOURCES, TASKS, 0, seed=0)
    assert list(tr.columns) == ["slot", "source", "task", "count"] and len(tr) == 0


# ---- files -------------------------------------------------------------------------
@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_round_trip(tmp_path, ext):
    tr = diurnal(SOURCES, TASKS, 50, seed=30, rate=3.0, day_slots=10)
    path = tmp_path / f"trace.{ext}"
    write_trace(tr, path)
    pd.testing.assert_frame_equal(read_trace(path), tr)


def test_csv_keeps_ids_as_text_and_canonicalizes(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("task,slot,source,count\nx,1,01,2\nx,0,01,1\ny,0,007,0\nx,1,01,3\n")
    tr = read_trace(path)
    assert tr.to_dict("list") == {"slot": [0, 1], "source": ["01", "01"], "task": ["x", "x"], "count": [1, 5]}


@pytest.mark.parametrize(
    "body, match",
    [
        ("slot,source,task,n\n0,a,t,1\n", r"bad header 'slot,source,task,n': expected slot,source,task,count"),
        ("slot,source,task,count\n0,a,t,1\n1,a,t,-3\n", r"row 2 \(line 3\): column 'count': '-3' is negative"),
        ("slot,source,task,count\n0,a,t,2.5\n", r"row 1 \(line 2\): column 'count': '2.5' is not an integer"),
        ("slot,source,task,count\n0,a,t,1\n0,b,t,many\n", r"row 2 \(line 3\): column 'count': 'many' is not an integer"),
        ("slot,source,task,count\nx,a,t,1\n", r"row 1 \(line 2\): column 'slot': 'x' is not an integer"),
        ("slot,source,task,count\n0,,t,1\n", r"row 1 \(line 2\): column 'source': missing value"),
    ],
)
def test_read_trace_errors(tmp_path, body, match):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(ValueError, match=match) as err:
        read_trace(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_read_trace_parquet_error_and_format(tmp_path):
    path = tmp_path / "bad.parquet"
    pd.DataFrame({"slot": [0, 1], "source": ["a", "a"], "task": ["t", "t"], "count": [1, -2]}).to_parquet(path)
    with pytest.raises(ValueError, match=r"bad.parquet row 2: column 'count': .*-2.* is negative"):
        read_trace(path)
    with pytest.raises(ValueError, match="cannot tell the trace format of .*trace.txt"):
        read_trace(tmp_path / "trace.txt")
    with pytest.raises(FileNotFoundError, match="no such trace file"):
        read_trace(tmp_path / "missing.csv")


def test_trace_kind_reads_and_checks_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("slot,source,task,count\n0,a0,t1,2\n5,a1,t0,1\n")
    tr = from_spec({"kind": "trace", "path": str(path)}, SOURCES, TASKS, 5, seed=0)
    assert tr.to_dict("list") == {"slot": [0], "source": ["a0"], "task": ["t1"], "count": [2]}
    path.write_text("slot,source,task,count\n0,a0,t1,2\n1,zz,t0,1\n")
    with pytest.raises(ValueError, match=r"t.csv row 2: unknown source node 'zz'"):
        from_spec({"kind": "trace", "path": str(path)}, SOURCES, TASKS, 5, seed=0)


# ---- binning -------------------------------------------------------------------------
REQUESTS = pd.DataFrame(
    {
        "time": [0.0, 0.4, 0.99, 1.0, 2.5, 2.6, 0.3, 2.0],
        "source": ["a", "a", "b", "a", "a", "a", "a", "b"],
        "task": ["x", "x", "x", "y", "x", "x", "y", "x"],
        "user": range(8),  # extra columns are ignored
    }
)
BINNED = {
    "slot": [0, 0, 0, 1, 2, 2],
    "source": ["a", "a", "b", "a", "a", "b"],
    "task": ["x", "y", "x", "y", "x", "x"],
    "count": [2, 1, 1, 1, 2, 1],
}


@pytest.mark.parametrize("ext", [None, "csv", "parquet"])
def test_bin_requests_known_answer(tmp_path, ext):
    src = REQUESTS
    if ext:
        src = tmp_path / f"log.{ext}"
        REQUESTS.to_csv(src, index=False) if ext == "csv" else REQUESTS.to_parquet(src)
    assert bin_requests(src, 1.0).to_dict("list") == BINNED


def test_bin_requests_slot_grid():
    # epoch-stamped log: the origin is the first time rounded down to the grid
    log = REQUESTS.assign(time=REQUESTS["time"] + 1_700_000_000.0)
    assert bin_requests(log, 1.0).to_dict("list") == BINNED
    # 0.3 / 0.1 is 2.999... in floating point; it still belongs to slot 3
    tiny = pd.DataFrame({"time": [0.3, 0.05, 0.1], "source": "a", "task": "x"})
    assert bin_requests(tiny, 0.1).to_dict("list") == {"slot": [0, 1, 3], "source": ["a"] * 3, "task": ["x"] * 3, "count": [1] * 3}
    assert bin_requests(tiny, 1.0, origin=-2.0)["slot"].tolist() == [2]
    stamped = pd.DataFrame({"time": pd.to_datetime(["2024-01-01 00:00:00.5", "2024-01-01 00:00:07.0"]), "source": "a", "task": "x"})
    assert bin_requests(stamped, 2.0)["slot"].tolist() == [0, 3]


def test_bin_requests_errors():
    with pytest.raises(ValueError, match="no column 'time'"):
        bin_requests(REQUESTS.drop(columns="time"), 1.0)
    with pytest.raises(ValueError, match=r"requests row 2: column 'time': 'soon' is not a number"):
        bin_requests(pd.DataFrame({"time": ["1", "soon"], "source": "a", "task": "x"}), 1.0)
    with pytest.raises(ValueError, match="slot_seconds must be a positive number"):
        bin_requests(REQUESTS, 0)
    with pytest.raises(ValueError, match="before the origin"):
        bin_requests(REQUESTS, 1.0, origin=0.5)


# ---- to_matrix -------------------------------------------------------------------------
def to_matrix_reference(trace, key_index, n_types, slots):
    r = np.zeros((slots, n_types))
    for row in trace.itertuples(index=False):
        if row.slot < slots:
            r[row.slot, key_index[(row.source, row.task)]] += row.count
    return r


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 6), st.sampled_from("abc"), st.sampled_from("xyz"), st.integers(0, 9)), max_size=40),
    perm_seed=st.integers(0, 1000),
    slots=st.one_of(st.none(), st.integers(0, 9)),
)
def test_to_matrix_matches_reference(rows, perm_seed, slots):
    pairs = [(s, t) for s in "abc" for t in "xyz"]
    n_types = len(pairs) + 2  # types nobody requests stay zero
    idx = np.random.default_rng(perm_seed).permutation(n_types)[: len(pairs)]
    key_index = {p: int(i) for p, i in zip(pairs, idx)}
    trace = pd.DataFrame(rows, columns=["slot", "source", "task", "count"])  # duplicates allowed
    got = to_matrix(trace, key_index, n_types, slots=slots)
    T = slots if slots is not None else (trace["slot"].max() + 1 if rows else 0)
    np.testing.assert_array_equal(got, to_matrix_reference(trace, key_index, n_types, T))
    assert got.dtype == float


def test_to_matrix_unknown_keys():
    key_index = {("a", "x"): 0, ("a", "y"): 1, ("b", "x"): 2}
    trace = pd.DataFrame({"slot": [0, 0, 1], "source": ["a", "b", "q"], "task": ["x", "x", "x"], "count": [1, 1, 1]})
    with pytest.raises(ValueError, match=r"^trace row 3: unknown source node 'q'$"):
        to_matrix(trace, key_index, 3)
    trace.loc[2, ["source", "task"]] = ["a", "zz"]
    with pytest.raises(ValueError, match=r"^trace row 3: unknown task 'zz'$"):
        to_matrix(trace, key_index, 3)
    trace.loc[2, ["source", "task"]] = ["b", "y"]  # both known, but no such type
    with pytest.raises(ValueError, match=r"^trace row 3: no request type for source node 'b' and task 'y'$"):
        to_matrix(trace, key_index, 3)
    trace.loc[2, ["source", "task"]] = ["core1", "x"]  # a node, but not a source
    with pytest.raises(ValueError, match=r"no request type for source node 'core1'"):
        to_matrix(trace, key_index, 3, known_sources=["a", "b", "core1"], known_tasks=["x", "y"])
    with pytest.raises(ValueError, match=r"unknown source node 'core1'"):
        to_matrix(trace, key_index, 3, known_sources=["a", "b"], known_tasks=["x", "y"])


def test_to_matrix_on_generated_trace():
    tr = stationary(SOURCES, TASKS, 30, seed=40)
    key_index = {(s, t): i for i, (s, t) in enumerate((s, t) for t in TASKS for s in SOURCES)}
    r = to_matrix(tr, key_index, len(key_index), slots=40)
    assert r.shape == (40, len(key_index)) and r[30:].sum() == 0
    assert r.sum() == tr["count"].sum()
    np.testing.assert_array_equal(r[:30], to_matrix_reference(tr, key_index, len(key_index), 30))


# ---- summary -------------------------------------------------------------------------------
def test_summarize_and_format():
    trace = pd.DataFrame(
        {"slot": [0, 0, 2, 3], "source": ["a", "b", "a", "a"], "task": ["x", "y", "y", "y"], "count": [4, 1, 2, 5]}
    )
    s = summarize(trace)
    assert s["slots"] == 4 and s["total_requests"] == 12 and s["mean_per_slot"] == 3.0
    assert (s["max_per_slot"], s["peak_slot"], s["empty_slots"]) == (5, 0, 1)
    assert s["per_task"] == {"y": 8, "x": 4} and list(s["per_task"]) == ["y", "x"]
    assert s["per_source"] == {"a": 11, "b": 1}
    assert summarize(trace, slots=6)["empty_slots"] == 3
    text = format_summary(s)
    assert "total requests   12" in text and "mean per slot    3.00" in text
    assert "  y           8   66.7%" in text
    assert "... 1 more" in format_summary(s, top=1)
    empty = summarize(trace.iloc[:0])
    assert empty["slots"] == 0 and empty["total_requests"] == 0 and "slots            0" in format_summary(empty)
