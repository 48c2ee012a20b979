"""Plug-in references: ``package.module:Name`` strings and entry points.

Policies (``idn.policies.base.make_policy``), workload generators
(``idn.workloads.spec``) and topology builders (``idn.model.topology``) can all
come from outside the package. This module only finds the object; each caller
checks that it is the right kind of thing. Every failure is a ``PluginError``
(a ``ValueError``, so the CLI prints it as one line, exit status 2) naming
the reference and what is wrong with it.
"""

from __future__ import annotations

import difflib
import importlib
from importlib import metadata


class PluginError(ValueError):
    """A bad plug-in reference: one line naming it."""


def is_reference(name) -> bool:
    """``module:attr`` (a colon), as opposed to a built-in or entry-point name."""
    return isinstance(name, str) and ":" in name


def load_reference(ref: str, what: str, label: str | None = None):
    """The object ``ref`` = ``package.module:Name`` (``Name`` may be dotted,
    ``module:Class.attr``) names; ``what`` ("policy", "workload generator",
    ...) and ``label`` (how the user named it; default ``ref``) are for the
    message."""
    module_name, _, attr = ref.strip().partition(":")
    module_name, attr = module_name.strip(), attr.strip()
    who = f"{what} {label}" if label else f"{what} {ref!r}"
    if not module_name or not attr:
        raise PluginError(f"{who}: expected 'package.module:Name'")
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # the module itself, or something it imports: say which
        missing = exc.name or module_name
        if not (module_name == missing or module_name.startswith(missing + ".")):
            raise PluginError(f"{who}: module {module_name!r} imports {missing!r}, which is not installed") from None
        raise PluginError(f"{who}: no module named {module_name!r} (is it on PYTHONPATH?)") from None
    except Exception as exc:  # a plug-in's own import-time bug: still one line
        raise PluginError(f"{who}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            close = difflib.get_close_matches(part, [n for n in dir(obj) if not n.startswith("_")], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PluginError(f"{who}: module {module_name!r} has no attribute {attr!r}{hint}")
        obj = getattr(obj, part)
    return obj


def entry_points(group: str) -> dict:
    """{name: EntryPoint} of an entry-point group (installed packages'
    ``[project.entry-points."<group>"]``); the first distribution on sys.path
    wins a repeated name."""
    out = {}
    for ep in metadata.entry_points(group=group):
        out.setdefault(ep.name, ep)
    return out


def load_entry_point(group: str, ep, what: str):
    """The object an entry point names, with the same one-line errors as a
    ``module:Name`` reference."""
    return load_reference(ep.value, what, f"{ep.name!r} (entry point {ep.value!r} in group {group!r})")
