"""Compact PPO (CleanRL-style) that produces reference and behaviour policies.

* ``cost_penalty = 0``: the reward-only reference (fast, unsafe: the product's premise).
* ``cost_penalty = w > 0``: trains on ``reward − w·cost``, a slower, safer behaviour policy for
  the behaviour pool (DESIGN §4, lesson 2).
* ``cost_limit = K``: PPO-Lagrangian — the penalty is a multiplier learned so that the mean
  episode cost approaches K; the retraining baseline of the benchmark (DESIGN §5).

The actor is :class:`prefine_core.policy.TanhGaussianPolicy`, so what PPO trains is exactly
what gets shipped. PPO's ratio uses the pre-tanh sample u; the tanh Jacobian cancels in it.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from prefine_core.envs import MAX_SEED, SafetyTask, validate_task_id
from prefine_core.policy import LOG_STD_MAX, LOG_STD_MIN, PolicyMeta, TanhGaussianPolicy, load_policy, mlp, save_policy

#: Environment i of a run with seed s is reset with seed s·_SEED_STRIDE + i.
_SEED_STRIDE = 1000
#: The most environment steps one PPO run takes: ten times the Hopper's PPO-Lagrangian baseline (10M steps, 46–65
#: minutes on one core). A count past any run (``pretrain --steps 99999999999999999999999``) started one that never
#: ended.
MAX_TOTAL_STEPS = 100_000_000


def _check(name: str, value: float, in_range: bool, what: str) -> None:
    """A ValueError naming the field unless ``value`` is finite and ``in_range`` (NaN fails every comparison)."""
    if not (math.isfinite(value) and in_range):
        raise ValueError(f"{name} must be {what}, got {value}")


@dataclass
class PPOConfig:
    task_id: str = "SafetyHalfCheetahVelocity-v1"
    """Safety-Gymnasium task id."""
    total_steps: int = 300_000
    """Environment steps in all."""
    seed: int = 0
    """Seeds python, numpy, torch and the environments."""
    cost_penalty: float = 0.0
    """Fixed w in reward − w·cost (0 = reward only)."""
    cost_limit: float | None = None
    """If set, learn the penalty as a Lagrange multiplier so that episode cost approaches this."""
    num_envs: int = 8
    """Environments stepped side by side."""
    rollout_steps: int = 256
    """Steps per environment between updates."""
    learning_rate: float = 3e-4
    """Adam step size (annealed linearly to 0)."""
    gamma: float = 0.99
    """Discount."""
    gae_lambda: float = 0.95
    """GAE λ."""
    epochs: int = 10
    """Passes over each batch."""
    minibatches: int = 32
    """Minibatches per pass."""
    clip: float = 0.2
    """PPO ratio clip."""
    vf_coef: float = 0.5
    """Value-loss weight."""
    max_grad_norm: float = 0.5
    """Gradient-norm clip."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Actor and critic hidden layers."""
    snapshot_every: int = 0
    """Save a snapshot every this many steps (0 = none)."""
    lagrange_lr: float = 0.05
    """Step size of the Lagrange multiplier (with cost_limit)."""
    penalty_floor: float | None = None
    """Lower bound on the reward of a step that incurred cost. Where falling ends the episode, a
    negative step reward teaches the robot to fall on purpose (the penalty stops with the episode);
    a floor of 0 removes that incentive, so the penalty can only teach it to slow down."""
    init_log_std: float = -0.5
    """Initial log σ of the actor (0 explores more, e.g. to find a slow gait)."""
    speed_cap: float | None = None
    """Velocity tasks: the forward term of the training reward peaks at this speed (m/s) — v up to
    the cap, then 2·cap − v, never below 0 — so the best pace is the cap and every step alive
    still earns the healthy bonus: unlike a cost penalty, nothing rewards falling on purpose.
    The pool's slow-but-upright Hopper is made this way (a behaviour policy, not a baseline)."""
    init_from: str | None = None
    """Start the actor (and its observation statistics) from this checkpoint, e.g. to slow a reference down."""
    critic_warmup: int = 0
    """Updates at the start that train only the critic (the actor is held): fine-tuning a good policy with a
    fresh critic would otherwise follow the untrained critic's noise away from it."""

    def __post_init__(self):
        validate_task_id(self.task_id)
        if not 1 <= self.total_steps <= MAX_TOTAL_STEPS:
            raise ValueError(f"total_steps must be from 1 to {MAX_TOTAL_STEPS}, got {self.total_steps}")
        # NaN and ±inf once passed these checks and failed only after training, in a tensor error
        _check("cost_penalty", self.cost_penalty, self.cost_penalty >= 0, "a finite number ≥ 0")
        if self.cost_limit is not None:
            _check("cost_limit", self.cost_limit, self.cost_limit >= 0, "a finite episode cost ≥ 0")
        if self.penalty_floor is not None:  # a reward on the task's scale, either sign: finite is all
            _check("penalty_floor", self.penalty_floor, True, "a finite reward per step (0: falling never pays)")
        if self.speed_cap is not None:
            _check("speed_cap", self.speed_cap, self.speed_cap > 0, "a positive speed in m/s")
        if self.speed_cap is not None and "Velocity" not in self.task_id:
            raise ValueError(f"speed_cap needs a velocity task; {self.task_id} reports no x velocity")
        _check("lagrange_lr", self.lagrange_lr, self.lagrange_lr > 0, "positive and finite")
        _check("learning_rate", self.learning_rate, self.learning_rate > 0, "positive and finite")
        _check("gamma", self.gamma, 0 < self.gamma <= 1, "above 0 and at most 1")
        _check("gae_lambda", self.gae_lambda, 0 <= self.gae_lambda <= 1, "from 0 to 1")
        _check("clip", self.clip, self.clip > 0, "positive and finite")
        _check("vf_coef", self.vf_coef, self.vf_coef >= 0, "a finite number ≥ 0")
        _check("max_grad_norm", self.max_grad_norm, self.max_grad_norm > 0, "positive and finite")
        if self.critic_warmup < 0:
            raise ValueError(f"critic_warmup must be ≥ 0 updates, got {self.critic_warmup}")
        if self.num_envs <= 0 or self.rollout_steps <= 0:
            raise ValueError("num_envs and rollout_steps must be positive")
        if not LOG_STD_MIN <= self.init_log_std <= LOG_STD_MAX:
            raise ValueError(f"init_log_std must be from {LOG_STD_MIN:g} to {LOG_STD_MAX:g}, got {self.init_log_std}")
        largest_seed = (MAX_SEED - (self.num_envs - 1)) // _SEED_STRIDE
        if not 0 <= self.seed <= largest_seed:
            raise ValueError(f"seed must be from 0 to {largest_seed} (environment i is reset with seed·{_SEED_STRIDE} "
                             f"+ i), got {self.seed}")
        self.hidden_sizes = tuple(self.hidden_sizes)

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.rollout_steps


class RunningMeanStd:
    """Running mean and variance (parallel algorithm), for observations and returns."""

    def __init__(self, shape=()):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4

    def update(self, x: np.ndarray) -> None:
        batch_mean, batch_var, n = x.mean(0), x.var(0), x.shape[0]
        delta, total = batch_mean - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total
        self.count = total


def gae(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, next_value: np.ndarray, gamma: float,
        lam: float) -> np.ndarray:
    """Generalised advantage estimates (Schulman et al. 2016) of a rollout of T steps in N environments.

    rewards, values, dones: (T, N), ``dones[t]`` 1.0 where step t ended its episode (no bootstrapping past it);
    next_value: (N,) the value of the state after the last step. Returns (T, N):
    A_t = δ_t + γλ(1 − done_t) A_{t+1}, with δ_t = r_t + γ(1 − done_t) V_{t+1} − V_t.
    """
    steps = len(rewards)
    advantages = np.zeros_like(rewards)
    last = np.zeros(rewards.shape[1:], np.float32)
    for t in reversed(range(steps)):
        nxt = next_value if t == steps - 1 else values[t + 1]
        nonterminal = 1.0 - dones[t]
        delta = rewards[t] + gamma * nxt * nonterminal - values[t]
        last = delta + gamma * lam * nonterminal * last
        advantages[t] = last
    return advantages


def running_returns(rewards: np.ndarray, dones: np.ndarray, carried: np.ndarray, carried_ended: np.ndarray,
                    gamma: float) -> np.ndarray:
    """The discounted return run forward through a rollout of T steps in N environments, whose running std scales
    PPO's rewards: G_t = γ(1 − done_{t−1}) G_{t−1} + r_t. rewards, dones: (T, N); ``carried`` (N,) is G of the last
    rollout's last step, ``carried_ended`` (N,) its done (an episode that ended there starts this rollout afresh).
    Returns (T, N); the next rollout carries its last row and ``dones[-1]``."""
    returns = np.zeros(rewards.shape, np.float64)
    running, ended = carried, carried_ended
    for t in range(len(rewards)):
        running = running * gamma * (1 - ended) + rewards[t]
        returns[t], ended = running, dones[t]
    return returns


#: A step cost in place of the environment's: (obs (n, obs_dim), actions (n, act_dim) in [-1, 1], fell (n,)) -> (n,).
StepCostFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def train_ppo(config: PPOConfig, out: str | Path, on_progress: Callable[[dict], None] | None = None,
              step_cost: StepCostFn | None = None) -> dict:
    """Train, save the final policy to ``out`` (snapshots beside it); returns a summary.

    With ``step_cost`` the penalty and the Lagrangian read that cost (e.g. one learned from labels) instead of the
    environment's; the summary's ``cost_mean`` stays the environment's, ``trained_cost_mean`` is the one trained on.
    """
    out = Path(out)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    envs = [SafetyTask(config.task_id) for _ in range(config.num_envs)]
    obs_dim, act_dim = envs[0].obs_dim, envs[0].act_dim
    meta = PolicyMeta(task_id=config.task_id, obs_dim=obs_dim, act_dim=act_dim, hidden_sizes=config.hidden_sizes)
    actor, critic = TanhGaussianPolicy(meta), mlp([obs_dim, *config.hidden_sizes, 1])
    obs_rms, ret_rms = RunningMeanStd((obs_dim,)), RunningMeanStd()
    with torch.no_grad():
        actor.log_std.fill_(config.init_log_std)
    if config.init_from:
        parent = load_policy(config.init_from, task_id=config.task_id)
        if parent.meta.hidden_sizes != config.hidden_sizes:
            raise ValueError(f"init_from has hidden sizes {parent.meta.hidden_sizes}, config asks for {config.hidden_sizes}")
        actor.load_state_dict(parent.state_dict())
        obs_rms.mean, obs_rms.var = parent.obs_mean.double().numpy(), parent.obs_var.double().numpy()
        obs_rms.count = 1e5  # trust the parent's statistics; new data moves them slowly
    params = list(actor.parameters()) + list(critic.parameters())
    optimizer = torch.optim.Adam(params, lr=config.learning_rate, eps=1e-5)
    discounted, ended = np.zeros(config.num_envs), np.zeros(config.num_envs)  # the reward scale's running return
    lagrange = config.cost_penalty

    n, steps = config.num_envs, config.rollout_steps
    obs = np.stack([env.reset(seed=config.seed * _SEED_STRIDE + i) for i, env in enumerate(envs)])
    ep_ret, ep_cost, ep_len, ep_trained = np.zeros(n), np.zeros(n), np.zeros(n, int), np.zeros(n)
    finished: list[tuple[float, float, int]] = []
    trained_costs: list[float] = []  # episode sums of the cost trained on
    updates = math.ceil(config.total_steps / config.batch_size)
    started, global_step = time.time(), 0
    summary: dict = {}

    def sync_normaliser():
        actor.obs_mean.copy_(torch.as_tensor(obs_rms.mean, dtype=torch.float32))
        actor.obs_var.copy_(torch.as_tensor(obs_rms.var, dtype=torch.float32))

    def export(path: Path, step: int):
        actor.meta = PolicyMeta(
            task_id=config.task_id, obs_dim=obs_dim, act_dim=act_dim, hidden_sizes=config.hidden_sizes,
            name=path.stem, parent=config.init_from, provenance={
                "algorithm": "ppo-lagrangian" if config.cost_limit is not None else "ppo",
                "steps": step, "seconds": round(time.time() - started, 1),
                "final_penalty": round(float(lagrange), 4), **_jsonable(asdict(config)),
            },
        )
        save_policy(actor, path)

    for update in range(1, updates + 1):
        frac = 1.0 - (update - 1) / updates
        optimizer.param_groups[0]["lr"] = frac * config.learning_rate
        b_obs = np.zeros((steps, n, obs_dim), np.float32)
        b_u = np.zeros((steps, n, act_dim), np.float32)
        b_logp = np.zeros((steps, n), np.float32)
        b_rew = np.zeros((steps, n), np.float32)
        b_done = np.zeros((steps, n), np.float32)
        b_val = np.zeros((steps, n), np.float32)
        b_cost = np.zeros((steps, n), np.float32)
        b_fell = np.zeros((steps, n), np.float32)
        for t in range(steps):
            obs_rms.update(obs)
            sync_normaliser()
            with torch.no_grad():
                # Kept normalised as the policy saw them: renormalised with the statistics of the rollout's end, the
                # update's ratio to these log-probabilities was not 1 before its first step (0.6–5.1 in a first
                # rollout, 9 % of the samples clipped already) and its critic's old values were of other inputs.
                normalized = actor.normalize(torch.as_tensor(obs, dtype=torch.float32))
                mean, std = actor.normalized_distribution(normalized)
                u = mean + std * torch.randn_like(mean)
                logp = torch.distributions.Normal(mean, std).log_prob(u).sum(-1)
                value = critic(normalized).squeeze(-1)
            actions = torch.tanh(u).numpy()
            b_obs[t], b_u[t], b_logp[t], b_val[t] = normalized.numpy(), u.numpy(), logp.numpy(), value.numpy()
            results = [env.step(actions[i]) for i, env in enumerate(envs)]
            b_fell[t] = [r.terminated for r in results]
            env_cost = np.array([r.cost for r in results], np.float32)
            b_cost[t] = env_cost if step_cost is None else step_cost(obs, actions, b_fell[t])
            for i, (env, step) in enumerate(zip(envs, results)):
                ep_ret[i] += step.reward
                ep_cost[i] += step.cost
                ep_trained[i] += b_cost[t, i]
                ep_len[i] += 1
                b_rew[t, i] = step.reward
                if config.speed_cap is not None:  # a velocity task (checked in PPOConfig): x velocity is reported
                    b_rew[t, i] -= speed_cap_penalty(step.forward_velocity, config.speed_cap)
                done = step.terminated or step.truncated
                # Bootstrapping through time-limit cuts is ignored, as in CleanRL.
                b_done[t, i] = float(done)
                if done:
                    finished.append((ep_ret[i], ep_cost[i], ep_len[i]))
                    trained_costs.append(ep_trained[i])
                    ep_ret[i] = ep_cost[i] = ep_len[i] = ep_trained[i] = 0
                    obs[i] = env.reset()
                else:
                    obs[i] = step.obs
            global_step += n

        shaped = b_rew - lagrange * b_cost
        if config.penalty_floor is not None:
            shaped = np.where(b_cost > 0, np.maximum(shaped, config.penalty_floor), shaped)
        run_forward = running_returns(shaped, b_done, discounted, ended, config.gamma)
        for row in run_forward:
            ret_rms.update(row)
        discounted, ended = run_forward[-1], b_done[-1]
        scaled = shaped / math.sqrt(ret_rms.var + 1e-8)
        with torch.no_grad():
            next_value = critic(actor.normalize(torch.as_tensor(obs, dtype=torch.float32))).squeeze(-1).numpy()
        advantages = gae(scaled, b_val, b_done, next_value, config.gamma, config.gae_lambda)
        returns = advantages + b_val

        flat = lambda x: torch.as_tensor(x.reshape(steps * n, *x.shape[2:]))  # noqa: E731
        f_obs, f_u, f_logp, f_adv, f_ret = map(flat, (b_obs, b_u, b_logp, advantages, returns))
        mb = max(1, config.batch_size // config.minibatches)
        clipped = []
        for _ in range(config.epochs):
            order = torch.randperm(config.batch_size)
            for start in range(0, config.batch_size, mb):
                idx = order[start:start + mb]
                mean, std = actor.normalized_distribution(f_obs[idx])
                new_logp = torch.distributions.Normal(mean, std).log_prob(f_u[idx]).sum(-1)
                ratio = (new_logp - f_logp[idx]).exp()
                clipped.append(((ratio - 1).abs() > config.clip).float().mean().item())
                adv = f_adv[idx]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - config.clip, 1 + config.clip)).mean()
                v_loss = 0.5 * (critic(f_obs[idx]).squeeze(-1) - f_ret[idx]).pow(2).mean()
                loss = config.vf_coef * v_loss + (pg_loss if update > config.critic_warmup else 0.0)
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()

        recent, recent_trained = finished[-20:], trained_costs[-20:]
        if config.cost_limit is not None and recent:
            mean_cost = float(np.mean(recent_trained))
            lagrange = max(0.0, lagrange + config.lagrange_lr * (mean_cost - config.cost_limit) / max(config.cost_limit, 1.0))
        summary = {
            "step": global_step,
            "episodes": len(finished),
            "return_mean": float(np.mean([r for r, _, _ in recent])) if recent else float("nan"),
            "cost_mean": float(np.mean([c for _, c, _ in recent])) if recent else float("nan"),
            "length_mean": float(np.mean([l for _, _, l in recent])) if recent else float("nan"),
            "trained_cost_mean": float(np.mean(recent_trained)) if recent else float("nan"),
            "penalty": float(lagrange),
            "clip_fraction": float(np.mean(clipped)),  # of the update's samples, their ratio clipped
            "seconds": time.time() - started,
        }
        if on_progress:
            on_progress(summary)
        if config.snapshot_every and (global_step // config.snapshot_every) > ((global_step - config.batch_size) // config.snapshot_every):
            export(out.with_name(f"{out.stem}_step{global_step}{out.suffix}"), global_step)

    export(out, global_step)
    for env in envs:
        env.close()
    return {**summary, "path": str(out)}


def speed_cap_penalty(velocity: float, cap: float) -> float:
    """What ``speed_cap`` takes off a step's reward: the forward term v becomes max(2·cap − v, 0) above the cap."""
    return 0.0 if velocity <= cap else min(2.0 * (velocity - cap), velocity)


def _jsonable(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
