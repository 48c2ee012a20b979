"""The one interface every allocation policy has, and the registry that finds
policies by name.

In the spirit of river's ``predict_one``/``learn_one``: a policy is bound to
an IDN's request types by :meth:`Policy.start`, then, slot after slot, it
``propose``s the allocation for the coming slot (chosen before the slot's
requests are seen) and ``learn``s from the requests that arrived. Offline
policies (those that know the trace in advance: static greedy, the optimum,
INFIDA-offline) receive the whole trace in ``start`` and keep their
allocation fixed.

Parameters live in ``self.params`` (set by the constructor, read back by
``get_params``), so ``clone()`` makes an unbound copy with the same settings,
as scikit-learn's estimators do.
"""

from __future__ import annotations

import difflib
from typing import ClassVar

import numpy as np

from ..model.request_types import RequestTypes


class Policy:
    name: ClassVar[str] = "policy"
    offline: ClassVar[bool] = False  # needs the whole trace in start()
    defaults: ClassVar[dict] = {}  # parameter name -> default value

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"policy {self.name!r}: unknown parameter {unknown[0]!r} (known: {', '.join(sorted(self.defaults)) or 'none'})"
            )
        self.params = {**self.defaults, **params}
        self.rt: RequestTypes | None = None
        self.rng: np.random.Generator | None = None
        # control-plane traffic of the last learn(): messages and bytes (section 8 step 5)
        self.control_messages = 0
        self.control_bytes = 0

    # -- scikit-learn style plumbing -------------------------------------
    def get_params(self) -> dict:
        return dict(self.params)

    def clone(self) -> Policy:
        return type(self)(**self.params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    # -- the interface ---------------------------------------------------
    def start(self, rt: RequestTypes, seed: int | np.random.Generator = 0, trace: np.ndarray | None = None) -> Policy:
        """Bind to the request types (and, for offline policies, the trace:
        counts per slot and request type, shape (T, R)); reset all state."""
        if self.offline and trace is None:
            raise ValueError(f"policy {self.name!r} is offline: it needs the whole trace")
        self.rt = rt
        self.rng = np.random.default_rng(seed)
        self.control_messages = 0
        self.control_bytes = 0
        self._start(trace)
        return self

    def _start(self, trace: np.ndarray | None) -> None:
        """Subclasses set up their state here."""

    def propose(self) -> np.ndarray:
        """The allocation x for the coming slot: (V, M) 0/1, permanent pairs 1,
        every node within its budget."""
        raise NotImplementedError

    def learn(self, counts: np.ndarray, share: np.ndarray) -> None:
        """Take in the slot's request counts per type (R,) and the capacity
        shares per candidate entry (E,) that served them."""

    # -- helpers for subclasses ------------------------------------------
    def _empty_allocation(self) -> np.ndarray:
        return self.rt.idn.permanent.astype(float)


POLICIES: dict[str, type[Policy]] = {}


def register(cls: type[Policy]) -> type[Policy]:
    POLICIES[cls.name] = cls
    return cls


def make_policy(name: str, **params) -> Policy:
    """The policy registered under name, built with params; a one-line error
    with the close names when there is none."""
    from . import baselines, infida, optimum  # noqa: F401  (registration)

    if name not in POLICIES:
        close = difflib.get_close_matches(name, POLICIES, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(POLICIES))}"
        raise ValueError(f"unknown policy {name!r}{hint}")
    return POLICIES[name](**params)


def policy_names() -> list[str]:
    from . import baselines, infida, optimum  # noqa: F401

    return sorted(POLICIES)


@register
class CloudOnly(Policy):
    """No model outside the repositories (design page, section 9)."""

    name = "cloud-only"

    def propose(self) -> np.ndarray:
        return self._empty_allocation()


@register
class Fixed(Policy):
    """A given static allocation {node id: [model ids]}, e.g. from a file."""

    name = "fixed"
    defaults = {"allocation": {}}

    def _start(self, trace):
        self._x = self.rt.idn.allocation_from_ids(self.params["allocation"])

    def propose(self) -> np.ndarray:
        return self._x
