"""Checkpoints of the slot loop as data: one ``.npz`` file (numpy's zip of
arrays, read with ``allow_pickle=False``) holding the per-slot rows so far,
the allocation held, the policy's array state, and a JSON header (format
name and version, the run's fingerprint, the next slot, the policy's JSON
state). Nothing in a checkpoint is ever executed: a file handed over by
someone else can at worst hold wrong numbers of the right shapes.

A checkpoint that cannot be read, is not this format, has another version,
belongs to another run (fingerprint: policy, parameters, seed, request
types, counts) or does not fit the run's shapes is refused with one line,
``DIR/checkpoint.npz: corrupt, or from another run (...); --restart to
start over``. Older versions of idn wrote ``checkpoint.pkl`` (a pickle);
such a file is refused the same way and never opened.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

FORMAT = "idn-checkpoint"
VERSION = 1
NAME = "checkpoint.npz"
LEGACY_NAME = "checkpoint.pkl"
_META = "__meta__"
_STATE = "state."  # prefix of the policy's arrays


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names the file."""


def refuse(path, why: str) -> CheckpointError:
    return CheckpointError(f"{path}: corrupt, or from another run ({why}); --restart to start over")


def check_legacy(directory: str | Path) -> None:
    """Refuse a pickled checkpoint of an older idn (never unpickled: it could run code)."""
    legacy = Path(directory) / LEGACY_NAME
    if legacy.exists():
        raise refuse(legacy, "a pickled checkpoint of an older idn, which is never loaded")


def remove(directory: str | Path) -> None:
    """``--restart``: forget any checkpoint in directory."""
    for name in (NAME, LEGACY_NAME, NAME + ".tmp"):
        (Path(directory) / name).unlink(missing_ok=True)


def save(path: str | Path, fingerprint: str, next_slot: int, policy, prev: np.ndarray, rows: np.ndarray) -> None:
    """Write then rename, so a kill mid-write leaves the previous checkpoint whole."""
    _write(path, {"fingerprint": fingerprint, "next_slot": int(next_slot)}, policy, {"rows": rows, "prev": prev})


def load(path: str | Path, fingerprint: str, policy, rows_shape: tuple, prev_shape: tuple) -> tuple[int, np.ndarray, np.ndarray]:
    """(next slot, allocation held, rows so far) from a checkpoint of this run,
    with the state restored into policy (already started). Raises CheckpointError."""
    meta, arrays = _read(path)
    if meta.get("fingerprint") != fingerprint:
        raise refuse(path, "its fingerprint is another run's: scenario, trace, policy, parameters or seed differ")
    next_slot = meta.get("next_slot")
    if isinstance(next_slot, bool) or not isinstance(next_slot, int) or not 0 < next_slot < rows_shape[0]:
        raise refuse(path, f"next slot {next_slot!r} is not within the run's {rows_shape[0]} slots")
    rows, prev = arrays.pop("rows", None), arrays.pop("prev", None)
    if not (isinstance(rows, np.ndarray) and rows.shape == rows_shape and rows.dtype == np.float64):
        raise refuse(path, "its slot table does not fit the run")
    if not np.all(np.isfinite(rows[:next_slot])):
        raise refuse(path, "its slot table holds values that are not finite")
    if not (isinstance(prev, np.ndarray) and prev.shape == prev_shape and prev.dtype == np.bool_):
        raise refuse(path, "its allocation does not fit the scenario")
    _restore(path, policy, meta.get("state"), arrays)
    return next_slot, prev, rows


def save_state(path: str | Path, fingerprint: str, policy, extra: dict) -> None:
    """A policy's state alone, with JSON ``extra`` (a live node's checkpoint:
    no slot table), in the same format; write then rename."""
    _write(path, {"fingerprint": fingerprint, "extra": extra}, policy, {})


def load_state(path: str | Path, fingerprint: str, policy) -> dict:
    """Restore ``save_state``'s policy state into policy (already started);
    return its ``extra``. Raises CheckpointError, as ``load``."""
    meta, arrays = _read(path)
    if meta.get("fingerprint") != fingerprint:
        raise refuse(path, "its fingerprint is another run's")
    extra = meta.get("extra")
    if not isinstance(extra, dict):
        raise refuse(path, "no node state")
    _restore(path, policy, meta.get("state"), arrays)
    return extra


def _write(path, meta: dict, policy, arrays: dict) -> None:
    state = policy.state_dict()
    arrays = {**arrays, **{f"{_STATE}{k}": v for k, v in state.items() if isinstance(v, np.ndarray)}}
    plain = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    meta = {"format": FORMAT, "version": VERSION, "policy": policy.name, **meta, "state": plain}
    header = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, **{_META: header}, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read(path) -> tuple[dict, dict]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(bytes(arrays.pop(_META)).decode("utf-8"))
    except Exception as exc:  # zipfile, zlib, numpy and json each raise their own types for a bad file
        raise refuse(path, f"unreadable: {type(exc).__name__}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise refuse(path, "not an idn checkpoint")
    if meta.get("version") != VERSION:
        raise refuse(path, f"format version {meta.get('version')!r}, this idn reads {VERSION}")
    return meta, arrays


def _restore(path, policy, state, arrays: dict) -> None:
    if not isinstance(state, dict):
        raise refuse(path, "no policy state")
    for k, v in arrays.items():
        if not k.startswith(_STATE):
            raise refuse(path, f"unexpected entry {k!r}")
        state[k[len(_STATE) :]] = v
    try:
        policy.load_state_dict(state)
    except (ValueError, TypeError, KeyError) as exc:
        raise refuse(path, str(exc)) from None
