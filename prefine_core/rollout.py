"""Seeded trajectories of a policy in a task, and their open-format array files.

Same policy + task + seed + sampling settings -> the same arrays (the env is reset with the seed,
stochastic actions draw from ``numpy.random.default_rng(seed)``). Trajectories are saved as
``.npz`` files (no pickle) addressed by id.
"""
from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prefine_core.files import atomic_path
from prefine_core.envs import MAX_SEED, SafetyTask, can_fall
from prefine_core.policy import TanhGaussianPolicy, check_compatible

_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


@dataclass(frozen=True)
class Trajectory:
    """One episode, or one fixed-length window of an episode.

    ``obs[t]`` is the observation at which ``actions[t]`` was taken; arrays share length T.
    """

    task_id: str
    obs: np.ndarray  # (T, obs_dim) float32
    actions: np.ndarray  # (T, act_dim) float32 in [-1, 1]
    rewards: np.ndarray  # (T,) float32
    costs: np.ndarray  # (T,) float32
    terminated: bool
    """The episode ended in a terminal state (for Hopper/Walker/Ant: the robot fell)."""
    truncated: bool
    """The episode was cut by the time limit (or the window ends before the episode does)."""
    seed: int | None = None
    constraint_costs: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (T,)
    start: int = 0
    """Index of the first step within its episode (non-zero for windows)."""

    def __post_init__(self):
        n = len(self.actions)
        arrays = {"obs": self.obs, "actions": self.actions, "rewards": self.rewards, "costs": self.costs,
                  **{f"constraint cost {name!r}": values for name, values in self.constraint_costs.items()}}
        for name, values in arrays.items():  # strings, objects or complex numbers are not steps of a task
            if not isinstance(values, np.ndarray) or values.dtype.kind not in "fiu":
                raise ValueError(f"{name} must be an array of real numbers, got {getattr(values, 'dtype', type(values).__name__)}")
        if self.obs.ndim != 2 or self.actions.ndim != 2:
            raise ValueError(f"obs and actions must be 2-D, got shapes {self.obs.shape} and {self.actions.shape}")
        for name, values in arrays.items():
            if name not in ("obs", "actions") and values.ndim != 1:
                raise ValueError(f"{name} must hold one number per step (shape ({n},)), got shape {values.shape}")
            if len(values) != n:
                raise ValueError(f"{name} has length {len(values)}, actions has {n}")
        if n and (np.abs(self.actions) > 1.0 + 1e-5).any():
            raise ValueError("actions must lie in [-1, 1]")
        for name, values in arrays.items():
            if not np.isfinite(values).all():
                raise ValueError(f"{name} holds non-finite values")
            if name not in ("obs", "actions", "rewards") and (values < 0).any():  # Safety-Gymnasium costs are ≥ 0
                raise ValueError(f"{name} holds negative values; a cost is 0 or more per step")
            with np.errstate(over="ignore"):  # an overflowing sum is what is checked here, not a warning
                total = values.sum()
            if name in ("rewards", "costs") and not np.isfinite(total):
                raise ValueError(f"{name} add up to more than a number can hold (values up to {np.abs(values).max():.3g})")
        if self.seed is not None and (isinstance(self.seed, bool) or not 0 <= self.seed <= MAX_SEED):
            raise ValueError(f"seed must be a whole number from 0 to {MAX_SEED}, got {self.seed!r}")
        if isinstance(self.start, bool) or not 0 <= self.start <= MAX_SEED:
            raise ValueError(f"start (the clip's first step in its episode) must be from 0 to {MAX_SEED}, got {self.start!r}")

    @property
    def length(self) -> int:
        return len(self.actions)

    @property
    def total_return(self) -> float:
        return float(self.rewards.sum())

    @property
    def total_cost(self) -> float:
        return float(self.costs.sum())

    @property
    def fell(self) -> bool:
        """A catastrophic early termination (the robot fell), not a time-limit cut."""
        return bool(self.terminated) and can_fall(self.task_id)

    def window(self, start: int, length: int) -> "Trajectory":
        """Steps [start, start+length) as a trajectory; it keeps ``terminated`` only if it holds the end."""
        stop = min(start + length, self.length)
        if not 0 <= start < stop:
            raise ValueError(f"window start {start} out of range for length {self.length}")
        holds_end = stop == self.length
        return Trajectory(
            task_id=self.task_id, obs=self.obs[start:stop], actions=self.actions[start:stop],
            rewards=self.rewards[start:stop], costs=self.costs[start:stop],
            terminated=self.terminated and holds_end, truncated=(not holds_end) or self.truncated,
            seed=self.seed, start=self.start + start,
            constraint_costs={k: v[start:stop] for k, v in self.constraint_costs.items()},
        )


def collect(
    policy: TanhGaussianPolicy,
    task: SafetyTask,
    seed: int,
    deterministic: bool = False,
    temperature: float = 1.0,
    max_steps: int | None = None,
    on_frame=None,
    frame_steps: tuple[int, int | None] = (0, None),
) -> Trajectory:
    """Roll out one episode (or ``max_steps`` steps of it).

    ``on_frame(frame, step_index)`` is called with each rendered frame when the task renders,
    starting with the frame after reset; only steps ``low ≤ step_index < high`` of ``frame_steps = (low, high)``
    are rendered (a window of a long episode: rendering every frame before it cost more than the window itself).
    """
    check_compatible(policy, task)
    rng = np.random.default_rng(seed)
    obs = task.reset(seed=seed)
    limit = min(max_steps or task.max_episode_steps, task.max_episode_steps)
    observations, actions, rewards, costs = [], [], [], []
    per_constraint: dict[str, list[float]] = {}
    terminated = truncated = False
    low, high = frame_steps
    wanted = lambda step: on_frame is not None and low <= step and (high is None or step < high)  # noqa: E731
    if wanted(0):
        on_frame(task.render(), 0)
    for t in range(limit):
        action = policy.act(obs, deterministic=deterministic, rng=rng, temperature=temperature)
        step = task.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(step.reward)
        costs.append(step.cost)
        for name, value in step.constraint_costs.items():
            per_constraint.setdefault(name, [0.0] * t).append(value)
        if wanted(t + 1):
            on_frame(task.render(), t + 1)
        obs = step.obs
        terminated, truncated = step.terminated, step.truncated
        if terminated or truncated:
            break
    truncated = truncated or not terminated
    return Trajectory(
        task_id=task.task_id,
        obs=np.asarray(observations, dtype=np.float32).reshape(len(actions), task.obs_dim),
        actions=np.asarray(actions, dtype=np.float32).reshape(len(actions), task.act_dim),
        rewards=np.asarray(rewards, dtype=np.float32),
        costs=np.asarray(costs, dtype=np.float32),
        terminated=terminated, truncated=truncated, seed=seed,
        constraint_costs={k: np.asarray(v, dtype=np.float32) for k, v in per_constraint.items()},
    )


def _check_id(trajectory_id: str) -> str:
    if not isinstance(trajectory_id, str) or not _ID_PATTERN.match(trajectory_id) or trajectory_id.startswith("."):
        raise ValueError(f"invalid trajectory id {trajectory_id!r}: use letters, digits, '_', '-', '.'")
    return trajectory_id


def trajectory_path(folder: str | os.PathLike, trajectory_id: str) -> Path:
    return Path(folder) / f"{_check_id(trajectory_id)}.npz"


def save_trajectory(trajectory: Trajectory, folder: str | os.PathLike, trajectory_id: str) -> Path:
    """Write ``<folder>/<id>.npz`` atomically; returns its path."""
    path = trajectory_path(folder, trajectory_id)
    arrays = {
        "obs": trajectory.obs, "actions": trajectory.actions, "rewards": trajectory.rewards,
        "costs": trajectory.costs, "terminated": np.array(trajectory.terminated),
        "truncated": np.array(trajectory.truncated), "task_id": np.array(trajectory.task_id),
        "seed": np.array(-1 if trajectory.seed is None else trajectory.seed), "start": np.array(trajectory.start),
    }
    arrays.update({f"constraint/{k}": v for k, v in trajectory.constraint_costs.items()})
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)
    return path


def load_trajectory(path: str | os.PathLike) -> Trajectory:
    """Read a trajectory file; never unpickles (``allow_pickle=False``)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            seed = int(data["seed"])
            return Trajectory(
                task_id=str(data["task_id"]), obs=data["obs"], actions=data["actions"],
                rewards=data["rewards"], costs=data["costs"], terminated=bool(data["terminated"]),
                truncated=bool(data["truncated"]), seed=None if seed < 0 else seed, start=int(data["start"]),
                constraint_costs={k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("constraint/")},
            )
    except (OSError, KeyError, ValueError, TypeError, OverflowError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path.name} is not a readable trajectory file: {exc}") from None
