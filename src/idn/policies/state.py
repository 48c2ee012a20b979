"""A policy's state between slots as plain data (``Policy.state_dict`` /
``load_state_dict``): numpy arrays and JSON values, so that a checkpoint
(``idn.sim.checkpoint``) can be written as npz + JSON and read back without
executing anything from it.

Restoring checks each entry against the freshly started policy's own: the
same keys, arrays of the same shape and kind (bool, integer, float) with
finite values, JSON values of the same type. A checkpoint that passes these
checks can still hold wrong numbers (it is data someone else may have
written), but never ones of the wrong shape, nan, or code."""

from __future__ import annotations

import numbers

import numpy as np

_BASE_KEYS = ("rng", "control_messages", "control_bytes")


def _resolve(obj, dotted: str):
    """(parent object, last attribute name) of a dotted path; None if a part is missing."""
    *head, last = dotted.split(".")
    for part in head:
        obj = getattr(obj, part, None)
        if obj is None:
            return None, last
    return obj, last


def _attr_names(policy) -> list[str]:
    """The state_attrs this policy has (a rounding without ``_coins`` has none to save)."""
    out = []
    for name in type(policy).state_attrs:
        parent, last = _resolve(policy, name)
        if parent is not None and hasattr(parent, last):
            out.append(name)
    return out


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, np.generic):
        return value.item()
    return value


def get_state(policy) -> dict:
    state = {
        "rng": policy.rng.bit_generator.state if policy.rng is not None else None,
        "control_messages": int(policy.control_messages),
        "control_bytes": int(policy.control_bytes),
    }
    for name in _attr_names(policy):
        parent, last = _resolve(policy, name)
        value = _plain(getattr(parent, last))
        if not (value is None or isinstance(value, (np.ndarray, bool, int, float, str, list, dict))):
            raise TypeError(f"policy {policy.name!r}: state attribute {name!r} is a {type(value).__name__}, not data")
        state[name] = value
    return state


def check_array(name: str, value, like: np.ndarray | None, shape: tuple | None = None, allow_inf: bool = False) -> np.ndarray:
    """value as an array of like's shape and kind, finite (or, with
    allow_inf, at least not nan); ValueError naming name."""
    if not isinstance(value, np.ndarray):
        raise ValueError(f"state {name!r}: expected an array, got {type(value).__name__}")
    want_shape = like.shape if like is not None else shape
    if want_shape is not None and value.shape != want_shape:
        raise ValueError(f"state {name!r}: shape {value.shape}, expected {want_shape}")
    kind = like.dtype.kind if like is not None else value.dtype.kind
    if kind not in "biuf" or value.dtype.kind not in ("b" if kind == "b" else "iu" if kind in "iu" else "f"):
        raise ValueError(f"state {name!r}: dtype {value.dtype}, expected {like.dtype if like is not None else 'numbers'}")
    if value.dtype.kind == "f" and not np.all(~np.isnan(value) if allow_inf else np.isfinite(value)):
        raise ValueError(f"state {name!r}: holds values that are not finite")
    return value.astype(like.dtype if like is not None else value.dtype, copy=True)


def set_state(policy, state: dict) -> None:
    if not isinstance(state, dict):
        raise ValueError("state: not a mapping")
    fresh = get_state(policy)
    missing = [k for k in fresh if k not in state]
    extra = [k for k in state if k not in fresh]
    if missing or extra:
        raise ValueError(f"state: {'no entry ' + repr(missing[0]) if missing else 'unexpected entry ' + repr(extra[0])}")
    for key in ("control_messages", "control_bytes"):
        v = state[key]
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
            raise ValueError(f"state {key!r}: expected an integer >= 0, got {v!r}")
    if fresh["rng"] is not None:
        rng_state = state["rng"]
        if not isinstance(rng_state, dict) or rng_state.get("bit_generator") != fresh["rng"]["bit_generator"]:
            raise ValueError("state 'rng': not the generator's state")
        try:
            policy.rng.bit_generator.state = rng_state
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            raise ValueError(f"state 'rng': {exc}") from None
    policy.control_messages = int(state["control_messages"])
    policy.control_bytes = int(state["control_bytes"])
    for name in _attr_names(policy):
        old, new = fresh[name], state[name]
        if isinstance(old, np.ndarray) or (old is None and isinstance(new, np.ndarray)):
            new = check_array(name, new, old if isinstance(old, np.ndarray) else None)
        elif old is not None and (type(new) is not type(old)):
            raise ValueError(f"state {name!r}: expected {type(old).__name__}, got {type(new).__name__}")
        parent, last = _resolve(policy, name)
        setattr(parent, last, new)
