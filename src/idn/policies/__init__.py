"""Allocation policies: the interface (:mod:`.base`), the registry that finds
them by name (:mod:`.registry`), and the built-in ones, by what they know:

- :mod:`.infida`: INFIDA (online, each node on its own state) and its parts
  (rounding, filling, control messages); INFIDA-offline;
- :mod:`.heuristics`: online heuristics, each node alone (local-greedy, lfu,
  lru) or centralized (online-greedy);
- :mod:`.offline`: policies that know the whole trace (static-greedy, the
  exact optimum);
- :mod:`.simple`: cloud-only and fixed.

Importing this package registers every built-in policy.
"""

from . import simple  # noqa: F401  (each module registers its policies)
from .heuristics import caching, local_greedy, online_greedy  # noqa: F401
from .infida import policy as infida_policy  # noqa: F401
from .offline import optimum, static_greedy  # noqa: F401
