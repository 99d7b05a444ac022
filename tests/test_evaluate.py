"""DESIGN §5's metrics, checked by hand on made-up episodes: rates at κ and at DSRL's thresholds, normalised scores,
cost reduction and reward retention."""
import math
import warnings

import numpy as np
import pytest

from prefine_core.evaluate import DSRL_COST_LIMITS, compare, dsrl_keys, summarize
from prefine_core.rollout import Trajectory

TASK = "SafetyHopperVelocity-v1"  # a task in which the robot can fall


def _episode(total_return: float, total_cost: float, length: int = 10, fell: bool = False) -> Trajectory:
    rewards, costs = np.full(length, total_return / length, np.float32), np.zeros(length, np.float32)
    costs[0] = total_cost  # where in the episode the cost falls does not matter to these metrics
    return Trajectory(TASK, np.zeros((length, 11), np.float32), np.zeros((length, 3), np.float32), rewards, costs,
                      terminated=fell, truncated=not fell)


def test_rates_at_kappa_and_at_dsrl_thresholds_by_hand():
    # costs 10, 30, 50, 90 and a fall with cost 0
    episodes = [_episode(100, 10), _episode(80, 30), _episode(60, 50), _episode(40, 90), _episode(20, 0, fell=True)]
    s = summarize(episodes, cost_limit=25.0, return_range=(0.0, 200.0))
    assert s["cost_mean"] == pytest.approx(36.0) and s["return_mean"] == pytest.approx(60.0)
    assert s["violation_rate"] == pytest.approx(3 / 5)  # 30, 50, 90 > 25
    assert s["catastrophic_rate"] == pytest.approx(2 / 5)  # 90 > 50, and the fall
    assert s["normalized_cost"] == pytest.approx(36.0 / 25.0) and s["fall_rate"] == pytest.approx(1 / 5)
    assert s["normalized_return"] == pytest.approx(60.0 / 200.0)
    expected = {20.0: (3 / 5, 3 / 5, 36 / 20),  # > 20: 30, 50, 90; > 40: 50, 90, and the fall
                40.0: (2 / 5, 2 / 5, 36 / 40),  # > 40: 50, 90; > 80: 90, and the fall
                80.0: (1 / 5, 1 / 5, 36 / 80)}  # > 80: 90; > 160: none, the fall alone
    assert set(expected) == set(DSRL_COST_LIMITS)
    for limit, values in expected.items():
        assert [s[key] for key in dsrl_keys(limit)] == pytest.approx(list(values)), limit


def test_cost_reduction_and_reward_retention_by_hand():
    reference = {"return_mean": 200.0, "cost_mean": 80.0, "length_mean": 1000.0, "fall_rate": 0.1}
    candidate = {"return_mean": 150.0, "cost_mean": 20.0, "length_mean": 990.0, "fall_rate": 0.0}
    result = compare(candidate, reference, {"return_mean": 120.0})
    assert result["cost_reduction_pct"] == pytest.approx(75.0)  # 100·(80 − 20)/80
    assert result["reward_retention"] == pytest.approx(0.75)  # 150/200
    assert result["reward_retention_vs_lagrangian"] == pytest.approx(1.25)  # 150/120
    assert result["length_change"] == pytest.approx(-10.0) and result["fall_rate_change"] == pytest.approx(-0.1)


def test_a_summary_refuses_no_episodes_and_a_limit_of_zero():
    with pytest.raises(ValueError, match="no episodes"):
        summarize([], cost_limit=25.0)
    with pytest.raises(ValueError, match="cost_limit must be positive"):
        summarize([_episode(1, 1)], cost_limit=0.0)


def test_a_limit_so_small_that_the_normalised_cost_overflows_gives_infinity_without_a_warning():
    """`evaluate --cost-limit 1e-320` printed numpy's "overflow encountered in scalar divide" on stderr."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = summarize([_episode(1, 5)], cost_limit=1e-320)
    assert (s["normalized_cost"], s["violation_rate"]) == (math.inf, 1.0)
