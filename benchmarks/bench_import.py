"""Importing real traces (issue 18): the whole ServeGen directory, and a
request log of millions of rows, against the obvious code measured in the
same run.

    python benchmarks/bench_import.py [--servegen DIR] [--repeats 3] [--log-rows 5000000]

- read: idn's batched parse of every *-trace.csv against one
  pandas.read_csv per file (the obvious loop) and the csv module;
- import: the whole directory for GEANT's 13 sources and 40 tasks, raw
  (--no-scale; its total checked against the sum of rate x 600) and scaled
  (7 days, 10-minute slots, 100 requests per source and slot), and for the
  1111-node tree's 1000 sources;
- a request log (synthetic, written once to a temporary CSV): the chunked
  import against reading the whole file and idn.bin_requests; peak memory
  of each (tracemalloc).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import common  # noqa: F401  (one core, one thread)
import numpy as np
import pandas as pd

from idn.workloads import bin_requests
from idn.workloads.importers import import_trace, servegen

GEANT = ([f"s{i}" for i in range(13)], [f"task-{i}" for i in range(40)])
TREE = ([f"a{i}" for i in range(1000)], [f"task-{i}" for i in range(40)])


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """(median, best) seconds over repeats, and the last result."""
    times, out = [], None
    for _ in range(repeats):
        servegen._read_cached.cache_clear()  # every repeat reads the files again
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), out


def peak_mb(fn) -> tuple[float, object]:
    tracemalloc.start()
    try:
        out = fn()
        return tracemalloc.get_traced_memory()[1] / 2**20, out
    finally:
        tracemalloc.stop()


def per_file_pandas(root: Path) -> float:
    frames = [pd.read_csv(f, header=None) for f in sorted(root.rglob("*-trace.csv"))]
    return float((pd.concat(frames)[1] * 600).sum())


def csv_module(root: Path) -> float:
    total = 0.0
    for f in sorted(root.rglob("*-trace.csv")):
        with open(f, newline="") as fh:
            total += sum(float(r[1]) * 600 for r in csv.reader(fh))
    return total


def servegen_section(root: Path, repeats: int) -> None:
    print(f"## ServeGen directory {root} (load average {os.getloadavg()[0]:.1f})")
    m_idn, b_idn, st = timed(lambda: servegen.read_streams(root), repeats)
    m_pd, b_pd, total_pd = timed(lambda: per_file_pandas(root), repeats)
    m_csv, b_csv, total_csv = timed(lambda: csv_module(root), 1)
    total = float(st.expected.sum())
    print(f"read {len(st.names)} streams x {st.rate.shape[1]} windows: idn {m_idn:.2f} s (best {b_idn:.2f}); "
          f"pandas per file {m_pd:.2f} s ({m_pd / m_idn:.1f}x); csv module {m_csv:.2f} s ({m_csv / m_idn:.1f}x)")
    assert abs(total - total_pd) < 1e-3 * total and abs(total - total_csv) < 1e-3 * total
    m, b, res = timed(lambda: import_trace("servegen", root, *GEANT, scale=False), repeats)
    n = int(res.trace["count"].sum())
    print(f"import, raw counts (--no-scale), 13 sources: {m:.2f} s (best {b:.2f}); {n:,} requests, sum of rate x 600 "
          f"over every window {total:,.1f} (difference {n - total:+.1f}); {len(res.trace):,} rows")
    per_slot = res.trace.groupby("slot")["count"].sum().reindex(range(st.rate.shape[1]), fill_value=0).to_numpy()
    data = st.expected.sum(axis=0)
    print(f"  per-slot volume against the data's: max |difference| {np.abs(per_slot - data).max():.1f} requests "
          f"(of {data.mean():,.0f} a slot on average; bound: one per stream, {len(st.names)})")
    for name, (src, tasks) in (("GEANT, 13 sources", GEANT), ("tree, 1000 sources", TREE)):
        m, b, res = timed(lambda: import_trace("servegen", root, src, tasks, rate=100, slots=1008), repeats)
        f = res.mapping["scale_factor"]
        per_slot = res.trace.groupby("slot")["count"].sum().reindex(range(1008), fill_value=0).to_numpy()
        print(f"import, 7 days of 10-minute slots scaled to 100 per source and slot, {name}: {m:.2f} s (best {b:.2f}); "
              f"{len(res.trace):,} rows, scale factor {f:.4g}; per-slot volume against the data's x {f:.4g}: max "
              f"|difference| {np.abs(per_slot - f * data[:1008]).max():.2f} requests (of {per_slot.mean():,.0f} a slot)")
    m, b, res = timed(lambda: import_trace("servegen", root, *GEANT, rate=100, slots=1440, slot_seconds=60, sample=True), repeats)
    print(f"import, 1 day of 1-minute slots sampled within windows, 13 sources: {m:.2f} s (best {b:.2f}); "
          f"{int(res.trace['count'].sum()):,} requests drawn (expected {100 * 13 * 1440:,})")
    mb, _ = peak_mb(lambda: import_trace("servegen", root, *GEANT, scale=False))
    print(f"peak memory (tracemalloc) of the raw import: {mb:.0f} MB, for {sum(f.stat().st_size for f in root.rglob('*-trace.csv')) / 2**20:.0f} MB of files")


def log_section(rows: int, repeats: int) -> None:
    print(f"\n## A request log of {rows:,} rows (load average {os.getloadavg()[0]:.1f})")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.csv"
        pd.DataFrame({
            "time": np.sort(rng.uniform(0, 86400, rows)).round(3),
            "app": rng.zipf(1.5, rows) % 500, "user": rng.integers(0, 2000, rows),
        }).to_csv(path, index=False)  # fmt: skip
        print(f"file: {path.stat().st_size / 2**20:.0f} MB")
        m_idn, b_idn, res = timed(lambda: import_trace("requests", path, *GEANT, scale=False, slot_seconds=60,
                                                       time_column="time", task_column="app"), repeats)  # fmt: skip

        def whole():
            df = pd.read_csv(path, dtype={"app": str})
            return bin_requests(df.rename(columns={"app": "task", "user": "source"}).astype({"source": str}), 60.0)

        m_ref, b_ref, ref = timed(whole, repeats)
        assert int(res.trace["count"].sum()) == rows == int(ref["count"].sum())
        print(f"chunked import: {m_idn:.2f} s (best {b_idn:.2f}); read whole + bin_requests: {m_ref:.2f} s ({m_ref / m_idn:.2f}x)")
        mb_idn, _ = peak_mb(lambda: import_trace("requests", path, *GEANT, scale=False, slot_seconds=60,
                                                 time_column="time", task_column="app"))  # fmt: skip
        mb_ref, _ = peak_mb(whole)
        print(f"peak memory (tracemalloc): chunked import {mb_idn:.0f} MB, read whole {mb_ref:.0f} MB ({mb_ref / mb_idn:.1f}x)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--servegen", default=os.environ.get("IDN_SERVEGEN", "/work/shared/data/servegen"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--log-rows", type=int, default=5_000_000)
    args = p.parse_args()
    root = Path(args.servegen)
    if root.is_dir():
        servegen_section(root, args.repeats)
    else:
        print(f"no ServeGen data at {root} (--servegen DIR): the directory's section is skipped", file=sys.stderr)
    log_section(args.log_rows, args.repeats)


if __name__ == "__main__":
    main()
