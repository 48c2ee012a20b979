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
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
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


def _read_all(paths: list[Path]) -> pd.DataFrame:
    """Concatenate one-file tables whose columns differ (other policies' parameters)
    or whose types differ (a parameter that is null in one run, a number in another)."""
    if not paths:
        return pd.DataFrame()
    tables = [pq.read_table(p) for p in paths]
    df = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    first = [c for c in PARAM_COLUMNS if c in df.columns] + sorted(c for c in df.columns if c.startswith("param_"))
    return df[first + [c for c in df.columns if c not in first]]


def load_runs(out: str | Path) -> pd.DataFrame:
    """One row per finished run, sorted by run_id, with the LP bounds (NaN
    where none was computed) and the run's fraction of each."""
    out = Path(out)
    runs = _read_all(sorted((out / "runs").glob("*.parquet")))
    if runs.empty:
        return runs
    runs = runs.sort_values("run_id", kind="stable").reset_index(drop=True)
    bounds = _read_all(sorted((out / "bounds").glob("*.parquet")))
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


def load_bounds(out: str | Path) -> pd.DataFrame:
    """One row per (scenario, workload, seed, axes) group, sorted by bound_key."""
    b = _read_all(sorted((Path(out) / "bounds").glob("*.parquet")))
    return b.sort_values("bound_key", kind="stable").reset_index(drop=True) if not b.empty else b


def load_slots(out: str | Path) -> pd.DataFrame:
    """One row per slot of every finished run, sorted by (run_id, slot)."""
    out = Path(out)
    done = _stems(out / "runs")
    slots = _read_all(sorted(p for p in (out / "slots").glob("*.parquet") if p.stem in done))
    if slots.empty:
        return slots
    return slots.sort_values(["run_id", "slot"], kind="stable").reset_index(drop=True)
