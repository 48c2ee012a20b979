"""Request traces: the per-slot table r_rho^t of the design page (section 3)
as a pandas DataFrame, and the files it lives in.

A trace has the columns ``slot, source, task, count``: slot an int from 0,
source a node id, task a task id, count an int >= 0. In canonical form rows
are unique per (slot, source, task), rows with count 0 are dropped and rows
are sorted by slot, then source and task as strings. Files are CSV or Parquet,
chosen by extension.

Error messages count rows from 1 (the first data row is row 1); for CSV files
they also give the line (the header is line 1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ("slot", "source", "task", "count")
TIMESTAMP_COLUMNS = ("time", "source", "task")


# ---- building and checking ----------------------------------------------
def empty_trace() -> pd.DataFrame:
    return _frame(np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0, object), np.zeros(0, np.int64))


def _frame(slot, source, task, count) -> pd.DataFrame:
    """Trace from columns already in canonical order (no checks)."""
    return pd.DataFrame(
        {
            "slot": np.asarray(slot, dtype=np.int64),
            "source": pd.Series(np.asarray(source, dtype=object), dtype=str),
            "task": pd.Series(np.asarray(task, dtype=object), dtype=str),
            "count": np.asarray(count, dtype=np.int64),
        }
    )


def _int_column(values: pd.Series, name: str, where: Callable[[int], str]) -> np.ndarray:
    num = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(num)
    bad[~bad] = num[~bad] != np.floor(num[~bad])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where(i)}: column {name!r}: {values.iloc[i]!r} is not an integer")
    neg = num < 0
    if neg.any():
        i = int(np.flatnonzero(neg)[0])
        raise ValueError(f"{where(i)}: column {name!r}: {values.iloc[i]!r} is negative")
    huge = num > 2**53  # past it floats skip integers, and int64 overflows not far beyond
    if huge.any():
        i = int(np.flatnonzero(huge)[0])
        raise ValueError(f"{where(i)}: column {name!r}: {values.iloc[i]!r} is too large (at most 2**53)")
    return num.astype(np.int64)


def _id_column(values: pd.Series, name: str, where: Callable[[int], str]) -> pd.Series:
    out = values.astype(str).str.strip()
    missing = values.isna().to_numpy() | (out == "").to_numpy()
    if missing.any():
        raise ValueError(f"{where(int(np.flatnonzero(missing)[0]))}: column {name!r}: missing value")
    return out.reset_index(drop=True)


def _row_label(origin: str) -> Callable[[int], str]:
    return lambda i: f"{origin} row {i + 1}"


def validate_trace(df: pd.DataFrame, origin: str = "trace", where: Callable[[int], str] | None = None) -> pd.DataFrame:
    """Check a table against the trace format and return it in canonical form
    (duplicate (slot, source, task) rows are summed: a trace may be the
    concatenation of several logs)."""
    where = where or _row_label(origin)
    cols = [str(c).strip() for c in df.columns]
    if sorted(cols) != sorted(COLUMNS):
        header = ",".join(cols)
        header = header if len(header) <= 80 else header[:75] + " ..."  # a binary file's "header" can be megabytes
        raise ValueError(f"{origin}: bad header {header!r}: expected {','.join(COLUMNS)}")
    df = df.set_axis(cols, axis=1)
    out = pd.DataFrame(
        {
            "slot": _int_column(df["slot"], "slot", where),
            "source": _id_column(df["source"], "source", where),
            "task": _id_column(df["task"], "task", where),
            "count": _int_column(df["count"], "count", where),
        }
    )
    return _canonical(out)


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    df = df[df["count"] > 0]
    if df.duplicated(["slot", "source", "task"]).any():
        df = df.groupby(["slot", "source", "task"], as_index=False, sort=False)["count"].sum()
    df = df.sort_values(["slot", "source", "task"], kind="stable")
    return _frame(df["slot"], df["source"], df["task"], df["count"])


def check_known(trace: pd.DataFrame, sources: Iterable[str], tasks: Iterable[str], origin: str = "trace") -> None:
    """Every row's source must be in ``sources`` and its task in ``tasks``."""
    for col, known, what in (("source", sources, "source node"), ("task", tasks, "task")):
        pos = pd.Index(list(known)).get_indexer(trace[col])
        if (pos < 0).any():
            i = int(np.flatnonzero(pos < 0)[0])
            raise ValueError(f"{origin} row {i + 1}: unknown {what} {trace[col].iloc[i]!r}")


# ---- files ----------------------------------------------------------------
def table_format(path: Path, what: str = "trace") -> str:
    """"csv" or "parquet", from the file's name (a request log's too)."""
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise ValueError(f"cannot tell the {what} format of {str(path)!r}: use a .csv or .parquet file")


def _read_table(path: str | Path) -> tuple[pd.DataFrame, Callable[[int], str]]:
    path = Path(path)
    fmt = table_format(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such trace file: {str(path)!r}")
    _check_file_size(path, fmt)
    if fmt == "csv":
        try:
            # ids stay strings ("01" is not 1); numbers are parsed (and checked) later
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], skipinitialspace=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not a readable CSV table: {str(e).strip().splitlines()[0]}") from None
        return df, lambda i: f"{path} row {i + 1} (line {i + 2})"
    try:
        import pyarrow.parquet as pq

        # ignore_metadata: a damaged pandas header can claim an index of 10^11 rows
        df = pq.read_table(path).to_pandas(ignore_metadata=True)
    except Exception as e:  # pyarrow raises a zoo of types for a bad file
        raise ValueError(f"{path}: not a readable Parquet table: {str(e).strip().splitlines()[0]}") from None
    return df, _row_label(str(path))


def _check_file_size(path: Path, fmt: str) -> None:
    """Refuse, before reading, a trace that would not fit in memory (idn.limits)."""
    from .. import limits

    if fmt == "csv":
        size = path.stat().st_size
        limits.check(str(path), f"a {size / 2**20:,.0f} MB CSV trace", size * limits.CSV_BYTES_FACTOR)
        return
    try:
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(path).metadata.num_rows
    except Exception:  # not Parquet: read_parquet below says so in one line
        return
    limits.check(str(path), f"a trace of {rows:,} rows", rows * limits.PER_TRACE_ROW)


def read_trace(path: str | Path) -> pd.DataFrame:
    """Read a per-slot trace (CSV or Parquet, by extension), checked and canonical."""
    df, where = _read_table(path)
    try:
        trace = validate_trace(df, origin=str(path), where=where)
    except Exception as exc:
        import pyarrow as pa

        if not isinstance(exc, pa.ArrowException):  # Arrow-backed strings fail late, on invalid UTF-8
            raise
        raise ValueError(f"{path}: not a readable Parquet table: {str(exc).splitlines()[0][:100]}") from None
    trace.attrs["origin"] = str(path)  # later errors (unknown ids, sizes) name the file too
    return trace


def write_trace(trace: pd.DataFrame, path: str | Path) -> None:
    """Write a trace (CSV or Parquet, by extension), in canonical form."""
    path = Path(path)
    fmt = table_format(path)
    trace = validate_trace(trace)
    if fmt == "csv":
        trace.to_csv(path, index=False)
    else:
        trace.to_parquet(path, index=False)


def bin_requests(requests: str | Path | pd.DataFrame, slot_seconds: float, origin: float | None = None) -> pd.DataFrame:
    """Per-request log (columns ``time, source, task``; time in seconds, or a
    datetime column; other columns ignored) -> per-slot trace.

    Slot t holds times in [origin + t * slot_seconds, origin + (t+1) * slot_seconds).
    ``origin`` defaults to the earliest time rounded down to a multiple of
    slot_seconds, so logs stamped from 0 keep their slot grid and logs
    stamped with epoch seconds start near slot 0. Times are placed to 1e-9
    of a slot, so 0.3 s with 0.1 s slots is slot 3, not 2.
    """
    if not (isinstance(slot_seconds, (int, float)) and np.isfinite(slot_seconds) and slot_seconds > 0):
        raise ValueError(f"slot_seconds must be a positive number, got {slot_seconds!r}")
    if isinstance(requests, pd.DataFrame):
        df, label = requests, "requests"
        where = _row_label(label)
    else:
        df, where = _read_table(requests)
        label = str(requests)
    cols = [str(c).strip() for c in df.columns]
    missing = [c for c in TIMESTAMP_COLUMNS if c not in cols]
    if missing:
        raise ValueError(f"{label}: no column {missing[0]!r}: a request log needs {','.join(TIMESTAMP_COLUMNS)}")
    df = df.set_axis(cols, axis=1)
    time = df["time"]
    if pd.api.types.is_datetime64_any_dtype(time):
        seconds = (time - pd.Timestamp(0, tz=getattr(time.dt, "tz", None))).dt.total_seconds().to_numpy()
    else:
        seconds = pd.to_numeric(time, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(seconds)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where(i)}: column 'time': {time.iloc[i]!r} is not a number of seconds")
    source = _id_column(df["source"], "source", where)
    task = _id_column(df["task"], "task", where)
    if len(seconds) == 0:
        return empty_trace()
    if origin is None:
        origin = float(np.floor(seconds.min() / slot_seconds) * slot_seconds)
    slot = np.floor(np.round((seconds - origin) / slot_seconds, 9))
    if (slot < 0).any():
        i = int(np.flatnonzero(slot < 0)[0])
        raise ValueError(f"{where(i)}: column 'time': {time.iloc[i]!r} is before the origin {origin}")
    binned = pd.DataFrame({"slot": slot.astype(np.int64), "source": source, "task": task})
    counts = binned.groupby(["slot", "source", "task"], as_index=False, sort=True).size()
    return _frame(counts["slot"], counts["source"], counts["task"], counts["size"])


# ---- to the simulator -----------------------------------------------------
def to_matrix(
    trace: pd.DataFrame,
    key_index: Mapping[tuple[str, str], int],
    n_types: int,
    slots: int | None = None,
    known_sources: Iterable[str] | None = None,
    known_tasks: Iterable[str] | None = None,
) -> np.ndarray:
    """Dense (T, n_types) float array: r[t, rho] = requests of type rho in slot t.

    ``key_index`` maps (source, task) to the request type index (see
    ``RequestTypes.key_index``). T is ``slots`` if given (later rows are
    dropped: a run may use a trace's first slots) else last slot + 1.
    ``known_sources`` / ``known_tasks`` (e.g. all node ids and task ids) only
    sharpen the error for a row without a request type; by default the
    sources and tasks of ``key_index`` are the known ones.
    """
    for col in COLUMNS:
        if col not in trace.columns:
            raise ValueError(f"trace has no column {col!r}")
    keys = list(key_index)
    type_of = np.fromiter(key_index.values(), dtype=np.int64, count=len(keys))
    if len(type_of) and (type_of.min() < 0 or type_of.max() >= n_types):
        raise ValueError(f"key_index holds a type index outside 0..{n_types - 1}")
    key_src = pd.Index(list(dict.fromkeys(s for s, _ in keys)))
    key_task = pd.Index(list(dict.fromkeys(t for _, t in keys)))
    table = np.full((len(key_src), len(key_task)), -1, dtype=np.int64)
    if keys:
        table[key_src.get_indexer([s for s, _ in keys]), key_task.get_indexer([t for _, t in keys])] = type_of

    sc = _positions(key_src, trace["source"])
    tc = _positions(key_task, trace["task"])
    ok = (sc >= 0) & (tc >= 0)
    rho = np.full(len(trace), -1, dtype=np.int64)
    rho[ok] = table[sc[ok], tc[ok]]
    if (rho < 0).any():
        i = int(np.flatnonzero(rho < 0)[0])
        origin = trace.attrs.get("origin", "trace")
        raise ValueError(origin + _unknown_key_message(i, trace, key_src, key_task, known_sources, known_tasks)[len("trace") :])

    slot = trace["slot"].to_numpy(dtype=np.int64)
    if len(slot) and slot.min() < 0:
        i = int(np.flatnonzero(slot < 0)[0])
        raise ValueError(f"trace row {i + 1}: negative slot {int(slot[i])}")
    T = int(slots) if slots is not None else (int(slot.max()) + 1 if len(slot) else 0)
    from .. import limits

    limits.check_counts(trace.attrs.get("origin", "trace"), T, n_types)  # a single row at slot 10^9 asks for 10^9 rows
    keep = slot < T
    flat = slot[keep] * n_types + rho[keep]
    counts = trace["count"].to_numpy(dtype=float)[keep]
    return np.bincount(flat, weights=counts, minlength=T * n_types).astype(float, copy=False).reshape(T, n_types)


def _positions(index: pd.Index, column: pd.Series) -> np.ndarray:
    """index.get_indexer(column), through the column's few distinct values:
    get_indexer on millions of rows of a string column builds a Python
    string per row (measured: +535 MB peak and 2.3 s for 7M rows, against
    +60 MB and 0.5 s this way)."""
    codes, uniques = pd.factorize(column)
    if len(uniques) == 0:  # empty, or nothing but missing values
        return np.full(len(codes), -1, dtype=np.int64)
    pos = index.get_indexer(uniques)
    return np.where(codes >= 0, pos[codes], -1)


def _unknown_key_message(i, trace, key_src, key_task, known_sources, known_tasks) -> str:
    source, task = trace["source"].iloc[i], trace["task"].iloc[i]
    srcs = set(key_src) if known_sources is None else set(known_sources)
    tasks = set(key_task) if known_tasks is None else set(known_tasks)
    if source not in srcs:
        return f"trace row {i + 1}: unknown source node {source!r}"
    if task not in tasks:
        return f"trace row {i + 1}: unknown task {task!r}"
    return f"trace row {i + 1}: no request type for source node {source!r} and task {task!r}"
