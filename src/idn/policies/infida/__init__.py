"""INFIDA (design page, section 8) and its parts: the policy and
INFIDA-offline (:mod:`.policy`), the roundings (:mod:`.rounding`,
:mod:`.rounding_core`, :mod:`.grouped`), what is done with a draw
(:mod:`.fill`) and the control messages of its distributed form
(:mod:`.messages`). The mirror step it shares with the fast bound is in
:mod:`idn.problem.mirror` and :mod:`idn.problem.projection`."""
