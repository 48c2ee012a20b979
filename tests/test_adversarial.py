"""The adversarial half (issue: INFIDA that earns its place): on a sequence
built against a windowed greedy policy, the greedy's regret is linear in T
while INFIDA's psi-regret per slot falls."""

from __future__ import annotations

import numpy as np
import pytest

from idn.experiments.adversarial import adversarial_sequence, regret_table


@pytest.mark.parametrize("greedy", ["online-greedy", "local-greedy"])
def test_windowed_greedy_has_linear_regret_and_infida_does_not(greedy):
    table = regret_table(horizons=(100, 400, 1600), seeds=(0, 1), greedy=greedy)
    mean = table.groupby(["policy", "T"])[["psi_regret_per_slot", "regret_per_slot"]].mean()
    g, inf = mean.loc[greedy], mean.loc["infida"]
    # the greedy holds the wrong model (almost) every slot: about half a slot's gain lost per slot, at every T
    assert (g["regret_per_slot"] > 0.5).all()
    assert g["psi_regret_per_slot"].loc[1600] >= g["psi_regret_per_slot"].loc[100] - 1e-9
    # INFIDA: psi-regret per slot negative and falling, plain regret per slot shrinking towards 0
    assert (inf["psi_regret_per_slot"] < 0).all()
    assert inf["psi_regret_per_slot"].loc[1600] < inf["psi_regret_per_slot"].loc[400] < inf["psi_regret_per_slot"].loc[100]
    assert inf["regret_per_slot"].loc[1600] < inf["regret_per_slot"].loc[100] / 4
    assert inf["regret_per_slot"].loc[1600] < 0.02


def test_the_sequence_keeps_both_tasks_balanced():
    rt, counts = adversarial_sequence("online-greedy", 400)
    per_task = counts.sum(axis=0)
    assert counts.sum() == 400 * 10
    assert np.all((counts > 0).sum(axis=1) == 1)  # one task per slot
    assert abs(per_task[0] - per_task[1]) <= 0.1 * counts.sum()


def test_reproduce_only_names_a_sweep_of_the_study():
    from idn.experiments.reproduce import config_paths

    assert [p.stem for p in config_paths("paper", False, ["adapt-geant"])] == ["adapt-geant"]
    assert [p.stem for p in config_paths("paper", True)] == ["quick-alpha", "quick-budget", "quick-adapt"]
    with pytest.raises(ValueError, match="no sweep 'adapt' in this study"):
        config_paths("paper", False, ["adapt"])
