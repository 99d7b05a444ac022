"""PPO's training-signal options: the speed cap that makes a slow behaviour policy, and its validation."""
import pytest

from prefine_core.policy import load_policy
from prefine_core.pretrain import PPOConfig, speed_cap_penalty, train_ppo


@pytest.mark.parametrize("velocity, expected_forward_term", [
    (-0.3, -0.3),  # backwards: unchanged
    (0.2, 0.2),    # under the cap: unchanged
    (0.5, 0.5),    # at the cap: the peak
    (0.7, 0.3),    # above: 2·cap − v
    (1.0, 0.0),    # at twice the cap: zero
    (3.0, 0.0),    # far above: never negative, so a fall never pays
])
def test_speed_cap_forward_term_peaks_at_the_cap_and_stays_non_negative(velocity, expected_forward_term):
    assert velocity - speed_cap_penalty(velocity, cap=0.5) == pytest.approx(expected_forward_term)


def test_a_speed_capped_run_trains_and_records_its_cap_in_the_policy(tmp_path):
    out = tmp_path / "slow.safetensors"
    summary = train_ppo(PPOConfig(task_id="SafetyHopperVelocity-v1", total_steps=512, num_envs=2, rollout_steps=128,
                                  speed_cap=0.4), out)
    assert summary["step"] == 512
    assert load_policy(out, "SafetyHopperVelocity-v1").meta.provenance["speed_cap"] == 0.4


def test_speed_cap_refuses_a_task_without_velocity():
    with pytest.raises(ValueError, match="reports no x velocity"):
        PPOConfig(task_id="SafetyPointCircle1-v0", total_steps=64, num_envs=1, rollout_steps=64, speed_cap=0.4)


@pytest.mark.parametrize("field, value, message", [
    ("speed_cap", 0.0, "speed_cap must be a positive speed"),
    ("speed_cap", float("nan"), "speed_cap must be a positive speed"),
    ("lagrange_lr", 0.0, "lagrange_lr must be positive"),
])
def test_bad_config_values_are_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        PPOConfig(task_id="SafetyHopperVelocity-v1", **{field: value})
