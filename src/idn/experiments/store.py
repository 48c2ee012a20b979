"""The result store of a sweep: one Parquet file per finished run, so a sweep
that is killed loses only the runs in flight, and a re-run skips the rest.

Layout of DIR:
- ``runs/<run_id>.parquet``: one row, the run's summary (``RunResult.summary``),
  ``run_id``, ``bound_key``, ``final_allocation`` (JSON) and every parameter
  as a column (policy parameters as ``param_<name>``).
- ``slots/<run_id>.parquet``: one row per slot (``SLOT_COLUMNS``) with
  ``run_id`` and the same parameter columns.
- ``bounds/<bound_key>.parquet``: one row, the LP bounds of one
  (scenario, workload, seed, axes) group.
- ``experiment.yaml``: a copy of the experiment, written once.

Every file is written to a hidden temporary name in its own directory, then
renamed (``os.replace``), so a file that exists is whole. The slots file is
written before the runs file, and a run is done exactly when its runs file
exists. One sweep writes into a directory at a time.

A file can still be damaged later (a full disk, a bad copy, a hand edit), so
resuming trusts nothing: ``verify`` reads every result file of the sweep's
runs and bounds and checks it is readable, has the expected columns and
rows, and holds the parameters of the run its name claims (the run_id is a
hash of them: the run's fingerprint). A file that fails is moved to
``corrupt/`` and its run is done again. The loaders (``load_runs``...) skip
unreadable files, naming each in ``skipped``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

# the parameter columns first, in this order, then the policies' parameters, then the results
PARAM_COLUMNS = [
    "run_id", "scenario", "scenario_digest", "workload", "workload_spec", "slots", "seed",
    "alpha", "budget_scale", "slot_seconds", "policy",
]  # fmt: skip
BOUND_COLUMNS = ["lp_bound", "per_slot_lp_bound", "fraction_of_bound", "fraction_of_per_slot_bound"]


class ResultStore:
    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.runs = self.out / "runs"
        self.slots = self.out / "slots"
        self.bounds = self.out / "bounds"
        for d in (self.runs, self.slots, self.bounds):
            d.mkdir(parents=True, exist_ok=True)
            _remove_orphans(d)

    def done_runs(self) -> set[str]:
        return _stems(self.runs)

    def done_bounds(self) -> set[str]:
        return _stems(self.bounds)

    def verify(self, runs: list, bounds: list) -> tuple[set[str], set[str], list[str]]:
        """(run ids done, bound keys done, problems): the tasks (sweep.Task)
        whose result files pass every check; the others' files are moved to
        corrupt/ (one problem line each) so that they run again."""
        done_runs, done_bounds, problems = set(), set(), []
        for tasks, folder, done, check in ((runs, self.runs, done_runs, _check_run), (bounds, self.bounds, done_bounds, _check_bound)):
            existing = _stems(folder)
            for task in tasks:
                if task.key not in existing:
                    continue
                problem = check(self.out, task.key, task.params)
                if problem is None:
                    done.add(task.key)
                    continue
                problems.append(problem)
                self._set_aside(task.key, [folder] + ([self.slots] if folder == self.runs else []))
        return done_runs, done_bounds, problems

    def _set_aside(self, key: str, folders: list[Path]) -> None:
        for folder in folders:
            src = folder / f"{key}.parquet"
            if src.exists():
                dest = self.out / "corrupt" / folder.name
                dest.mkdir(parents=True, exist_ok=True)
                os.replace(src, dest / src.name)

    def write_run(self, run_id: str, row: dict, slots: pd.DataFrame) -> None:
        _write(self.slots / f"{run_id}.parquet", slots)
        _write(self.runs / f"{run_id}.parquet", pd.DataFrame([row]))

    def write_bound(self, key: str, row: dict) -> None:
        _write(self.bounds / f"{key}.parquet", pd.DataFrame([row]))

    def write_experiment(self, source: dict, path: Path | None = None) -> None:
        target = self.out / "experiment.yaml"
        if target.exists():
            return
        text = path.read_text(encoding="utf-8") if path is not None else yaml.safe_dump(source, sort_keys=False)
        tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)


def _stems(d: Path) -> set[str]:
    return {p.stem for p in d.glob("*.parquet")}


def _write(path: Path, df: pd.DataFrame) -> None:
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _remove_orphans(d: Path) -> None:
    """Temporary files left by a killed sweep (its pid no longer runs)."""
    for tmp in d.glob(".*.tmp"):
        try:
            pid = int(tmp.name.rsplit(".", 2)[-2])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            tmp.unlink(missing_ok=True)
        except PermissionError:
            pass  # someone else's live process


# ---- checks ---------------------------------------------------------------
RUN_RESULT_COLUMNS = ["run_id", "bound_key", "policy", "slots", "total_gain", "normalized_gain", "final_allocation"]
BOUND_RESULT_COLUMNS = ["bound_key", "static_lp_bound", "per_slot_lp_bound"]


def _cell(v):
    """A stored value as plain Python (numpy scalars unwrapped, NaN as None) for comparing."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _read_one(path: Path, columns: list[str]) -> tuple[pd.DataFrame | None, str | None]:
    """(table, None) or (None, what is wrong with the file)."""
    try:
        df = pq.read_table(path).to_pandas()
    except Exception as exc:  # pyarrow raises a zoo of types for a damaged file
        first = (str(exc).strip().splitlines() or [""])[0][:120]
        return None, f"{path}: unreadable ({type(exc).__name__}: {first})"
    missing = [c for c in columns if c not in df.columns]
    if missing:
        return None, f"{path}: no column {missing[0]!r}"
    return df, None


def _check_fingerprint(path: Path, row: pd.Series, key_column: str, key: str, params: dict) -> str | None:
    if _cell(row[key_column]) != key:
        return f"{path}: holds {key_column} {_cell(row[key_column])!r}, not {key!r}"
    for k, v in params.items():
        if k not in row.index:
            return f"{path}: no column {k!r}"
        if _cell(row[k]) != _cell(v):
            return f"{path}: column {k!r} is {_cell(row[k])!r}, but run {key} has {v!r} (from another run)"
    return None


def _read_result(path: Path, columns: list[str], key_column: str, key: str, params: dict):
    """(table, problem): a one-row result file, read and checked against the
    task it claims to be (its key and every parameter)."""
    df, problem = _read_one(path, columns)
    if problem:
        return df, problem
    if len(df) != 1:
        return df, f"{path}: {len(df)} rows, expected 1"
    return df, _check_fingerprint(path, df.iloc[0], key_column, key, params)


def _check_run(out: Path, run_id: str, params: dict) -> str | None:
    path = out / "runs" / f"{run_id}.parquet"
    df, problem = _read_result(path, RUN_RESULT_COLUMNS, "run_id", run_id, params)
    if problem:
        return problem
    if not math.isfinite(float(df["total_gain"].iloc[0])):
        return f"{path}: total_gain is not a finite number"
    from ..sim.loop import SLOT_COLUMNS

    spath = out / "slots" / f"{run_id}.parquet"
    if not spath.exists():
        return f"{spath}: missing"
    slots, problem = _read_one(spath, ["run_id", *SLOT_COLUMNS])
    if problem:
        return problem
    if len(slots) != int(params["slots"]) or not (slots["run_id"] == run_id).all():
        return f"{spath}: {len(slots)} rows of run {run_id}, expected {params['slots']}"
    return None


def _check_bound(out: Path, key: str, params: dict) -> str | None:
    return _read_result(out / "bounds" / f"{key}.parquet", BOUND_RESULT_COLUMNS, "bound_key", key, params)[1]


def _read_all(paths: list[Path], skipped: list[str] | None = None, columns: list[str] = ()) -> pd.DataFrame:
    """Concatenate one-file tables whose columns differ (other policies' parameters)
    or whose types differ (a parameter that is null in one run, a number in another).
    A file that cannot be read, or lacks one of columns, is left out and named in skipped."""
    tables = []
    for p in paths:
        try:
            table = pq.read_table(p)
        except Exception as exc:  # pyarrow raises a zoo of types for a damaged file
            if skipped is None:
                raise ValueError(f"{p}: unreadable result file ({type(exc).__name__})") from None
            skipped.append(f"{p}: unreadable ({type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:120]})")
            continue
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            if skipped is None:
                raise ValueError(f"{p}: no column {missing[0]!r}")
            skipped.append(f"{p}: no column {missing[0]!r}")
            continue
        tables.append(table)
    if not tables:
        return pd.DataFrame()
    try:
        combined = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        combined = pa.concat_tables(_params_as_text(tables), promote_options="permissive")
    df = combined.to_pandas()
    first = [c for c in PARAM_COLUMNS if c in df.columns] + sorted(c for c in df.columns if c.startswith("param_"))
    return df[first + [c for c in df.columns if c not in first]]


def _params_as_text(tables: list[pa.Table]) -> list[pa.Table]:
    """A parameter whose value changed kind between versions (INFIDA's fill:
    true, then "state" / "marginal") cannot be one typed column: those
    columns become text in every table ("true", "marginal")."""
    kinds: dict[str, set] = {}
    for t in tables:
        for f in t.schema:
            if f.name.startswith("param_") and not pa.types.is_null(f.type):
                kinds.setdefault(f.name, set()).add(f.type)
    mixed = [c for c, k in kinds.items() if len(k) > 1]
    out = []
    for t in tables:
        for c in mixed:
            if c in t.column_names:
                t = t.set_column(t.schema.get_field_index(c), c, pc.cast(t[c], pa.string()))
        out.append(t)
    return out


def load_runs(out: str | Path, skipped: list[str] | None = None) -> pd.DataFrame:
    """One row per finished run, sorted by run_id, with the LP bounds (NaN
    where none was computed) and the run's fraction of each. With a list as
    skipped, unreadable files are left out and named there (else a ValueError)."""
    out = Path(out)
    runs = _read_all(sorted((out / "runs").glob("*.parquet")), skipped, RUN_RESULT_COLUMNS)
    if runs.empty:
        return runs
    runs = runs.sort_values("run_id", kind="stable").reset_index(drop=True)
    bounds = _read_all(sorted((out / "bounds").glob("*.parquet")), skipped, BOUND_RESULT_COLUMNS)
    if not bounds.empty:
        bounds = bounds[["bound_key", "static_lp_bound", "per_slot_lp_bound"]].rename(columns={"static_lp_bound": "lp_bound"})
        runs = runs.merge(bounds, on="bound_key", how="left")
    else:
        runs["lp_bound"] = np.nan
        runs["per_slot_lp_bound"] = np.nan
    total = runs["total_gain"].astype(float)
    for frac, bound in (("fraction_of_bound", "lp_bound"), ("fraction_of_per_slot_bound", "per_slot_lp_bound")):
        b = runs[bound].astype(float)
        runs[frac] = np.where(b > 0, total / b.where(b > 0, 1.0), np.nan)
    return runs


def load_bounds(out: str | Path, skipped: list[str] | None = None) -> pd.DataFrame:
    """One row per (scenario, workload, seed, axes) group, sorted by bound_key."""
    b = _read_all(sorted((Path(out) / "bounds").glob("*.parquet")), skipped, BOUND_RESULT_COLUMNS)
    return b.sort_values("bound_key", kind="stable").reset_index(drop=True) if not b.empty else b


def load_slots(out: str | Path, skipped: list[str] | None = None) -> pd.DataFrame:
    """One row per slot of every finished run, sorted by (run_id, slot)."""
    from ..sim.loop import SLOT_COLUMNS

    out = Path(out)
    done = _stems(out / "runs")
    slots = _read_all(sorted(p for p in (out / "slots").glob("*.parquet") if p.stem in done), skipped, ["run_id", *SLOT_COLUMNS])
    if slots.empty:
        return slots
    return slots.sort_values(["run_id", "slot"], kind="stable").reset_index(drop=True)
