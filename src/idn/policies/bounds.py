"""Upper bounds on the total gain of a trace (design page section 9), for
``idn bound`` and the run summaries."""

from __future__ import annotations

import numpy as np

from ..model.request_types import RequestTypes
from .optimum import STATIC_LP_MAX_VARIABLES, per_slot_lp_bound, static_lp, static_lp_bound

__all__ = ["bounds", "per_slot_lp_bound", "static_lp_bound"]


def bounds(rt: RequestTypes, trace: np.ndarray, max_variables: int = STATIC_LP_MAX_VARIABLES) -> dict[str, float]:
    """static_lp_bound: no static allocation gains more over the trace;
    per_slot_lp_bound: no policy at all does. static_lp_merge is 1 when the
    static bound is the exact LP optimum, else how many distinct rows were
    merged per row to fit max_variables (a valid, looser bound)."""
    static, _, group = static_lp(rt, trace, max_variables)
    per_slot = per_slot_lp_bound(rt, trace)
    return {
        # a static allocation is a policy too: when merging loosened the static bound, the other may be lower
        "static_lp_bound": min(static, per_slot),
        "per_slot_lp_bound": per_slot,
        "static_lp_merge": group,
    }
