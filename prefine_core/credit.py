"""Per-step credit from clip labels: a step cost learned from the preferences themselves.

A label says which of two clips was safer, not at which steps the other one was unsafe. The trajectory-level
terms therefore push on every step of a loser's segment, the unsafe ones and the harmless ones alike, and the BC
anchor copies every step of a winner, including the few unsafe ones a winner that beat a worse clip still had.
This module fits a step-cost model ĉ(s, a) ≥ 0 to the same labels by Bradley–Terry on clip sums, as
preference-based reward learning does (Christiano et al. 2017), with a learned penalty for a clip that ended in a
fall (the teacher ranks a fall below any clip that did not fall):

    P(winner safer than loser) = σ( Ĉ(loser) − Ĉ(winner) ),   Ĉ(τ) = Σ_t ĉ(s_t, a_t) + b·[τ fell]

and places each step between the labelled steps that look safest and the ones that look most unsafe:

    p_t = clip( (ĉ(s_t, a_t) − q₅) / (q₉₅ − q₅), 0, 1 ),   q: percentiles of ĉ over every labelled step.

Labels fix ĉ only up to a scale and, for clips of equal length, an added constant per step (Bradley–Terry sees
differences of sums), so p is a relative unsafety score, not a calibrated probability; the percentiles make it
independent of both. The fine-tune (``PrefineConfig.step_credit = "learned"``) weights winners' steps by 1 − p_t and
losers' steps by p_t, each set's weights divided by their mean over its real steps: credit moves between steps, the
terms' total weight stays. No true cost is read here: only the labels, the logged states and actions and whether a
clip fell.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prefine_core.rollout import Trajectory

HIDDEN = 64
FIT_STEPS = 500
PAIRS_PER_STEP = 32
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-4


class StepCost(nn.Module):
    """ĉ(s, a) ≥ 0 on standardised (observation, action) features, and the fall penalty b ≥ 0."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.net = nn.Sequential(nn.Linear(len(mean), HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN), nn.Tanh(),
                                 nn.Linear(HIDDEN, 1))
        self.fall = nn.Parameter(torch.zeros(()))
        self.register_buffer("low", torch.zeros(()))  # q₅ and q₉₅ of ĉ over the labelled steps, set by the fit
        self.register_buffer("high", torch.ones(()))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(…, obs_dim + act_dim) -> (…,) step costs ≥ 0."""
        return F.softplus(self.net((features - self.mean) / self.std).squeeze(-1))

    def fall_penalty(self) -> torch.Tensor:
        return F.softplus(self.fall)


def _features(clip: Trajectory) -> np.ndarray:
    return np.concatenate([clip.obs, clip.actions], axis=1).astype(np.float32)  # (T, obs_dim + act_dim)


def _padded(clips: Sequence[Trajectory], width: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, W, d) features, (N, W) mask of real steps, (N,) 1.0 where the clip ended in a fall; W = ``width`` (at
    least the longest clip's length)."""
    width = width or max(c.length for c in clips)
    dim = clips[0].obs.shape[1] + clips[0].actions.shape[1]
    features, mask = torch.zeros(len(clips), width, dim), torch.zeros(len(clips), width)
    for i, clip in enumerate(clips):
        features[i, : clip.length] = torch.as_tensor(_features(clip))
        mask[i, : clip.length] = 1.0
    fell = torch.tensor([float(c.terminated) for c in clips])
    return features, mask, fell


def clip_costs(model: StepCost, features: torch.Tensor, mask: torch.Tensor, fell: torch.Tensor) -> torch.Tensor:
    """(N, W, d), (N, W), (N,) -> (N,) Ĉ(τ) = Σ_t ĉ + b·fell."""
    return (model(features) * mask).sum(-1) + model.fall_penalty() * fell


def fit_step_cost(pairs: Sequence[tuple[Trajectory, Trajectory]], seed: int = 0) -> StepCost:
    """Fit ĉ to (winner, loser) pairs: Adam on the Bradley–Terry loss, minibatches of pairs, a fixed number of steps."""
    if not pairs:
        raise ValueError("fitting a step cost needs at least one decided pair")
    width = max(c.length for pair in pairs for c in pair)
    winners, losers = _padded([w for w, _ in pairs], width), _padded([l for _, l in pairs], width)
    real = torch.cat([winners[0][winners[1] > 0], losers[0][losers[1] > 0]])  # (steps, d)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():  # the caller's global RNG stream is left as it was
        torch.manual_seed(seed)
        model = StepCost(real.mean(0), real.std(0).clamp(min=1e-6))
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    for _ in range(FIT_STEPS):
        idx = torch.randint(0, len(pairs), (min(PAIRS_PER_STEP, len(pairs)),), generator=generator)
        c_win = clip_costs(model, *(part[idx] for part in winners))
        c_lose = clip_costs(model, *(part[idx] for part in losers))
        loss = -F.logsigmoid(c_lose - c_win).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval().requires_grad_(False)
    with torch.no_grad():
        step_costs = model(real)
        model.low.copy_(torch.quantile(step_costs, 0.05))
        model.high.copy_(torch.quantile(step_costs, 0.95).clamp(min=model.low + 1e-6))
    return model


def unsafe_score(model: StepCost, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """(…, obs_dim), (…, act_dim) -> (…,) p ∈ [0, 1]: 0 as safe-looking as the safest labelled steps, 1 as unsafe as
    the most unsafe ones (the module's percentile scale)."""
    with torch.no_grad():
        step_cost = model(torch.cat([obs, act], dim=-1))
        return ((step_cost - model.low) / (model.high - model.low)).clamp(0.0, 1.0)


def step_weights(probability: torch.Tensor, mask: torch.Tensor, unsafe: bool) -> torch.Tensor:
    """(N, W) p and real-step mask -> (N, W) weights p (``unsafe``) or 1 − p, divided by their mean over real steps
    (padding gets 0)."""
    weight = (probability if unsafe else 1.0 - probability) * mask
    return weight / (weight.sum() / mask.sum()).clamp(min=1e-8)


def label_accuracy(model: StepCost, pairs: Sequence[tuple[Trajectory, Trajectory]]) -> float:
    """Fraction of pairs whose winner the model gives the lower clip cost (a diagnostic, e.g. on held-out pairs)."""
    with torch.no_grad():
        win = clip_costs(model, *_padded([w for w, _ in pairs]))
        lose = clip_costs(model, *_padded([l for _, l in pairs]))
    return float((win < lose).float().mean())
