"""The exact static optimum (design page section 9): the MILP of
:mod:`idn.problem.program` with x binary, for small instances."""

from __future__ import annotations

import numpy as np

from ...problem.objective import check_trace
from ...problem.program import build_program, dense_allocation, exact_rows, n_continuous, solve
from ..base import Policy
from ..registry import register
from ..params import integer, number


@register
class Optimal(Policy):
    """Offline: the exact static optimum max_x sum_t G_t(x) of the trace, a
    MILP solved by HiGHS (design page section 9). For small instances only:
    more than ``max_variables`` continuous variables, or no proof of
    optimality (to ``mip_rel_gap``) within ``time_limit`` seconds, is a
    one-line ValueError. After start(): ``value`` is the allocation's total gain."""

    name = "optimal"
    knows = "offline"
    summary = "the exact best static allocation for the trace (a MILP; small instances)"
    offline = True
    defaults = {"max_variables": 200_000, "time_limit": 60.0, "mip_rel_gap": 1e-9}
    checks = {"max_variables": integer(ge=1), "time_limit": number(ge=0), "mip_rel_gap": number(ge=0, le=1)}
    state_attrs = ("_x",)

    def _start(self, trace):
        trace = check_trace(self.rt, trace, self.name)
        need, cap = n_continuous(self.rt, trace), self.params["max_variables"]
        if need > cap:
            raise ValueError(
                f"policy {self.name!r}: the MILP would need {need} continuous variables "
                f"({trace.shape[0]} slots x {self.rt.n_types} request types), over max_variables={cap}; "
                "use fewer slots, static-greedy or the LP bound"
            )
        prog = build_program(self.rt, exact_rows(self.rt, trace))
        limit = self.params["time_limit"]
        who = f"policy {self.name!r} (time_limit={limit:g} s)"
        _, x_vals = solve(prog, True, who, limit, self.params["mip_rel_gap"])
        self._x = dense_allocation(self.rt, prog, np.round(x_vals))
        self.value = prog.rows.gain(self._x.reshape(-1))

    def propose(self) -> np.ndarray:
        return self._x.copy()
