"""idn: Inference Delivery Networks.

The public API (docs/api.md) is importable from here, ``from idn import
Policy, load_scenario, run``; it lives in ``idn.api`` and is loaded on first
use, so that ``import idn`` (and every ``idn`` command) stays cheap.
"""

from ._version import __version__  # noqa: F401

__all__ = [
    "ENTRY_POINT_GROUP", "IDN", "IDNView", "Policy", "RequestTypes", "RunResult", "SLOT_COLUMNS", "ScenarioError",
    "TIERS", "bin_requests", "bounds", "count_matrix", "generate_trace", "import_trace", "load_scenario", "make_policy",
    "policy_class", "policy_names", "read_trace", "register", "request_types", "run", "run_policy",
    "scenario_from_dict", "summarize", "view", "write_trace",
]  # fmt: skip


def __getattr__(name: str):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'idn' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
