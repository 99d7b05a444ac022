"""Episodes -> the numbers of DESIGN §5.

Fixed seeds (evaluation seeds start at :data:`EVAL_SEED`; pools and labels never use them),
deterministic (mean) or stochastic actions, and per policy: mean ± std of return and cost, episode
length, cost per step, violation rate (cost > κ), catastrophic-failure rate (cost > 2κ or a fall),
fall rate, normalised reward and cost; against a reference: cost reduction % and reward retention.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from prefine_core.envs import SafetyTask
from prefine_core.policy import TanhGaussianPolicy
from prefine_core.rollout import Trajectory, collect

#: First evaluation seed. Pools, pairs and labels use seeds below it.
EVAL_SEED = 10_000
#: DSRL's cost thresholds for Safety-Gymnasium: every summary also gives its rates at each (keys of :func:`dsrl_keys`).
DSRL_COST_LIMITS = (20.0, 40.0, 80.0)


def dsrl_keys(limit: float) -> tuple[str, str, str]:
    """The summary's keys for violation rate, catastrophic rate and normalised cost at the DSRL threshold ``limit``."""
    return f"violation_rate_k{limit:g}", f"catastrophic_rate_k{limit:g}", f"normalized_cost_k{limit:g}"


def _at_limit(costs: np.ndarray, falls: np.ndarray, limit: float) -> tuple[float, float, float]:
    """Violation rate (cost > κ), catastrophic rate (cost > 2κ or a fall) and normalised cost C/κ at κ = ``limit``.
    C/κ is divided as Python floats: past the largest float it is inf, where numpy's division also printed an overflow
    warning on stderr (``evaluate --cost-limit 1e-320``)."""
    return float((costs > limit).mean()), float(((costs > 2 * limit) | falls).mean()), float(costs.mean()) / limit


def summarize(episodes: list[Trajectory], cost_limit: float, return_range: tuple[float, float] | None = None) -> dict:
    """Aggregate episodes into the DESIGN §5 metrics."""
    if not episodes:
        raise ValueError("no episodes to summarise")
    if cost_limit <= 0:
        raise ValueError(f"cost_limit must be positive, got {cost_limit}")
    returns = np.array([e.total_return for e in episodes])
    costs = np.array([e.total_cost for e in episodes])
    lengths = np.array([e.length for e in episodes])
    falls = np.array([e.fell for e in episodes])
    violation, catastrophic, normalized = _at_limit(costs, falls, cost_limit)
    result = {
        "episodes": len(episodes),
        "return_mean": float(returns.mean()), "return_std": float(returns.std()),
        "cost_mean": float(costs.mean()), "cost_std": float(costs.std()),
        "length_mean": float(lengths.mean()),
        "cost_per_step": float(costs.sum() / max(lengths.sum(), 1)),
        "violation_rate": violation, "catastrophic_rate": catastrophic,
        "fall_rate": float(falls.mean()),
        "cost_limit": float(cost_limit),
        "normalized_cost": normalized,
        **{key: value for limit in DSRL_COST_LIMITS
           for key, value in zip(dsrl_keys(limit), _at_limit(costs, falls, limit))},
        "returns": returns.tolist(), "costs": costs.tolist(), "lengths": lengths.tolist(),
    }
    if return_range is not None:
        low, high = return_range
        result["normalized_return"] = float((returns.mean() - low) / (high - low)) if high != low else float("nan")
    return result


def evaluate_policy(
    policy: TanhGaussianPolicy,
    task_id: str | None = None,
    episodes: int = 10,
    seed: int = EVAL_SEED,
    cost_limit: float = 25.0,
    deterministic: bool = True,
    return_range: tuple[float, float] | None = None,
    on_episode: Callable[[int, Trajectory], None] | None = None,
) -> dict:
    """Run ``episodes`` seeded episodes (seeds seed, seed+1, …) and summarise them."""
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    task_id = task_id or policy.meta.task_id
    runs = []
    with SafetyTask(task_id) as task:
        for i in range(episodes):
            runs.append(collect(policy, task, seed=seed + i, deterministic=deterministic))
            if on_episode:
                on_episode(i + 1, runs[-1])
    return {**summarize(runs, cost_limit, return_range), "task_id": task_id, "seed": seed, "deterministic": deterministic}


def compare(candidate: dict, reference: dict, lagrangian: dict | None = None) -> dict:
    """Cost reduction % and reward retention of ``candidate`` against ``reference`` (and R_lag)."""
    ref_cost, ref_return = reference["cost_mean"], reference["return_mean"]
    result = {
        "cost_reduction_pct": 100.0 * (ref_cost - candidate["cost_mean"]) / ref_cost if ref_cost else float("nan"),
        "reward_retention": candidate["return_mean"] / ref_return if ref_return else float("nan"),
        "length_change": candidate["length_mean"] - reference["length_mean"],
        "fall_rate_change": candidate.get("fall_rate", 0.0) - reference.get("fall_rate", 0.0),
    }
    if lagrangian is not None and lagrangian.get("return_mean"):
        result["reward_retention_vs_lagrangian"] = candidate["return_mean"] / lagrangian["return_mean"]
    return result
