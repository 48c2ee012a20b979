"""The one interface every allocation policy has (the registry that finds
policies by name is :mod:`.registry`).

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

from typing import ClassVar

import numpy as np

from ..model.request_types import RequestTypes
from .params import check_params


class Policy:
    """An allocation policy; subclass it to write your own (``from idn import Policy``).

    The contract (the slot loop, ``idn.sim.loop.run_policy``, is its only caller):

    - ``name``, ``offline``, ``defaults`` (class attributes): the name results
      carry; whether the policy needs the whole trace in advance; the
      parameters it accepts with their defaults. ``Policy(**params)`` rejects
      a parameter not in ``defaults``; ``self.params`` holds them all.
    - ``start(rt, seed, trace)`` binds the policy to the request types
      (``self.rt``; ``idn.view(self.rt)`` is the read-only view), seeds
      ``self.rng`` and resets everything; then it calls ``_start(trace)``,
      the hook a subclass overrides to set up its state. ``trace`` is the
      (T, R) count matrix for offline policies, None for online ones.
    - ``propose()`` is called once per slot, before the slot's requests are
      seen, and returns the allocation x: a (V, M) array of 0/1, permanent
      pairs 1, every node within its budget (sum of sizes <= budget_mb);
      checked every slot for a policy defined outside idn (idn.sim.contract).
    - ``learn(counts, share)`` is called after the slot is served, with the
      slot's requests per type (R,) and the capacity shares per candidate
      entry (E,). Online policies update here; it may do nothing.
    - ``clone()`` returns an unbound copy with the same parameters; a run
      never shares state with another. ``control_messages`` /
      ``control_bytes`` are the control traffic of the last ``learn``
      (0 unless the policy models it).
    - Randomness only from ``self.rng``, so a seed fixes the run.
    - ``state_attrs`` (class attribute) names the attributes that carry state
      from slot to slot (arrays or JSON values; what ``_start`` rebuilds from
      ``rt`` is not state). Checkpoints (``idn run --checkpoint-every``) save
      and restore exactly these, the rng and the control counters: an
      attribute left out restarts from its ``_start`` value on resume.
    """

    name: ClassVar[str] = "policy"
    offline: ClassVar[bool] = False  # needs the whole trace in start()
    # what the policy knows, for people (idn run --help, docs): "online" (each node from what passes
    # through it), "centralized" (the whole network's requests), "offline" (the whole trace in advance),
    # "static" (nothing: a fixed allocation); and what it does, in one line
    knows: ClassVar[str] = "online"
    summary: ClassVar[str] = ""
    defaults: ClassVar[dict] = {}  # parameter name -> default value
    # parameter name -> check (idn.policies.params: number(gt=0), one_of(...), ...);
    # a subclass declares only its own parameters, its bases' checks apply too
    checks: ClassVar[dict] = {}
    # the attributes that make up the state between slots (dotted paths into
    # sub-objects allowed), saved by state_dict() for checkpoints; see there
    state_attrs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"policy {self.name!r}: unknown parameter {unknown[0]!r} (known: {', '.join(sorted(self.defaults)) or 'none'})"
            )
        self.params = {**self.defaults, **params}
        check_params(type(self), self.params)  # one line naming the parameter: eta=-1, eta=nan, window=0
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

    # -- the state between slots, as data (checkpoints) ------------------
    def state_dict(self) -> dict:
        """The state between slots: name -> numpy array or JSON value (None,
        bool, int, float, str, lists and dicts of them); never objects, so a
        checkpoint holds data only. The base saves the random generator, the
        control counters and each attribute named in ``state_attrs``. A
        policy whose state does not sit in such attributes (a deque, say)
        extends this and ``load_state_dict``, calling super()."""
        from .state import get_state

        return get_state(self)

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``'s output into a policy just ``start``-ed
        on the same request types, seed and trace (start() rebuilds all that
        is not state). Every entry must match the fresh one in shape and kind
        and be finite: else a ValueError naming the entry."""
        from .state import set_state

        set_state(self, state)

    # -- helpers for subclasses ------------------------------------------
    def _empty_allocation(self) -> np.ndarray:
        return self.rt.idn.permanent.astype(float)
