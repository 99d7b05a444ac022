"""Shared fixtures: tiny real policies and tasks (no mocks of the environment or torch)."""
from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("MUJOCO_GL", "egl")

CHEETAH = "SafetyHalfCheetahVelocity-v1"
HOPPER = "SafetyHopperVelocity-v1"
CIRCLE = "SafetyPointCircle1-v0"


def make_policy(task_id: str = CHEETAH, seed: int = 0, **meta_fields):
    """A randomly initialised policy with the right sizes for ``task_id``."""
    from prefine_core.envs import SafetyTask
    from prefine_core.policy import PolicyMeta, TanhGaussianPolicy

    with SafetyTask(task_id) as task:
        obs_dim, act_dim = task.obs_dim, task.act_dim
    torch.manual_seed(seed)
    return TanhGaussianPolicy(PolicyMeta(task_id=task_id, obs_dim=obs_dim, act_dim=act_dim, **meta_fields))


@pytest.fixture
def cheetah_policy():
    return make_policy(CHEETAH)


@pytest.fixture
def policy_file(tmp_path, cheetah_policy):
    from prefine_core.policy import save_policy

    return save_policy(cheetah_policy, tmp_path / "policy.safetensors")
