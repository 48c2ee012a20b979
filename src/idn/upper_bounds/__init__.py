"""Certified upper bounds on the total gain of a trace (design page section
9): on any static allocation and on any policy at all. :mod:`.certified`
chooses the method and reports the gap; :mod:`.lp` solves the LP (HiGHS),
:mod:`.fast` and :mod:`.lagrange` give the Lagrangian bound with no solver
(docs/model.md, "The fast bound")."""

from .certified import BOUND_METHODS, bounds, certified_bounds, choose_method
from .lp import per_slot_lp_bound, static_lp_bound

__all__ = ["BOUND_METHODS", "bounds", "certified_bounds", "choose_method", "per_slot_lp_bound", "static_lp_bound"]
