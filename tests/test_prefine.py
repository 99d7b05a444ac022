"""The PREFINE loss (DESIGN §4 eq. 4) with numbers checked by hand, and PrefineConfig."""
import copy
import math

import pytest
import torch

from prefine_core.policy import PolicyMeta, TanhGaussianPolicy
from prefine_core.prefine import (
    Batch, PrefineConfig, config_fields, gaussian_kl, preference_loss, prefine_loss,
)

LOG2 = math.log(2.0)


def _policy(seed=0):
    torch.manual_seed(seed)
    return TanhGaussianPolicy(PolicyMeta(task_id="SafetyHalfCheetahVelocity-v1", obs_dim=3, act_dim=2, hidden_sizes=(8,)))


def _batch(reference, b=4, length=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(2, b, length, 3, generator=g)
    act = torch.rand(2, b, length, 2, generator=g) * 1.6 - 0.8
    with torch.no_grad():
        ref = reference.log_prob(obs, act)
    mask = torch.ones(b, length)
    return Batch(obs[0], act[0], ref[0], mask, obs[1], act[1], ref[1], mask, obs[0].reshape(-1, 3), act[0].reshape(-1, 2))


def test_preference_loss_hand_values():
    chosen, rejected, mask = torch.tensor([[1.0, 2.0]]), torch.zeros(1, 2), torch.ones(1, 2)
    loss, margin = preference_loss(chosen, rejected, mask, beta=0.5)
    assert margin.item() == pytest.approx(3.0)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-1.5)))  # 0.2014
    step, _ = preference_loss(chosen, rejected, mask, beta=0.5, per_step=True)
    assert step.item() == pytest.approx((math.log1p(math.exp(-0.5)) + math.log1p(math.exp(-1.0))) / 2)  # 0.3937
    masked, m = preference_loss(chosen, rejected, torch.tensor([[1.0, 0.0]]), beta=0.5)
    assert m.item() == pytest.approx(1.0) and masked.item() == pytest.approx(math.log1p(math.exp(-0.5)))


def test_clip_stops_segments_that_win_or_lose_by_more_than_the_clip():
    chosen = torch.tensor([[1.0, 2.0], [-3.0, 0.0], [0.5, 0.0]], requires_grad=True)
    loss, _ = preference_loss(chosen, torch.zeros(3, 2), torch.ones(3, 2), beta=0.5, clip=1.0)
    assert loss[0].item() == pytest.approx(math.log1p(math.exp(-1.0)))  # β·margin 1.5 -> 1
    assert loss[1].item() == pytest.approx(math.log1p(math.exp(1.0)))  # β·margin -1.5 -> -1
    loss.sum().backward()
    assert torch.all(chosen.grad[:2] == 0) and torch.all(chosen.grad[2] < 0)


def test_equal_policies_give_log2_per_preference_term_and_zero_kl():
    reference = _policy()
    for counterfactuals in ("policy", "none", "mixed"):
        for sigmoid in ("segment", "step"):
            sets = "net" if counterfactuals == "policy" else "pairs"  # winner-vs-loser contrasts need the pairs
            config = PrefineConfig(counterfactuals=counterfactuals, sigmoid=sigmoid, margin_clip=0.0, label_sets=sets)
            _, metrics = prefine_loss(copy.deepcopy(reference), reference, _batch(reference), config, torch.Generator().manual_seed(1))
            expected_pref = 2 * LOG2 if counterfactuals == "mixed" else LOG2
            assert metrics["loss/pref"] == pytest.approx(expected_pref, abs=1e-5)
            assert metrics["loss/dispref"] == pytest.approx(LOG2 if counterfactuals != "none" else 0.0, abs=1e-5)
            assert metrics["kl/ref"] == pytest.approx(0.0, abs=1e-6)
            assert metrics["pref/margin"] == pytest.approx(0.0, abs=1e-4)


def test_a_ratio_reference_equal_to_the_policy_gives_log2_while_the_kl_stays_on_the_reference():
    reference, policy = _policy(0), _policy(1)  # π_θ ≠ π_ref
    batch = _batch(policy)  # logged log-probs under the ratio reference, as the trainer recomputes them
    config = PrefineConfig(margin_clip=0.0, reference_sync_every=10)
    _, metrics = prefine_loss(policy, reference, batch, config, torch.Generator().manual_seed(1), ratio_reference=copy.deepcopy(policy))
    assert metrics["loss/pref"] == pytest.approx(LOG2, abs=1e-5) and metrics["loss/dispref"] == pytest.approx(LOG2, abs=1e-5)
    assert metrics["kl/ref"] > 0.01  # still measured against π_ref
    _, against_ref = prefine_loss(policy, reference, _batch(reference), config, torch.Generator().manual_seed(1))
    assert against_ref["loss/pref"] != pytest.approx(LOG2, abs=1e-3)


def test_reference_free_terms_do_not_depend_on_the_reference_and_refuse_a_trust_region():
    policy = _policy(0)
    config = PrefineConfig(implicit_reward="logp", margin_clip=0.0)
    losses = []
    for reference in (_policy(1), _policy(2)):
        _, metrics = prefine_loss(policy, reference, _batch(reference), config, torch.Generator().manual_seed(1))
        losses.append((metrics["loss/pref"], metrics["loss/dispref"], metrics["pref/margin"]))
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)
    _, with_ref = prefine_loss(policy, _policy(1), _batch(_policy(1)), PrefineConfig(margin_clip=0.0), torch.Generator().manual_seed(1))
    assert with_ref["loss/pref"] != pytest.approx(losses[0][0], abs=1e-4)
    with pytest.raises(ValueError, match="reference_sync_every"):
        PrefineConfig(implicit_reward="logp", reference_sync_every=100)


def test_gaussian_kl_hand_value():
    one = torch.ones(1)
    assert gaussian_kl(torch.zeros(1), one, one, one).item() == pytest.approx(0.5)
    assert gaussian_kl(torch.zeros(1), one, torch.zeros(1), 2 * one).item() == pytest.approx(math.log(2) + 1 / 8 - 0.5)


def _train(config, batch, reference, steps=50):
    policy = copy.deepcopy(reference)
    opt = torch.optim.SGD(policy.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        loss, _ = prefine_loss(policy, reference, batch, config, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return policy


def test_gradient_moves_probability_towards_preferred_and_away_from_dispreferred():
    reference = _policy()
    batch = _batch(reference)
    before_pos, before_neg = batch.pos_ref.sum().item(), batch.neg_ref.sum().item()
    only_pref = PrefineConfig(pref_weight=1.0, dispref_weight=0.0, bc_weight=0.0, beta=0.5)
    policy = _train(only_pref, batch, reference)
    with torch.no_grad():
        assert policy.log_prob(batch.pos_obs, batch.pos_act).sum().item() > before_pos + 1.0
    only_dispref = PrefineConfig(pref_weight=0.0, dispref_weight=1.0, bc_weight=0.0, beta=0.5, margin_clip=0.0)
    policy = _train(only_dispref, batch, reference)
    with torch.no_grad():
        assert policy.log_prob(batch.neg_obs, batch.neg_act).sum().item() < before_neg - 1.0


def test_a_nearest_winner_target_moves_the_mean_from_the_loser_action_towards_the_target():
    """With the policy's own sample as the contrast the D⁻ term mostly widens π at its mode; with a given
    safe action as the contrast it moves the mean there (the point of dispref_target='nearest_winner')."""
    reference = _policy()
    batch = _batch(reference)
    with torch.no_grad():  # the loser acted as π_ref's mode; the target is another action at the same states
        loser = torch.tanh(reference.distribution(batch.neg_obs)[0])
        batch = batch._replace(neg_act=loser, neg_ref=reference.log_prob(batch.neg_obs, loser))
    target = loser * 0.2 + 0.5
    only_dispref = dict(pref_weight=0.0, dispref_weight=1.0, bc_weight=0.0, beta=0.5, margin_clip=0.0)
    toward = _train(PrefineConfig(**only_dispref, dispref_target="nearest_winner"), batch._replace(neg_target=target), reference)
    sampled = _train(PrefineConfig(**only_dispref), batch, reference)
    with torch.no_grad():
        gap = lambda p: (torch.tanh(p.distribution(batch.neg_obs)[0]) - target).abs().mean().item()  # noqa: E731
        assert gap(toward) < 0.6 * gap(reference)
        assert gap(sampled) > 0.8 * gap(reference)
        assert toward.log_prob(batch.neg_obs, target).sum() > reference.log_prob(batch.neg_obs, target).sum() + 1.0


def test_trajectory_dpo_raises_the_winner_over_the_loser():
    reference = _policy()
    batch = _batch(reference)
    dpo = PrefineConfig(counterfactuals="none", bc_weight=0.0, beta=0.5, label_sets="pairs")
    policy = _train(dpo, batch, reference)
    with torch.no_grad():
        h_pos = (policy.log_prob(batch.pos_obs, batch.pos_act) - batch.pos_ref).sum().item()
        h_neg = (policy.log_prob(batch.neg_obs, batch.neg_act) - batch.neg_ref).sum().item()
    assert h_pos > h_neg


def test_bc_only_is_the_nll_of_the_winners():
    reference = _policy()
    batch = _batch(reference)
    bc = PrefineConfig(pref_weight=0.0, dispref_weight=0.0)
    loss, metrics = prefine_loss(reference, reference, batch, bc)
    assert bc.is_bc and "pref/accuracy" not in metrics
    assert loss.item() == pytest.approx(-reference.log_prob(batch.bc_obs, batch.bc_act).mean().item(), rel=1e-5)


@pytest.mark.parametrize("field,value", [("beta", 0.0), ("steps", 0), ("steps", 2.5), ("sigmoid", "token"),
                                         ("val_seed", 10_000), ("learning_rate", float("nan")),
                                         ("lr_schedule", "linear"), ("dispref_target", "nearest")])
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        PrefineConfig(**{field: value})


def test_a_nearest_winner_target_needs_the_policy_counterfactuals():
    with pytest.raises(ValueError, match="dispref_target.*counterfactuals='policy'"):
        PrefineConfig(dispref_target="nearest_winner", counterfactuals="mixed", label_sets="pairs")


def test_config_round_trip_and_field_listing():
    config = PrefineConfig(beta=0.1, steps=20)
    assert PrefineConfig.from_json('{"beta": 0.1, "steps": 20}') == config
    assert PrefineConfig.from_dict({"bc_weight": 1}).bc_weight == 1.0
    with pytest.raises(ValueError, match="unknown"):
        PrefineConfig.from_dict({"betta": 0.1})
    fields = {f["name"]: f for f in config_fields()}
    assert set(fields) == set(config.to_dict())
    assert all(f["help"] for f in fields.values())
    assert fields["beta"]["type"] == "float" and fields["beta"]["min"] > 0
    assert fields["sigmoid"]["choices"] == ["segment", "step"]


def test_validation_seeds_may_not_run_into_the_evaluation_seeds():
    """Only val_seed was bounded: val_seed 9 990 with 20 validation episodes chose checkpoints on seeds 10 000–10 009,
    the benchmark's evaluation episodes."""
    PrefineConfig(val_seed=9_990, eval_episodes=10)  # 9 990 … 9 999: below them
    with pytest.raises(ValueError, match=r"validation seeds 9990…10009 reach the evaluation seeds \(10000 and up\)"):
        PrefineConfig(val_seed=9_990, eval_episodes=20)


def test_a_clips_log_ratio_is_zero_against_itself_and_log_pi_without_a_reference():
    import numpy as np

    from conftest import make_policy
    from prefine_core.prefine import clip_log_ratio

    policy, other = make_policy(seed=0), make_policy(seed=1)
    obs = np.random.default_rng(0).normal(size=(5, policy.meta.obs_dim)).astype(np.float32)
    actions = np.random.default_rng(1).uniform(-0.9, 0.9, size=(5, policy.meta.act_dim)).astype(np.float32)
    assert clip_log_ratio(policy, policy, obs, actions).shape == (5,)
    assert torch.equal(clip_log_ratio(policy, policy, obs, actions), torch.zeros(5))
    logp = policy.log_prob(torch.as_tensor(obs), torch.as_tensor(actions))
    assert torch.equal(clip_log_ratio(policy, None, obs, actions), logp)
    assert torch.allclose(clip_log_ratio(policy, other, obs, actions),
                          logp - other.log_prob(torch.as_tensor(obs), torch.as_tensor(actions)))
