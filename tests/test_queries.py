"""Query strategies: what they choose, that they record why, and that they never see the true cost."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import CHEETAH, make_policy
from store_backends import cheetah_episode, windows  # noqa: F401


def _candidates(episode, n=6, length=20):
    from prefine_core.queries import Candidate

    return [Candidate(id=i + 1, source="s", policy_id=None, seed=0, start=w.start, temperature=1.0, obs=w.obs,
                      actions=w.actions, fell=w.fell) for i, w in enumerate(windows(episode, n, length))]


def test_candidates_carry_no_reward_and_no_cost():
    from prefine_core.queries import Candidate

    names = {f.name for f in dataclasses.fields(Candidate)}
    assert not names & {"rewards", "costs", "total_cost", "total_return", "constraint_costs"}


def test_random_pairs_are_new_and_sides_shuffled(cheetah_episode):
    from prefine_core.queries import random_pairs

    existing = {(1, 2)}
    proposals = random_pairs(_candidates(cheetah_episode), 14, np.random.default_rng(0), existing)
    keys = [tuple(sorted((p.left_id, p.right_id))) for p in proposals]
    assert len(proposals) == 14 and (1, 2) not in keys and len(set(keys)) == 14  # 15 pairs, 1 already asked
    assert any(p.left_id > p.right_id for p in proposals) and any(p.left_id < p.right_id for p in proposals)


def test_diversity_picks_the_farthest_behaviour(cheetah_episode):
    from prefine_core.queries import Candidate, behaviour_features, diversity_pairs

    cands = _candidates(cheetah_episode, n=5)
    odd = cands[2]
    cands[2] = dataclasses.replace(odd, obs=odd.obs + 5.0, actions=-odd.actions)  # one clip behaves unlike the rest
    features = behaviour_features(cands)
    assert features.shape == (5, 2 * 17 + 2 * 6)
    (best,) = diversity_pairs(cands, 1, np.random.default_rng(0), set())
    assert odd.id in (best.left_id, best.right_id) and "differently" in best.reason
    many = diversity_pairs(cands, 10, np.random.default_rng(0), set(), max_uses=2)
    uses = np.bincount([i for p in many for i in (p.left_id, p.right_id)])
    assert len(many) == 5 and uses.max() <= 2  # 5 clips, each in at most 2 pairs


def test_uncertainty_prefers_pairs_the_ensemble_cannot_order(cheetah_episode):
    from prefine_core.queries import implicit_reward, uncertainty_pairs

    cands = _candidates(cheetah_episode, n=5)
    reference, tuned = make_policy(CHEETAH, seed=0), [make_policy(CHEETAH, seed=1), make_policy(CHEETAH, seed=2)]
    assert implicit_reward(reference, reference, cands[0]) == pytest.approx(0.0)
    proposals = uncertainty_pairs(cands, 10, np.random.default_rng(0), set(), tuned, reference, beta=0.05)
    scores = [p.score for p in proposals]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1.5 for s in scores)
    assert "over 2 model(s)" in proposals[0].reason
    with pytest.raises(ValueError, match="fine-tuned"):
        uncertainty_pairs(cands, 1, np.random.default_rng(0), set(), [], reference)


def test_ref_vs_ft_matches_seed_window_and_temperature(cheetah_episode):
    from prefine_core.queries import ref_vs_ft_pairs

    base = _candidates(cheetah_episode, n=4)
    refs = [dataclasses.replace(c, policy_id=10) for c in base[:2]]
    fts = [dataclasses.replace(c, id=c.id + 100, policy_id=20) for c in base[:2]]
    other = [dataclasses.replace(base[2], id=300, policy_id=20, seed=9)]  # no reference clip on seed 9
    proposals = ref_vs_ft_pairs(refs + fts + other, 5, np.random.default_rng(0), set(), 10, 20, "ft-1")
    assert sorted(tuple(sorted((p.left_id, p.right_id))) for p in proposals) == [(1, 101), (2, 102)]
    assert all("ft-1" in p.reason and "seed 0" in p.reason for p in proposals)
