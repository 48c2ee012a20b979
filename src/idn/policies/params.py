"""Checks for policy parameters, declared next to the defaults.

A policy class lists, in ``checks``, parameter name -> check; a check is a
callable that takes the value and returns None when it is fine, or what is
wrong ("must be a finite number > 0"). ``Policy.__init__`` runs the checks
of the class and of its bases (a subclass declares only its new parameters)
on every parameter, given or default, and raises one line naming the
policy, the parameter and the value::

    class MyPolicy(Policy):
        name = "mine"
        defaults = {"step": 0.1, "mode": "fast", "window": None}
        checks = {"step": number(gt=0), "mode": one_of("fast", "slow"),
                  "window": optional(integer(ge=1))}

The values come from ``--param NAME=VALUE`` (JSON, else a string), from
experiment files, or from Python; so "inf", "nan", true and 1e400 all reach
the checks, and must fail them wherever a finite number is meant.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

Check = Callable[[Any], "str | None"]


def _fmt(x) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _bounds_text(gt, ge, le) -> str:
    parts = [f"{op} {_fmt(x)}" for op, x in ((">", gt), (">=", ge), ("<=", le)) if x is not None]
    return " and ".join(parts)


def number(gt: float | None = None, ge: float | None = None, le: float | None = None) -> Check:
    """A finite real number (not a bool) within the bounds."""
    want = " ".join(["a finite number", _bounds_text(gt, ge, le)]).strip()

    def check(v):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            return f"must be {want}"
        try:
            x = float(v)
        except OverflowError:
            return f"must be {want}"
        if not math.isfinite(x) or (gt is not None and not x > gt) or (ge is not None and not x >= ge) or (le is not None and not x <= le):
            return f"must be {want}"
        return None

    return check


def integer(ge: int | None = None, le: int | None = None) -> Check:
    """An integer (not a bool; 3.0 is not accepted either) within the bounds."""
    want = " ".join(["an integer", _bounds_text(None, ge, le)]).strip()

    def check(v):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            return f"must be {want}"
        if (ge is not None and v < ge) or (le is not None and v > le):
            return f"must be {want}"
        return None

    return check


def one_of(*choices) -> Check:
    def check(v):
        ok = any(v == c and type(v) is type(c) for c in choices)
        return None if ok else f"must be one of {', '.join(map(repr, choices))}"

    return check


def optional(inner: Check) -> Check:
    """None (null in JSON and YAML), or what inner accepts."""

    def check(v):
        if v is None:
            return None
        problem = inner(v)
        return None if problem is None else f"{problem}, or null"

    return check


def rising_list(inner: Check, max_len: int) -> Check:
    """A list of 1 to max_len items, each passing inner, strictly rising."""
    want = f"a list of 1 to {max_len} strictly rising items"

    def check(v):
        if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)) or not 1 <= len(v) <= max_len:
            return f"must be {want}"
        for item in v:
            problem = inner(item)
            if problem is not None:
                return f"must be {want}, each of which {problem.removeprefix('must be ').join(['is ', ''])}"
        if any(not a < b for a, b in zip(v[:-1], v[1:])):
            return f"must be {want}"
        return None

    return check


def id_lists(v) -> str | None:
    """A mapping of ids to lists of ids (a fixed allocation)."""
    if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
        return "must be a mapping of node ids to lists of model ids"
    for items in v.values():
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            return "must be a mapping of node ids to lists of model ids"
    return None


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:55] + " ..."


def check_params(cls: type, params: dict) -> None:
    """Run every check that cls and its bases declare; one-line ValueError for
    the first parameter that fails."""
    checks: dict[str, Check] = {}
    for klass in reversed(cls.__mro__):
        checks.update(getattr(klass, "checks", None) or {})
    for key, value in params.items():
        check = checks.get(key)
        problem = check(value) if check is not None else None
        if problem is not None:
            raise ValueError(f"policy {cls.name!r}: parameter {key} {problem}, got {_short(value)}")
