"""The two allocations that learn nothing: cloud-only, the design page's
baseline with no model outside the repositories, and fixed, a given static
allocation (``idn evaluate``, ``idn serve --allocation``)."""

from __future__ import annotations

import numpy as np

from .base import Policy
from .params import id_lists
from .registry import register


@register
class CloudOnly(Policy):
    """No model outside the repositories (design page, section 9)."""

    name = "cloud-only"
    knows = "static"
    summary = "no model outside the repositories"

    def propose(self) -> np.ndarray:
        return self._empty_allocation()


@register
class Fixed(Policy):
    """A given static allocation {node id: [model ids]}, e.g. from a file."""

    name = "fixed"
    knows = "static"
    summary = "a given allocation (--param allocation='{node: [models]}')"
    defaults = {"allocation": {}}
    checks = {"allocation": id_lists}
    state_attrs = ("_x",)

    def _start(self, trace):
        self._x = self.rt.idn.allocation_from_ids(self.params["allocation"])

    def propose(self) -> np.ndarray:
        return self._x
