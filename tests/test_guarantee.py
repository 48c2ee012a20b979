"""INFIDA against the exact static optimum on 30 small random instances with
a stationary workload: with equal model sizes and integer b/s (the case the
guarantee covers) it reaches (1 - 1/e) of the optimum on every instance over
the second half of the run, and model sizes cost it no more than a few points
on average. benchmarks/bench_ratio.py prints the full distributions."""

from __future__ import annotations

import numpy as np
import pytest

from guarantee_instances import PSI, second_half_ratios

SEEDS = range(30)


@pytest.fixture(scope="module")
def equal():
    return [second_half_ratios(s, equal_sizes=True, policies=("infida",))["infida"] for s in SEEDS]


@pytest.fixture(scope="module")
def sized():
    return [second_half_ratios(s, equal_sizes=False, policies=("infida",))["infida"] for s in SEEDS]


def test_infida_reaches_psi_of_the_optimum_on_every_instance(equal):
    worst = int(np.argmin(equal))
    assert min(equal) >= PSI, f"instance {worst}: INFIDA at {equal[worst]:.3f} of the optimum"


def test_sizes_cost_infida_at_most_a_few_points(equal, sized):
    assert np.mean(sized) >= np.mean(equal) - 0.05, (np.mean(sized), np.mean(equal))
    assert min(sized) >= PSI * 0.9
