"""Which pairs to ask about, and why — without ever reading the true cost.

A strategy sees a :class:`Candidate` per clip: what a labeller would see (observations, actions,
whether the robot fell) and where it came from (source, seed, window), never its reward or cost.
It returns :class:`Proposal`\\ s: two trajectory ids, a score (higher = more worth asking) and a
reason anyone watching can read, shown as "Pair 7 · <reason>" on the Label page, so each reason
says how the pair was picked ("picked at random from the pool"); the figures a researcher wants
follow in brackets. Sides are shuffled so that "left" carries no information.

* ``random``      uniform pairs: the unbiased baseline.
* ``diversity``   the farthest-apart clips in a behaviour feature space (per-dimension mean and
                  spread of observations and actions, standardised over the pool).
* ``uncertainty`` pairs on which the fine-tuned policies' implicit reward
                  h(τ) = Σ_t log π_θ(a_t|s_t) − log π_ref(a_t|s_t) (DESIGN §4, step 3) is least sure
                  which clip it prefers: the entropy of the mean Bradley–Terry probability
                  σ(β(h(τ_a) − h(τ_b))) over an ensemble of one or more fine-tuned policies, plus the
                  ensemble's spread.
* ``ref_vs_ft``   the reference and a fine-tuned policy on the same seed and window.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

STRATEGIES = ("random", "diversity", "uncertainty", "ref_vs_ft")


@dataclass(frozen=True)
class Candidate:
    """A clip as a strategy may see it: no reward, no cost."""

    id: int
    source: str
    policy_id: int | None
    seed: int | None
    start: int
    temperature: float | None
    obs: np.ndarray  # (T, obs_dim)
    actions: np.ndarray  # (T, act_dim)
    fell: bool


@dataclass(frozen=True)
class Proposal:
    left_id: int
    right_id: int
    score: float
    reason: str


def _key(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def _oriented(rng: np.random.Generator, a: int, b: int) -> tuple[int, int]:
    return (a, b) if rng.random() < 0.5 else (b, a)


def _pick_top(scored: list[tuple[float, int, int]], n: int, existing: set, max_uses: int) -> list[tuple[float, int, int]]:
    """Highest scores first, skipping pairs already asked and clips used ``max_uses`` times."""
    uses: dict[int, int] = {}
    chosen = []
    for score, a, b in sorted(scored, key=lambda s: -s[0]):
        if len(chosen) == n:
            break
        if _key(a, b) in existing or uses.get(a, 0) >= max_uses or uses.get(b, 0) >= max_uses:
            continue
        existing.add(_key(a, b))
        uses[a], uses[b] = uses.get(a, 0) + 1, uses.get(b, 0) + 1
        chosen.append((score, a, b))
    return chosen


def random_pairs(candidates: list[Candidate], n: int, rng: np.random.Generator, existing: set) -> list[Proposal]:
    ids = [c.id for c in candidates]
    all_pairs = [_key(a, b) for a, b in itertools.combinations(ids, 2) if _key(a, b) not in existing]
    order = rng.permutation(len(all_pairs))[:n]
    result = []
    for i in order:
        left, right = _oriented(rng, *all_pairs[i])
        existing.add(all_pairs[i])
        result.append(Proposal(left, right, 0.0, "picked at random from the pool"))
    return result


def behaviour_features(candidates: list[Candidate]) -> np.ndarray:
    """(N, F): per-dimension mean and std of observations and actions, z-scored over the candidates."""
    rows = [np.concatenate([c.obs.mean(0), c.obs.std(0), c.actions.mean(0), c.actions.std(0)]) for c in candidates]
    features = np.asarray(rows, dtype=np.float64)  # (N, 2·obs_dim + 2·act_dim)
    spread = features.std(0)
    return (features - features.mean(0)) / np.where(spread > 1e-8, spread, 1.0)


def _pairwise_distances(features: np.ndarray) -> np.ndarray:
    """(N, F) -> (N, N) Euclidean distances, without an (N, N, F) intermediate."""
    sq = (features**2).sum(1)  # (N,)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * features @ features.T, 0.0))  # (N, N)


def _upper_pairs(scores: np.ndarray, candidates: list[Candidate]) -> list[tuple[float, int, int]]:
    """(score, id_i, id_j) for every i < j of an (N, N) score matrix."""
    rows, cols = np.triu_indices(len(candidates), 1)
    ids = np.array([c.id for c in candidates])
    return list(zip(scores[rows, cols].tolist(), ids[rows].tolist(), ids[cols].tolist()))


def diversity_pairs(candidates: list[Candidate], n: int, rng: np.random.Generator, existing: set,
                    max_uses: int = 2) -> list[Proposal]:
    distances = _pairwise_distances(behaviour_features(candidates))
    upper = distances[np.triu_indices(len(candidates), 1)]
    result = []
    for score, a, b in _pick_top(_upper_pairs(distances, candidates), n, existing, max_uses):
        share = float((upper >= score).mean()) * 100
        left, right = _oriented(rng, a, b)
        result.append(Proposal(left, right, score, f"picked because the two clips behave very differently "
                                                   f"(distance {score:.1f}, top {max(share, 0.1):.1f}% of the pool)"))
    return result


@torch.no_grad()
def implicit_reward(policy, reference, candidate: Candidate) -> float:
    """h(τ) = Σ_t log π_θ(a_t|s_t) − log π_ref(a_t|s_t) over the clip."""
    from prefine_core.prefine import clip_log_ratio

    return float(clip_log_ratio(policy, reference, candidate.obs, candidate.actions).sum())


def uncertainty_pairs(candidates: list[Candidate], n: int, rng: np.random.Generator, existing: set,
                      finetuned: list, reference, beta: float = 0.05, max_uses: int = 2) -> list[Proposal]:
    if not finetuned:
        raise ValueError("strategy 'uncertainty' needs a fine-tuned policy: run a fine-tune first, or choose random or diversity")
    h = np.array([[implicit_reward(p, reference, c) for c in candidates] for p in finetuned])  # (K, N)
    margin = np.clip(beta * (h[:, :, None] - h[:, None, :]), -50, 50)  # (K, N, N)
    prob = 1.0 / (1.0 + np.exp(-margin))  # (K, N, N): P(i preferred to j) under model k
    mean = prob.mean(0)  # (N, N)
    q = np.clip(mean, 1e-12, 1 - 1e-12)
    entropy = -(q * np.log2(q) + (1 - q) * np.log2(1 - q))  # (N, N), bits
    scored = _upper_pairs(entropy + prob.std(0), candidates)
    index = {c.id: i for i, c in enumerate(candidates)}
    result = []
    for score, a, b in _pick_top(scored, n, existing, max_uses):
        left, right = _oriented(rng, a, b)
        p_left = float(mean[index[left], index[right]])
        result.append(Proposal(left, right, score, f"picked because the fine-tuned policy is unsure which clip "
                                                   f"it prefers (P(left) = {p_left:.2f} over "
                                                   f"{len(finetuned)} model(s))"))
    return result


def ref_vs_ft_pairs(candidates: list[Candidate], n: int, rng: np.random.Generator, existing: set,
                    reference_id: int, finetuned_id: int, finetuned_name: str = "fine-tuned") -> list[Proposal]:
    """Reference and fine-tuned clips with the same seed, window start and temperature."""
    def index(policy_id):
        return {(c.seed, c.start, c.temperature): c for c in candidates if c.policy_id == policy_id and c.seed is not None}

    refs, fts = index(reference_id), index(finetuned_id)
    keys = sorted(refs.keys() & fts.keys(), key=lambda k: (k[0], k[1], k[2] or 0.0))
    result = []
    for seed, start, temperature in keys:
        a, b = refs[(seed, start, temperature)].id, fts[(seed, start, temperature)].id
        if len(result) == n or _key(a, b) in existing:
            continue
        existing.add(_key(a, b))
        left, right = _oriented(rng, a, b)
        length = len(refs[(seed, start, temperature)].actions)
        result.append(Proposal(left, right, 0.0, f"picked to show before and after: the reference and "
                                                 f"{finetuned_name} on the same seed {seed}, "
                                                 f"steps {start}–{start + length}"))
    return result
