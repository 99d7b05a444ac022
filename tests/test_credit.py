"""Per-step credit (prefine_core.credit): a step cost fitted to clip labels, and how the loss uses it."""
import copy
import math

import numpy as np
import pytest
import torch

from prefine_core.credit import fit_step_cost, label_accuracy, step_weights, unsafe_score
from prefine_core.prefine import PrefineConfig, prefine_loss
from prefine_core.rollout import Trajectory
from tests.test_prefine import _batch, _policy

TASK = "SafetyHalfCheetahVelocity-v1"


def _clip(rng: np.random.Generator, unsafe_fraction: float, fell: bool = False, length: int = 30) -> Trajectory:
    """A clip whose step is unsafe exactly when its first feature is positive (the cost the labels are about)."""
    unsafe = rng.random(length) < unsafe_fraction
    obs = np.stack([np.where(unsafe, 1.0, -1.0) + 0.1 * rng.standard_normal(length), rng.standard_normal(length)], 1)
    return Trajectory(task_id=TASK, obs=obs.astype(np.float32), actions=np.zeros((length, 1), np.float32),
                      rewards=np.zeros(length, np.float32), costs=unsafe.astype(np.float32), terminated=fell,
                      truncated=not fell)


def _labelled(rng, n_pairs, fall_every=0):
    """(winner, loser) pairs as the fall-aware teacher decides them: a fall loses, else fewer unsafe steps wins."""
    pairs = []
    for i in range(n_pairs):
        a = _clip(rng, rng.random(), fell=bool(fall_every) and i % fall_every == 0)
        b = _clip(rng, rng.random())
        a_wins = (not a.terminated) and (b.terminated or a.costs.sum() < b.costs.sum())
        pairs.append((a, b) if a_wins else (b, a))
    return pairs


def test_the_fitted_step_cost_finds_the_unsafe_steps_from_clip_labels_alone():
    rng = np.random.default_rng(0)
    train, test = _labelled(rng, 120, fall_every=6), _labelled(rng, 60, fall_every=6)
    model = fit_step_cost(train, seed=0)
    assert label_accuracy(model, test) >= 0.85  # orders unseen pairs, falls included
    assert model.fall_penalty().item() > 1.0  # a fall is learned as costly although its clip is short
    clips = [c for pair in test for c in pair]
    p = torch.cat([unsafe_score(model, torch.as_tensor(c.obs), torch.as_tensor(c.actions)) for c in clips])
    cost = torch.cat([torch.as_tensor(c.costs) for c in clips])
    assert p[cost > 0].mean() > 3 * p[cost == 0].mean()


def test_the_fit_is_reproducible_and_leaves_the_callers_random_stream_alone():
    pairs = _labelled(np.random.default_rng(1), 20)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    first = fit_step_cost(pairs, seed=3)
    assert torch.equal(torch.rand(3), expected)
    second = fit_step_cost(pairs, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    with pytest.raises(ValueError, match="at least one decided pair"):
        fit_step_cost([])


def test_step_weights_by_hand():
    p, mask = torch.tensor([[0.2, 0.6, 0.9]]), torch.tensor([[1.0, 1.0, 0.0]])  # the last step is padding
    assert torch.allclose(step_weights(p, mask, unsafe=True), torch.tensor([[0.5, 1.5, 0.0]]))  # p / mean p (0.4)
    assert torch.allclose(step_weights(p, mask, unsafe=False), torch.tensor([[0.8 / 0.6, 0.4 / 0.6, 0.0]]))  # 1 − p


def test_unit_credit_changes_nothing_and_no_credit_silences_a_term():
    reference = _policy()
    policy = _policy(seed=3)
    config = PrefineConfig(margin_clip=0.0)
    batch = _batch(reference)
    ones = torch.ones_like(batch.pos_mask)
    plain, plain_metrics = prefine_loss(policy, reference, batch, config, torch.Generator().manual_seed(1))
    credited = batch._replace(pos_weight=ones, neg_weight=ones, bc_weight=torch.ones(len(batch.bc_obs)))
    same, same_metrics = prefine_loss(policy, reference, credited, config, torch.Generator().manual_seed(1))
    assert same.item() == pytest.approx(plain.item()) and same_metrics == pytest.approx(plain_metrics)
    # No credit on any preferred step: that term compares two empty sums, log 2 whatever the policy.
    silent = batch._replace(pos_weight=torch.zeros_like(ones))
    _, metrics = prefine_loss(policy, reference, silent, config, torch.Generator().manual_seed(1))
    assert metrics["loss/pref"] == pytest.approx(math.log(2.0))
    # The BC anchor is the credit-weighted mean NLL: all weight on one pair is that pair's NLL.
    only_first = torch.zeros(len(batch.bc_obs))
    only_first[0] = 1.0
    _, metrics = prefine_loss(policy, reference, batch._replace(bc_weight=only_first), config)
    assert metrics["loss/bc"] == pytest.approx(-policy.log_prob(batch.bc_obs[:1], batch.bc_act[:1]).item(), rel=1e-5)


def test_credit_is_a_config_choice_named_when_wrong():
    assert PrefineConfig().step_credit == "none"
    assert PrefineConfig.from_dict({"step_credit": "learned"}).step_credit == "learned"
    with pytest.raises(ValueError, match="step_credit"):
        PrefineConfig(step_credit="oracle")
