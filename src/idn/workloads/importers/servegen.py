"""Reading a ServeGen trace directory (Alibaba's ServeGen, Apache-2.0): one
``*-trace.csv`` per (model, client) stream, one row per 10-minute window,
no header::

    window start (s), rate (requests/s), CV of inter-arrivals, distribution, shape, scale

``distribution`` is ``Weibull``, ``Gamma`` or empty (an idle window). The
files are read in batches of whole files (a few MB of text at a time, one
vectorized parse per batch), so memory grows with the number of windows,
not with the text; the whole 28 MB directory parses in about a second.

Every problem is one ValueError line naming the file and the line.
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

WINDOW_SECONDS = 600  # ServeGen's window: 10 minutes
COLUMNS = ("start", "rate", "cv", "distribution", "shape", "scale")
DISTRIBUTIONS = ("", "Weibull", "Gamma")  # code 0 (none: idle), 1, 2
BATCH_BYTES = 8 << 20  # text parsed at once


@dataclass(frozen=True)
class Streams:
    """The directory as arrays: K streams x W windows (windows from the trace's
    start; a window a file does not list is idle)."""

    root: str
    names: tuple[str, ...]  # "<model>/<client>", e.g. "m-large/chunk-61"
    files: tuple[str, ...]
    rate: np.ndarray  # (K, W) requests per second
    distribution: np.ndarray  # (K, W) int8: index into DISTRIBUTIONS
    shape: np.ndarray  # (K, W) the fitted distribution's shape (nan when none)
    window_seconds: int = WINDOW_SECONDS

    @property
    def expected(self) -> np.ndarray:
        """(K, W) requests per window: rate x window length."""
        return self.rate * self.window_seconds


def stream_files(root: str | Path) -> list[Path]:
    """The ``*-trace.csv`` files under root (recursively), in a stable order."""
    root = Path(root)
    if not root.exists():
        raise ValueError(f"{root}: no such directory (expected a ServeGen trace directory)")
    if not root.is_dir():
        raise ValueError(f"{root}: not a directory (expected a ServeGen trace directory of *-trace.csv files)")
    files = sorted(root.rglob("*-trace.csv"), key=lambda p: p.relative_to(root).as_posix())
    if not files:
        raise ValueError(f"{root}: no *-trace.csv file in this directory or below it")
    return files


def stream_name(root: Path, path: Path) -> str:
    """'<model folder>/<client>': the file's folder and its name without -trace.csv."""
    model = path.parent.name if path.parent != root else root.name
    return f"{model}/{path.name[: -len('-trace.csv')]}"


def read_streams(root: str | Path, window_seconds: int = WINDOW_SECONDS) -> Streams:
    """Read every stream of a ServeGen directory (cached per directory and
    file signature: a sweep's runs share one read)."""
    files = stream_files(root)
    signature = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _read_cached(str(Path(root)), signature, int(window_seconds))


@functools.lru_cache(maxsize=2)
def _read_cached(root: str, signature: tuple, window_seconds: int) -> Streams:
    files = [Path(f) for f, _, _ in signature]
    parts = []  # (file index, window, rate, distribution code, shape) per batch
    batch, size = [], 0
    for i, f in enumerate(files):
        batch.append(i)
        size += f.stat().st_size
        if size >= BATCH_BYTES:
            parts.append(_parse_batch(files, batch, window_seconds))
            batch, size = [], 0
    if batch:
        parts.append(_parse_batch(files, batch, window_seconds))
    fi, win, rate, dist, shape = (np.concatenate(a) for a in zip(*parts))
    n_windows = int(win.max()) + 1 if len(win) else 0
    from ... import limits

    limits.check(root, f"{len(files):,} streams x {n_windows:,} windows", 3.0 * 8 * len(files) * n_windows)
    K = len(files)
    R = np.zeros((K, n_windows))
    D = np.zeros((K, n_windows), dtype=np.int8)
    S = np.full((K, n_windows), np.nan)
    R[fi, win], D[fi, win], S[fi, win] = rate, dist, shape
    base = Path(root)
    names = tuple(stream_name(base, f) for f in files)
    return Streams(root, names, tuple(map(str, files)), R, D, S, window_seconds)


def _parse_batch(files: list[Path], batch: list[int], window_seconds: int):
    """One vectorized parse of several whole files; then the checks, which
    name the file and the line of the first bad row."""
    blobs, owner, line = [], [], []
    for i in batch:
        data = files[i].read_bytes().rstrip(b"\r\n")
        nul = data.find(b"\x00")
        if nul >= 0:
            raise ValueError(f"{files[i]}: not a text file (a NUL byte at offset {nul})")
        if not data:
            continue  # an empty file: a stream with no windows
        n = data.count(b"\n") + 1
        blobs.append(data + b"\n")
        owner.append(np.full(n, i, dtype=np.int64))
        line.append(np.arange(1, n + 1, dtype=np.int64))
    if not blobs:
        z = np.zeros(0)
        return np.zeros(0, np.int64), np.zeros(0, np.int64), z, np.zeros(0, np.int8), z
    owner, line = np.concatenate(owner), np.concatenate(line)
    where = lambda r: f"{files[owner[r]]} line {line[r]}"  # noqa: E731
    text = b"".join(blobs)
    try:  # numbers parsed as numbers: fast; any problem, and the text is read again as text to name it
        return _check(_read_text(text, where, len(owner), numeric=True), owner, where, window_seconds)
    except ValueError:
        return _check(_read_text(text, where, len(owner), numeric=False), owner, where, window_seconds)


_NUMERIC = (0, 1, 2, 4, 5)


def _read_text(text: bytes, where, n_rows: int, numeric: bool) -> pd.DataFrame:
    names = list(range(len(COLUMNS) + 1))
    dtype = {c: (float if c in _NUMERIC else "category") if numeric else str for c in names}
    na = {c: [""] for c in _NUMERIC} if numeric else None
    try:
        df = pd.read_csv(
            io.BytesIO(text), header=None, names=names, dtype=dtype, keep_default_na=False, na_values=na,
            skip_blank_lines=False, engine="c",
        )  # fmt: skip
    except pd.errors.ParserError as exc:  # "Expected 7 fields in line 12, saw 8"
        msg = str(exc).strip().splitlines()[0]
        import re

        m = re.search(r"line (\d+)", msg)
        at = where(int(m.group(1)) - 1) if m and int(m.group(1)) - 1 < n_rows else "a ServeGen file"
        raise ValueError(f"{at}: more than {len(COLUMNS)} columns") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"a ServeGen file: not UTF-8 text ({exc.reason})") from None
    if len(df) != n_rows:  # quotes can swallow line breaks
        raise ValueError(f"{where(min(len(df), n_rows - 1))}: unbalanced quotes: not a ServeGen trace file")
    for c in df.columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype) and len({str(x).strip() for x in df[c].cat.categories}) < len(df[c].cat.categories):
            df[c] = df[c].astype(str).str.strip()  # " Gamma" and "Gamma": one category once stripped
        elif isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].cat.rename_categories(lambda x: str(x).strip())  # few distinct values: cheap
            if "" not in df[c].cat.categories:
                df[c] = df[c].cat.add_categories([""])
            df[c] = df[c].fillna("")
        if not isinstance(df[c].dtype, pd.CategoricalDtype) and not pd.api.types.is_float_dtype(df[c]):
            df[c] = df[c].fillna("").str.strip()  # a short row: its missing columns are empty
    extra = (df[len(COLUMNS)] != "").to_numpy()
    if extra.any():
        raise ValueError(f"{where(int(np.flatnonzero(extra)[0]))}: more than {len(COLUMNS)} columns (a ServeGen file has {len(COLUMNS)})")
    return df


def _number(df, col: int, name: str, where, required: bool) -> np.ndarray:
    if pd.api.types.is_float_dtype(df[col]):  # parsed already (an empty field is nan)
        values = df[col].to_numpy()
        empty = np.isnan(values)
    else:
        text = df[col].str.strip()
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        empty = (text == "").to_numpy()
    bad = ~np.isfinite(values) & ~empty
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where(r)}: column {col + 1} ({name}): {df[col].iloc[r]!r} is not a finite number")
    if required and empty.any():
        r = int(np.flatnonzero(empty)[0])
        raise ValueError(f"{where(r)}: column {col + 1} ({name}) is missing")
    if (values < 0).any():
        r = int(np.flatnonzero(values < 0)[0])
        raise ValueError(f"{where(r)}: column {col + 1} ({name}): {df[col].iloc[r]!r} is negative")
    return values


def _check(df: pd.DataFrame, owner: np.ndarray, where, window_seconds: int):
    start = _number(df, 0, "window start", where, required=True)
    rate = _number(df, 1, "rate", where, required=True)
    _number(df, 2, "CV", where, required=False)
    off = start % window_seconds != 0
    if off.any():
        r = int(np.flatnonzero(off)[0])
        raise ValueError(f"{where(r)}: column 1 (window start): {df[0].iloc[r]!r} is not a multiple of {window_seconds} s")
    win = (start // window_seconds).astype(np.int64)
    if (win > 10**7).any():
        r = int(np.flatnonzero(win > 10**7)[0])
        raise ValueError(f"{where(r)}: column 1 (window start): {df[0].iloc[r]!r} is too late (over 10^7 windows)")
    # within a file, windows strictly increase (a repeated window would count twice)
    same = owner[1:] == owner[:-1]
    back = same & (win[1:] <= win[:-1])
    if back.any():
        r = int(np.flatnonzero(back)[0]) + 1
        raise ValueError(f"{where(r)}: column 1 (window start): {df[0].iloc[r]!r} does not come after the line before")
    name = df[3]
    known = pd.Index(list(DISTRIBUTIONS))
    if isinstance(name.dtype, pd.CategoricalDtype):  # through the few categories
        code = known.get_indexer(name.cat.categories)[name.cat.codes.to_numpy()].astype(np.int8)
    else:
        code = known.get_indexer(name).astype(np.int8)
    if (code < 0).any():
        r = int(np.flatnonzero(code < 0)[0])
        raise ValueError(f"{where(r)}: column 4 (distribution): {df[3].iloc[r]!r} is not Weibull, Gamma or empty")
    shape = _number(df, 4, "shape", where, required=False)
    scale = _number(df, 5, "scale", where, required=False)
    fitted = code > 0
    bad = fitted & ~((shape > 0) & (scale > 0))
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where(r)}: a {name.iloc[r]} fit needs a positive shape and scale (columns 5, 6)")
    shape = np.where(fitted, shape, np.nan)
    return owner, win, rate, code, shape


def default_root() -> str | None:
    """The ServeGen directory named by the environment (IDN_SERVEGEN), if any."""
    return os.environ.get("IDN_SERVEGEN") or None
