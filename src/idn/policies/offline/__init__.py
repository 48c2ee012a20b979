"""Offline policies: they know the whole trace in advance (benchmarks, not
deployable): :mod:`.static_greedy` and the exact optimum :mod:`.optimum`.
INFIDA-offline lives with INFIDA (:mod:`idn.policies.infida.policy`)."""
