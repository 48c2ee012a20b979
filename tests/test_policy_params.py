"""Policy parameters are checked when the policy is made (Policy.checks,
idn.policies.params): every built-in parameter has a check, a subclass
inherits its bases' checks, and a plug-in declares its own the same way."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from idn.policies.registry import POLICIES, make_policy, policy_names
from idn.policies.base import Policy
from idn.policies.params import check_params, integer, number, one_of, optional

CHECKED = ["infida", "infida-offline", "online-greedy", "optimal", "fixed"]


def all_checks(cls) -> dict:
    out = {}
    for klass in reversed(cls.__mro__):
        out.update(getattr(klass, "checks", None) or {})
    return out


@pytest.mark.parametrize("name", CHECKED)
def test_every_parameter_of_the_built_in_policies_has_a_check(name):
    policy_names()
    cls = POLICIES[name]
    assert set(cls.defaults) <= set(all_checks(cls)), sorted(set(cls.defaults) - set(all_checks(cls)))
    make_policy(name)  # and the defaults pass them


bad_numbers = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, True, False, None, "1", [1], {"a": 1}, 10**400]),
    st.floats(max_value=0.0),
    st.floats(min_value=1e6, exclude_min=True),
)


@given(bad_numbers)
def test_a_positive_number_refuses_everything_else(value):
    with pytest.raises(ValueError, match=r"^policy 'infida': parameter eta_scale must be a finite number > 0 and <= 1e\+06, got "):
        make_policy("infida", eta_scale=value)


@given(st.floats(min_value=1e-300, max_value=1e6))
def test_a_positive_number_accepts_every_finite_positive_float(value):
    assert make_policy("infida", learning="static", eta_scale=value, eta=value).params["eta"] == value


def test_a_subclass_adds_checks_and_keeps_its_bases():
    class Mine(Policy):
        name = "mine"
        defaults = {"step": 0.1, "mode": "fast", "window": None}
        checks = {"step": number(gt=0, le=1), "mode": one_of("fast", "slow"), "window": optional(integer(ge=1))}

    class Sub(Mine):
        name = "sub"
        defaults = {**Mine.defaults, "extra": 2}
        checks = {"extra": integer(ge=0)}

    Sub(step=0.5, window=3, extra=0)
    for kw, msg in [({"step": 2}, "parameter step must be a finite number > 0 and <= 1, got 2"),
                    ({"mode": "Fast"}, "parameter mode must be one of 'fast', 'slow', got 'Fast'"),
                    ({"window": 0}, "parameter window must be an integer >= 1, or null, got 0"),
                    ({"extra": 1.0}, "parameter extra must be an integer >= 0, got 1.0")]:  # fmt: skip
        with pytest.raises(ValueError) as err:
            Sub(**kw)
        assert str(err.value) == f"policy 'sub': {msg}"
    check_params(Sub, {"not-declared": object()})  # undeclared parameters are the policy's own business
