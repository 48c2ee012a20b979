"""The registry that finds policies by name: the built-in ones (each module
``register``s its classes; ``idn/policies/__init__.py`` imports them all), an
installed package's entry points (group ``idn.policies``), or a
``package.module:ClassName`` reference."""

from __future__ import annotations

import difflib

from ..plugins import entry_points, is_reference, load_entry_point, load_reference
from .base import Policy


POLICIES: dict[str, type[Policy]] = {}


def register(cls: type[Policy]) -> type[Policy]:
    POLICIES[cls.name] = cls
    return cls


ENTRY_POINT_GROUP = "idn.policies"  # installed packages register policies by name here


def policy_class(name: str) -> type[Policy]:
    """The class a policy name stands for, in this order: a registered name
    (built-in or ``register``-ed), a ``package.module:ClassName`` reference,
    or the name of an entry point in the group ``idn.policies``. A one-line
    ValueError for an unknown name (with the close ones), a missing module, a
    missing class, or an object that is not a ``Policy`` subclass."""
    if not isinstance(name, str):
        raise ValueError(f"policy name must be a string, got {name!r}")
    if name in POLICIES:
        return POLICIES[name]
    if is_reference(name):
        label, obj = repr(name), load_reference(name, "policy")
    else:
        eps = entry_points(ENTRY_POINT_GROUP)
        if name not in eps:
            known = sorted({*POLICIES, *eps})
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(known)}"
            raise ValueError(f"unknown policy {name!r}{hint} (or give package.module:ClassName)")
        label = f"{name!r} (entry point {eps[name].value!r})"
        obj = load_entry_point(ENTRY_POINT_GROUP, eps[name], "policy")
    if not (isinstance(obj, type) and issubclass(obj, Policy)):
        kind = "a class" if isinstance(obj, type) else f"a {type(obj).__name__}"
        raise ValueError(f"policy {label}: {obj.__name__ if isinstance(obj, type) else kind} is not a subclass of idn.Policy")
    return obj


def make_policy(name: str, **params) -> Policy:
    """The policy ``name`` stands for (see ``policy_class``), built with params."""
    cls = policy_class(name)
    policy = cls(**params)
    if POLICIES.get(name) is not cls:
        # a plug-in is recorded under the name it was asked for, so that the
        # name in a result (summary, sweep store, report) resolves again
        policy.name = name
    return policy


def policy_names() -> list[str]:
    """Registered policies and the entry points of ``idn.policies``
    (``package.module:ClassName`` references are accepted too, not listed)."""
    return sorted({*POLICIES, *entry_points(ENTRY_POINT_GROUP)})


def describe_policies() -> list[tuple[str, str, str]]:
    """(name, what it knows, one line on what it does) of every registered
    policy; an entry point is listed by name, loaded only when run."""
    rows = [(name, cls.knows, cls.summary or (cls.__doc__ or "").strip().split("\n")[0]) for name, cls in POLICIES.items()]
    rows += [(name, "plug-in", f"entry point {ep.value}") for name, ep in entry_points(ENTRY_POINT_GROUP).items() if name not in POLICIES]
    order = {"online": 0, "centralized": 1, "offline": 2, "static": 3}
    return sorted(rows, key=lambda r: (order.get(r[1], 4), r[0]))
