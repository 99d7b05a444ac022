"""PPO's training-signal options: the speed cap that makes a slow behaviour policy, and its validation."""
import numpy as np
import pytest
import torch

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


def test_a_step_cost_replaces_the_environments_cost_in_training_and_is_reported_beside_it(tmp_path):
    seen = []

    def one_per_step(obs, actions, fell):
        seen.append((obs.shape, actions.shape, fell.shape, float(abs(actions).max()), set(fell.tolist())))
        return np.ones(len(obs), np.float32)

    summary = train_ppo(PPOConfig(task_id="SafetyHopperVelocity-v1", total_steps=512, num_envs=2, rollout_steps=128,
                                  cost_penalty=1.0), tmp_path / "p.safetensors", step_cost=one_per_step)
    assert summary["episodes"] > 0  # a random hopper falls within 128 steps
    assert summary["trained_cost_mean"] == pytest.approx(summary["length_mean"])  # one per step: episode cost = length
    assert len(seen) == 256 and all(s[:3] == ((2, 11), (2, 3), (2,)) and s[3] <= 1.0 and s[4] <= {0.0, 1.0} for s in seen)
    assert any(1.0 in s[4] for s in seen)  # a fall is passed on as 1


def test_critic_warmup_holds_the_actor_while_the_critic_learns(tmp_path):
    task = "SafetyPointCircle1-v0"
    parent = tmp_path / "parent.safetensors"
    train_ppo(PPOConfig(task_id=task, total_steps=256, num_envs=2, rollout_steps=64), parent)
    child = tmp_path / "child.safetensors"
    train_ppo(PPOConfig(task_id=task, total_steps=256, num_envs=2, rollout_steps=64, init_from=str(parent),
                        critic_warmup=2), child)
    held = tmp_path / "held.safetensors"
    train_ppo(PPOConfig(task_id=task, total_steps=256, num_envs=2, rollout_steps=64, init_from=str(parent),
                        critic_warmup=1), held)
    before, after, moved = (load_policy(p, task).state_dict() for p in (parent, child, held))
    weights = [k for k in before if k.startswith("mean_net") or k == "log_std"]
    assert all(torch.equal(before[k], after[k]) for k in weights)  # two updates, both warm-up: the actor is as it was
    assert not all(torch.equal(before[k], moved[k]) for k in weights)  # one warm-up update, then it trains


def test_a_negative_critic_warmup_is_refused():
    with pytest.raises(ValueError, match="critic_warmup must be ≥ 0"):
        PPOConfig(task_id="SafetyHopperVelocity-v1", critic_warmup=-1)


def test_gae_matches_numbers_worked_by_hand():
    """Two steps in two environments, γ = 0.9, λ = 0.8: the first environment's episode ends at its last step (no
    bootstrapping from the next value 10), the second's runs on."""
    import numpy as np

    from prefine_core.pretrain import gae

    rewards, values = np.ones((2, 2), np.float32), np.full((2, 2), 0.5, np.float32)
    dones = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
    advantages = gae(rewards, values, dones, np.array([10.0, 10.0], np.float32), gamma=0.9, lam=0.8)
    # ended: δ₁ = 1 − 0.5 = 0.5; δ₀ = 1 + 0.9·0.5 − 0.5 = 0.95, A₀ = 0.95 + 0.72·0.5 = 1.31
    # ran on: δ₁ = 1 + 0.9·10 − 0.5 = 9.5; A₀ = 0.95 + 0.72·9.5 = 7.79
    np.testing.assert_allclose(advantages, [[1.31, 7.79], [0.5, 9.5]], rtol=1e-6)


def test_the_reward_scales_running_return_restarts_where_an_episode_ended_in_the_last_rollout():
    """γ = 0.5, two environments, two steps of reward 1: the first environment's episode ended at the last rollout's
    last step (its return there, 4, is not carried on), the second's runs on from 4; the first ends again at step 0."""
    import numpy as np

    from prefine_core.pretrain import running_returns

    rewards, dones = np.ones((2, 2), np.float32), np.array([[1.0, 0.0], [0.0, 0.0]], np.float32)
    returns = running_returns(rewards, dones, carried=np.array([4.0, 4.0]), carried_ended=np.array([1.0, 0.0]),
                              gamma=0.5)
    # first: G₀ = 1 (a new episode), G₁ = 1 (step 0 ended it); second: G₀ = 0.5·4 + 1 = 3, G₁ = 0.5·3 + 1 = 2.5
    np.testing.assert_allclose(returns, [[1.0, 3.0], [1.0, 2.5]])


def test_an_update_that_leaves_the_actor_as_it_was_clips_no_ratio(tmp_path):
    """The ratio of an update's log-probabilities to its rollout's is exactly 1 while the actor is held (critic warm-up):
    the rollout keeps the observations normalised as the policy saw them. Renormalised with the statistics of the
    rollout's end, 5–13 % of a first HalfCheetah rollout's samples were clipped before any step."""
    updates = []
    train_ppo(PPOConfig(task_id="SafetyHalfCheetahVelocity-v1", total_steps=768, num_envs=2, rollout_steps=128,
                        critic_warmup=3), tmp_path / "p.safetensors", on_progress=updates.append)
    assert [u["clip_fraction"] for u in updates] == [0.0, 0.0, 0.0]
