"""Fuzz cases for every input surface of ``idn`` (tests/test_fuzz_inputs.py).

Each surface is a hypothesis strategy of mutations of a valid input; the
cases are drawn with a fixed seed (``derandomize``), written to files, and
run in one batch by ``idn.fuzzcheck`` (a forked real process per case, under
a time and a memory limit). A case is a dict: ``argv``, ``names`` (strings
of which the error line must name one: the file, the flag, the parameter)
and ``must_fail`` (a non-finite number went in: success would be silent
acceptance)."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
import hypothesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

TINY = {
    "name": "tiny",
    "slot_seconds": 1.0,
    "alpha": 1.0,
    "nodes": [
        {"id": "cloud", "tier": "cloud", "hardware": "gpu", "speed": 1.0, "workers": 4, "repository": True},
        {"id": "edge-1", "tier": "edge", "hardware": "gpu", "speed": 0.5, "workers": 1, "budget_mb": 300},
        {"id": "ap-1", "tier": "access", "hardware": "cpu", "speed": 0.5, "workers": 2, "budget_mb": 60},
    ],
    "links": [{"a": "ap-1", "b": "edge-1", "latency_ms": 2.0}, {"a": "edge-1", "b": "cloud", "latency_ms": 18.5}],
    "tasks": [
        {"id": "vision-a", "models": [{"id": "small", "accuracy": 0.71, "size_mb": 14, "service_ms": {"cpu": 25.9, "gpu": 3.8}}, "MobileNetV2"]},
        {"id": "vision-b", "models": ["ResNet50", "MobileNet"]},
    ],
    "sources": ["ap-1"],
    "workload": {"kind": "stationary", "rate": 20, "zipf": 0.8},
}
TREE = {
    "name": "tree",
    "topology": {"tiered_tree": {"regional": 1, "edge_per_regional": 2, "access_per_edge": 2,
                                 "latency_ms": {"access_edge": 2.0}, "budget_mb": {"edge": 400}}},
    "tasks": {"generate": {"count": 3, "models_per_task": [2, 3], "seed": 1}},
    "workload": {"kind": "shifting", "rate": 10, "period": 5},
}  # fmt: skip
ALLOCATION = {"edge-1": ["vision-a/small", "vision-b/MobileNet"], "ap-1": ["vision-a/small"]}
TRACE = pd.DataFrame({
    "slot": [0, 0, 1, 2, 2], "source": ["ap-1", "ap-1", "ap-1", "ap-1", "ap-1"],
    "task": ["vision-a", "vision-b", "vision-a", "vision-a", "vision-b"], "count": [5, 3, 7, 1, 2],
})  # fmt: skip
EXPERIMENT = {
    "name": "fz",
    "scenarios": {"tiny": "tiny.yaml"},
    "workloads": {"st": {"kind": "stationary", "rate": 5, "zipf": 0.8}},
    "slots": 3,
    "seeds": [0],
    "policies": {"cloud-only": {}, "infida": {"eta_scale": [1.0]}},
    "grid": {"alpha": [1.0, 2.0]},
}

NON_FINITE = [math.nan, math.inf, -math.inf]
HUGE = [1e300, -1e300, 10**30, 2**63, 1e-320]


# ---- values --------------------------------------------------------------------
def nested(depth: int):
    v = 1
    for _ in range(depth):
        v = [v]
    return v


scalars = st.one_of(
    st.sampled_from(NON_FINITE + HUGE + [0, -1, -0.5, 1, 2.5, True, False, None, "", "x", "1e400", "nan", "inf"]),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=5), scalars, max_size=3),
    st.just([]),
    st.just({}),
    st.integers(min_value=20, max_value=120).map(nested),  # deeper: file_mutation's "deep"
)


def is_non_finite(v) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


def paths(doc, prefix=()):
    """Every key path into doc (dict keys and list indexes), containers included."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, prefix + (i,))
    return out


def numeric_leaf(doc, path) -> bool:
    for p in path:
        doc = doc[p]
    return isinstance(doc, (int, float)) and not isinstance(doc, bool)


def put(doc, path, value):
    doc = copy.deepcopy(doc)
    target = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return doc


@st.composite
def doc_mutation(draw, base: dict):
    """(document, must_fail): one key of base replaced, added or removed."""
    all_paths = paths(base)
    numeric = [p for p in all_paths if numeric_leaf(base, p)]
    kind = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add"] + ["numeric"] * bool(numeric)))
    if kind == "numeric":
        path = draw(st.sampled_from(numeric))
        value = draw(st.sampled_from(NON_FINITE + HUGE + [-1, 0]))
        return put(base, path, value), is_non_finite(value) and not _ignored(path)
    path = draw(st.sampled_from(all_paths))
    if kind == "drop":
        doc = copy.deepcopy(base)
        target = doc
        for p in path[:-1]:
            target = target[p]
        del target[path[-1]]
        return doc, False
    value = draw(values)
    if kind == "add":
        parent = path[:-1]
        target = copy.deepcopy(base)
        t = target
        for p in parent:
            t = t[p]
        if isinstance(t, dict):
            t[draw(st.text(min_size=1, max_size=6))] = value
        elif isinstance(t, list):
            t.append(value)
        return target, False
    return put(base, path, value), is_non_finite(value) and numeric_leaf(base, path) and not _ignored(path)


def _ignored(path) -> bool:
    """Keys whose numbers are not read: a generated-tasks seed is any int; the name is a label."""
    return path[-1] in ("seed", "name")


def dump(doc, path: Path, fmt: str) -> None:
    if fmt == "json":
        path.write_text(json.dumps(doc, allow_nan=True))
    else:
        path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=10**6))


@st.composite
def file_mutation(draw, text: str):
    """Whole-file damage: truncation, binary bytes, an empty file, a duplicate
    key, a stray character, an invalid UTF-8 byte."""
    kind = draw(st.sampled_from(["truncate", "binary", "empty", "duplicate", "insert", "badutf8", "nul", "deep"]))
    data = text.encode()
    if kind == "deep":  # past the parsers' recursion limits
        depth = draw(st.sampled_from([2000, 50000]))
        return draw(st.sampled_from([b"[" * depth, b"{a: " * depth, b"- " * depth]))
    if kind == "truncate":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if kind == "binary":
        return draw(st.binary(min_size=1, max_size=200))
    if kind == "empty":
        return draw(st.sampled_from([b"", b"\n", b"   \n", b"# only a comment\n"]))
    if kind == "duplicate":
        first = text.splitlines()[0] if text.strip() else "x: 1"
        return (text + "\n" + first + "\n").encode()
    if kind == "insert":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.sampled_from([b"{", b"]", b"\t", b":", b"&a", b"*a", b"!!python/object:os.system", b"\xe2\x80\xa8"])) + data[at:]
    if kind == "nul":
        at = draw(st.integers(0, len(data)))
        return data[:at] + b"\x00" + data[at:]
    at = draw(st.integers(0, len(data)))
    return data[:at] + b"\xff\xfe" + data[at:]


def draw_cases(strategy, n: int, seed: int) -> list:
    """n examples of strategy, reproducibly (hypothesis' generation with a fixed seed, no shrinking)."""
    out = []

    @settings(max_examples=n, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(strategy)
    def gather(x):
        out.append(x)

    hypothesis.seed(seed)(gather)()  # a different, fixed sequence per surface
    return out[:n]


# ---- surfaces ---------------------------------------------------------------
def scenario_cases(d: Path, n: int) -> list[dict]:
    bases = [("tiny", TINY), ("tree", TREE)]
    strategy = st.one_of(
        st.tuples(st.sampled_from(range(len(bases))), st.sampled_from(["yaml", "json"]), doc_mutation(TINY), st.none()),
        st.tuples(st.just(1), st.just("yaml"), doc_mutation(TREE), st.none()),
        st.tuples(st.sampled_from(range(len(bases))), st.sampled_from(["yaml", "json"]), st.none(),
                  file_mutation(yaml.safe_dump(TINY, sort_keys=False))),
    )  # fmt: skip
    cases = []
    for i, (b, fmt, mutated, raw) in enumerate(draw_cases(strategy, n, 1)):
        path = d / f"scenario-{i}.{fmt}"
        must_fail = False
        if raw is not None:
            path.write_bytes(raw)
        else:
            doc, must_fail = mutated
            dump(doc, path, fmt)
        cases.append({"argv": ["validate", path], "names": [path], "must_fail": must_fail, "file": path})
    return cases


def trace_cases(d: Path, n: int, scenario: Path, allocation: Path) -> list[dict]:
    cell = st.one_of(st.sampled_from([math.nan, math.inf, -1, 2.5, 1e30, 10**20, "", "x", "ap-1", "vision-z", None, True]), st.text(max_size=6))
    strategy = st.one_of(
        st.tuples(st.just("cell"), st.sampled_from(["csv", "parquet"]), st.integers(0, len(TRACE) - 1),
                  st.sampled_from(list(TRACE.columns)), cell),
        st.tuples(st.just("header"), st.sampled_from(["csv", "parquet"]), st.integers(0, 3),
                  st.sampled_from(["", "slot", "Count", "extra", "time", "sl ot"]), st.none()),
        st.tuples(st.just("file"), st.just("csv"), st.none(), st.none(), file_mutation(TRACE.to_csv(index=False))),
        st.tuples(st.just("bytes"), st.just("parquet"), st.integers(0, 10**6), st.integers(0, 255), st.none()),
    )  # fmt: skip
    good = d / "good.parquet"
    TRACE.to_parquet(good, index=False)
    cases = []
    for i, (kind, fmt, a, b, c) in enumerate(draw_cases(strategy, n, 2)):
        path = d / f"trace-{i}.{fmt}"
        must_fail = False
        if kind == "cell":
            df = TRACE.astype(object).copy()
            df.iloc[a, df.columns.get_loc(b)] = c
            must_fail = b in ("slot", "count") and is_non_finite(c)
            _write_table(df, path, fmt)
        elif kind == "header":
            df = TRACE.copy()
            cols = list(df.columns)
            cols[a] = b
            df.columns = cols
            _write_table(df, path, fmt)
        elif kind == "file":
            path.write_bytes(c)
        else:
            data = bytearray(good.read_bytes())
            data[a % len(data)] = b
            path.write_bytes(bytes(data[: max(1, a % (len(data) + 1))] if a % 3 == 0 else data))
        argv = (["trace", "show", path] if i % 2 else
                ["evaluate", scenario, "--allocation", allocation, "--requests", path])  # fmt: skip
        cases.append({"argv": argv, "names": [path], "must_fail": must_fail, "file": path})
    return cases


def _write_table(df: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "csv":
        df.to_csv(path, index=False)
        return
    try:
        df.to_parquet(path, index=False)
    except Exception:  # a column pyarrow cannot type (mixed objects), or duplicate names: as strings
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrays = [pa.array(df.iloc[:, i].astype(str).tolist()) for i in range(df.shape[1])]
        pq.write_table(pa.Table.from_arrays(arrays, names=[str(c) for c in df.columns]), path)


def allocation_cases(d: Path, n: int, scenario: Path, trace: Path) -> list[dict]:
    strategy = st.one_of(
        st.tuples(doc_mutation(ALLOCATION), st.none()),
        st.tuples(st.none(), file_mutation(json.dumps(ALLOCATION))),
        st.tuples(values.map(lambda v: (v, False)), st.none()),  # any JSON at all
    )
    cases = []
    for i, (mutated, raw) in enumerate(draw_cases(strategy, n, 3)):
        path = d / f"alloc-{i}.json"
        if raw is not None:
            path.write_bytes(raw)
        else:
            path.write_text(json.dumps(mutated[0], allow_nan=True))
        cases.append({"argv": ["evaluate", scenario, "--allocation", path, "--requests", trace], "names": [path],
                      "must_fail": False, "file": path})  # fmt: skip
    return cases


def experiment_cases(d: Path, n: int) -> list[dict]:
    (d / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    strategy = st.one_of(
        st.tuples(doc_mutation(EXPERIMENT), st.none()),
        st.tuples(st.none(), file_mutation(yaml.safe_dump(EXPERIMENT, sort_keys=False))),
    )
    cases = []
    for i, (mutated, raw) in enumerate(draw_cases(strategy, n, 4)):
        path = d / f"exp-{i}.yaml"
        must_fail = False
        if raw is not None:
            path.write_bytes(raw)
        else:
            doc, must_fail = mutated
            dump(doc, path, "yaml")
        cases.append({"argv": ["sweep", path, "--out", d / f"exp-out-{i}", "--quiet"], "names": [path],
                      "must_fail": must_fail, "file": path})  # fmt: skip
    return cases


PARAMS = {
    "infida": ["eta", "eta_scale", "rounding"],
    "infida-offline": ["iterations", "batch", "samples", "eta"],
    "online-greedy": ["window"],
    "optimal": ["max_variables", "time_limit", "mip_rel_gap"],
    "fixed": ["allocation"],
}
PARAM_VALUES = ["-1", "0", "inf", "-inf", "nan", "NaN", "Infinity", "1e400", "1e308", "true", "null", "[1]", '{"a": 1}',
                '"x"', "2.5", "3", "1e-300", "é", "\u202e", "", "=", "99999999999999999999999", "fresh", "coupled"]  # fmt: skip
FLAGS = ["--slots", "--seed", "--checkpoint-every", "--memory-limit"]
FLAG_VALUES = ["-1", "0", "1", "3", "inf", "nan", "1e400", "x", "", "99999999999999999999", "2.5", "-0", "0x10", "1_0"]


def param_cases(d: Path, n: int, scenario: Path) -> list[dict]:
    strategy = st.one_of(
        st.tuples(st.just("param"), st.sampled_from(sorted(PARAMS)), st.sampled_from(sum(PARAMS.values(), []) + ["bogus"]),
                  st.one_of(st.sampled_from(PARAM_VALUES), st.text(max_size=8))),
        st.tuples(st.just("flag"), st.just("infida"), st.sampled_from(FLAGS), st.one_of(st.sampled_from(FLAG_VALUES), st.text(max_size=6))),
        st.tuples(st.just("workload"), st.sampled_from(["stationary", "shifting", "diurnal", "flash_crowd"]),
                  st.sampled_from(["rate", "zipf", "period", "amplitude", "peak", "start", "bogus"]),
                  st.sampled_from(PARAM_VALUES)),
    )  # fmt: skip
    cases = []
    for i, (kind, policy, name, value) in enumerate(draw_cases(strategy, n, 5)):
        out = d / f"param-out-{i}"
        base = ["run", scenario, "--policy", policy, "--slots", "3", "--out", out, "--quiet", "--no-bound"]
        non_finite = value.strip().lower() in ("inf", "-inf", "nan", "infinity", "1e400")
        if kind == "param":
            argv, names = base + ["--param", f"{name}={value}"], [f"parameter {name}", repr(name), "--param"]
            must_fail = non_finite and name in PARAMS[policy]
        elif kind == "flag":
            if name == "--memory-limit":
                argv = ["--memory-limit", value, *base]
            else:
                argv = [*base, name, value]
            names, must_fail = [name, "argument"], non_finite
        else:
            argv = ["trace", "generate", scenario, "--kind", policy, "--param", f"{name}={value}", "--slots", "4",
                    "--out", d / f"trace-out-{i}.csv"]  # fmt: skip
            names, must_fail = [repr(name), name], non_finite
        cases.append({"argv": argv, "names": names, "must_fail": must_fail, "file": None})
    return cases


def checkpoint_cases(d: Path, n: int, scenario: Path, good_dir: Path, run_args: list) -> list[dict]:
    """Mutations of a real checkpoint (good_dir/checkpoint.npz) of run_args."""
    good = good_dir / "checkpoint.npz"
    with np.load(good, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    meta = json.loads(bytes(members["__meta__"]).decode())
    array = st.one_of(
        st.sampled_from([np.zeros(0), np.full(3, np.nan), np.array([np.inf]), np.zeros((2, 2), dtype=np.int8), np.array(["x"]),
                         np.ones(10**4, dtype=bool)]),
        st.integers(0, 50).map(lambda k: np.random.default_rng(k).random(k)),
    )  # fmt: skip
    strategy = st.one_of(
        st.tuples(st.just("flip"), st.integers(0, 10**7), st.integers(0, 255)),
        st.tuples(st.just("truncate"), st.integers(0, 10**7), st.none()),
        st.tuples(st.just("member"), st.sampled_from(sorted(members)), array),
        st.tuples(st.just("meta"), st.sampled_from(sorted(meta) + ["state.rng", "state.x", "extra"]), values),
        st.tuples(st.just("file"), st.none(), file_mutation("x")),
    )
    cases = []
    for i, (kind, a, b) in enumerate(draw_cases(strategy, n, 6)):
        out = d / f"ckpt-{i}"
        out.mkdir()
        path = out / "checkpoint.npz"
        data = good.read_bytes()
        if kind == "flip":
            buf = bytearray(data)
            buf[a % len(buf)] = b
            path.write_bytes(bytes(buf))
        elif kind == "truncate":
            path.write_bytes(data[: a % len(data)])
        elif kind == "member":
            m = dict(members)
            m[a] = b
            with open(path, "wb") as fh:
                np.savez(fh, **m)
        elif kind == "meta":
            m, mm = dict(members), copy.deepcopy(meta)
            if a.startswith("state."):
                mm["state"][a[6:]] = b
            else:
                mm[a] = b
            m["__meta__"] = np.frombuffer(json.dumps(mm, allow_nan=True, default=str).encode(), dtype=np.uint8)
            with open(path, "wb") as fh:
                np.savez(fh, **m)
        else:
            path.write_bytes(b)
        argv = [*map(str, run_args), "--out", out]
        cases.append({"argv": argv, "names": [path], "must_fail": False, "file": path})
    return cases


def store_cases(d: Path, n: int, experiment: Path, good_store: Path) -> list[dict]:
    """Mutations of one file of a real result store, then a resuming sweep."""
    files = sorted(p.relative_to(good_store) for p in good_store.rglob("*.parquet"))
    strategy = st.tuples(
        st.sampled_from(files),
        st.sampled_from(["flip", "truncate", "empty", "other", "foreign", "columns"]),
        st.integers(0, 10**6),
        st.integers(0, 255),
    )
    cases = []
    for i, (rel, kind, a, b) in enumerate(draw_cases(strategy, n, 7)):
        store = d / f"store-{i}"
        shutil.copytree(good_store, store, ignore=shutil.ignore_patterns("report"))
        target = store / rel
        data = target.read_bytes()
        if kind == "flip":
            buf = bytearray(data)
            buf[a % len(buf)] = b
            target.write_bytes(bytes(buf))
        elif kind == "truncate":
            target.write_bytes(data[: a % len(data)])
        elif kind == "empty":
            target.write_bytes(b"")
        elif kind == "other":
            pd.DataFrame({"x": [a], "y": ["z"]}).to_parquet(target)
        elif kind == "foreign":
            others = [p for p in target.parent.glob("*.parquet") if p != target]
            if others:
                shutil.copy(others[a % len(others)], target)
        else:
            df = pd.read_parquet(target)
            df = df.drop(columns=[df.columns[a % len(df.columns)]])
            df.to_parquet(target)
        argv = ["sweep", experiment, "--out", store, "--quiet"] if i % 4 else ["report", store]
        cases.append({"argv": argv, "names": [store], "must_fail": False, "file": target})
    return cases
