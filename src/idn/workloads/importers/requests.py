"""Reading a per-request log (CSV or Parquet, one request per row) in chunks:
each chunk is binned into slots and counted per (slot, stream, client) at
once, so memory grows with the distinct (slot, stream, client) triples, not
with the rows. The user names the columns: the time (seconds, or timestamps
that pandas parses; naive ones are taken as UTC), the stream (a model,
function or app id) and, optionally, the client or source.

Slot t holds times in [origin + t L, origin + (t + 1) L), the origin the
earliest time rounded down to a multiple of L (as ``bin_requests``).
Problems are one ValueError line naming the file and the line (CSV; the
header is line 1) or the row (Parquet).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..traces import table_format

CHUNK_ROWS = 1 << 20


@dataclass
class Counts:
    """Requests per (slot, stream, client), slots from 0."""

    slot: np.ndarray
    stream: np.ndarray  # index into streams
    client: np.ndarray  # index into clients
    count: np.ndarray
    streams: list[str]
    clients: list[str] | None  # None: no client column
    rows: int  # requests read


def _chunks(path: Path, columns: list[str]):
    """(first row index, DataFrame of the named columns) per chunk."""
    fmt = table_format(path, "request log")
    if not path.is_file():
        raise ValueError(f"{path}: no such request log")
    if fmt == "csv":
        try:
            header = pd.read_csv(path, nrows=0).columns
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} line 1: not a readable CSV header: {str(e).strip().splitlines()[0]}") from None
        header = [str(c).strip() for c in header]
        _check_columns(path, columns, header, "line 1")
        reader = pd.read_csv(
            path, usecols=lambda c: str(c).strip() in columns, dtype=str, keep_default_na=False,
            chunksize=CHUNK_ROWS, skipinitialspace=True,
        )  # fmt: skip
        first = 0
        try:
            for df in reader:
                yield first, df.set_axis([str(c).strip() for c in df.columns], axis=1)
                first += len(df)
        except (pd.errors.ParserError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not a readable CSV table: {str(e).strip().splitlines()[0]}") from None
        return
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        names = list(pf.schema_arrow.names)
    except Exception as e:  # pyarrow raises many types for a bad file
        raise ValueError(f"{path}: not a readable Parquet table: {str(e).strip().splitlines()[0]}") from None
    _check_columns(path, columns, names, "schema")
    first = 0
    try:
        for batch in pf.iter_batches(batch_size=CHUNK_ROWS, columns=columns):
            df = batch.to_pandas()
            yield first, df
            first += len(df)
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(f"{path}: not a readable Parquet table: {str(e).strip().splitlines()[0]}") from None


def _check_columns(path: Path, wanted: list[str], have: list[str], where: str) -> None:
    for c in wanted:
        if c not in have:
            shown = ", ".join(have[:12]) + (" ..." if len(have) > 12 else "")
            raise ValueError(f"{path} {where}: no column {c!r} (the columns: {shown})")


class _Ids:
    """Strings to dense ids, in order of first appearance."""

    def __init__(self):
        self.index: dict[str, int] = {}

    def codes(self, values: pd.Series) -> np.ndarray:
        codes, uniques = pd.factorize(values)
        ids = np.array([self.index.setdefault(str(u), len(self.index)) for u in uniques], dtype=np.int64)
        return ids[codes]

    def names(self) -> list[str]:
        return list(self.index)


def _seconds(values: pd.Series, column: str, where, numeric: bool | None) -> tuple[np.ndarray, bool]:
    """Seconds (float) from a chunk's time column; numeric: the log's time kind (None: decide here)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        v = values.dt.tz_convert("UTC") if getattr(values.dt, "tz", None) is not None else values
        return (v - pd.Timestamp(0)).dt.total_seconds().to_numpy(dtype=float, na_value=np.nan), False
    if pd.api.types.is_numeric_dtype(values):
        sec = values.to_numpy(dtype=float, na_value=np.nan)
        _first_bad(~np.isfinite(sec), values, column, where, "is not a time")
        return sec, True
    text = values.astype(str).str.strip()
    if numeric is None:
        numeric = bool(len(text)) and np.isfinite(pd.to_numeric(text.iloc[:1], errors="coerce").to_numpy(dtype=float, na_value=np.nan)[0])
    if numeric:
        sec = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        _first_bad(~np.isfinite(sec), values, column, where, "is not a number of seconds")
        return sec, True
    stamp = pd.to_datetime(text, errors="coerce", utc=True)
    bad = stamp.isna().to_numpy()
    if bad.any():  # formats that differ from the first row's
        stamp = stamp.copy()
        stamp[bad] = pd.to_datetime(text[bad], errors="coerce", utc=True, format="mixed")
        bad = stamp.isna().to_numpy()
    _first_bad(bad, values, column, where, "is not a timestamp pandas can parse")
    return (stamp - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float), False


def _first_bad(bad: np.ndarray, values: pd.Series, column: str, where, what: str) -> None:
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where(i)}: column {column!r}: {values.iloc[i]!r} {what}")


def _ids(values: pd.Series, column: str, where) -> pd.Series:
    text = values.astype(str).str.strip()
    missing = values.isna().to_numpy() | (text == "").to_numpy()
    _first_bad(missing, values, column, where, "is missing")
    return text


def read_requests(
    path: str | Path, slot_seconds: float, time_column: str, task_column: str, source_column: str | None = None
) -> Counts:
    """Count a request log's rows per (slot, stream, client)."""
    path = Path(path)
    if not (np.isfinite(slot_seconds) and slot_seconds > 0):
        raise ValueError(f"slot_seconds must be a positive number of seconds, got {slot_seconds!r}")
    columns = list(dict.fromkeys(c for c in (time_column, task_column, source_column) if c))
    csv = table_format(path, "request log") == "csv"
    streams, clients = _Ids(), _Ids()
    parts, held, origin, numeric, rows = [], 0, None, None, 0
    for first, df in _chunks(path, columns):
        where = (lambda i, f=first: f"{path} line {f + i + 2}") if csv else (lambda i, f=first: f"{path} row {f + i + 1}")
        sec, numeric = _seconds(df[time_column], time_column, where, numeric)
        k = streams.codes(_ids(df[task_column], task_column, where))
        c = clients.codes(_ids(df[source_column], source_column, where)) if source_column else np.zeros(len(df), np.int64)
        if len(sec) == 0:
            continue
        if origin is None:  # a provisional origin on the slot grid; slots before it come out negative
            origin = float(np.floor(sec.min() / slot_seconds) * slot_seconds)
        slot = np.floor(np.round((sec - origin) / slot_seconds, 9)).astype(np.int64)
        parts.append(_count(slot, k, c))
        held += len(parts[-1][0])
        rows += len(sec)
        if held > 4 * CHUNK_ROWS:  # keep what is held bounded by the distinct triples
            parts = [_merge(parts)]
            held = len(parts[0][0])
    if not parts:
        raise ValueError(f"{path}: no requests (the log has a header but no rows)")
    slot, k, c, n = _merge(parts)
    return Counts(slot - slot.min(), k, c, n, streams.names(), clients.names() if source_column else None, rows)


def _count(slot, k, c):
    g = pd.DataFrame({"slot": slot, "k": k, "c": c}).groupby(["slot", "k", "c"], sort=False).size()
    idx = g.index
    return (idx.get_level_values(0).to_numpy(), idx.get_level_values(1).to_numpy(),
            idx.get_level_values(2).to_numpy(), g.to_numpy(dtype=np.int64))  # fmt: skip


def _merge(parts):
    slot, k, c, n = (np.concatenate(a) for a in zip(*parts))
    g = pd.DataFrame({"slot": slot, "k": k, "c": c, "n": n}).groupby(["slot", "k", "c"], sort=True)["n"].sum()
    idx = g.index
    return (idx.get_level_values(0).to_numpy(), idx.get_level_values(1).to_numpy(),
            idx.get_level_values(2).to_numpy(), g.to_numpy(dtype=np.int64))  # fmt: skip
