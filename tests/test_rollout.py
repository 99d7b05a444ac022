"""Seeded, reproducible rollouts and their open-format files."""
import numpy as np
import pytest

from prefine_core.envs import SafetyTask
from prefine_core.policy import CheckpointError
from prefine_core.rollout import Trajectory, collect, load_trajectory, save_trajectory
from tests.conftest import CHEETAH, CIRCLE, HOPPER, make_policy


def _arrays(t: Trajectory):
    return [t.obs, t.actions, t.rewards, t.costs, *t.constraint_costs.values()]


@pytest.mark.parametrize("deterministic", [True, False])
def test_same_policy_task_seed_gives_the_same_arrays(cheetah_policy, deterministic):
    with SafetyTask(CHEETAH) as task:
        a = collect(cheetah_policy, task, seed=5, deterministic=deterministic, max_steps=60)
        b = collect(cheetah_policy, task, seed=5, deterministic=deterministic, max_steps=60)
        c = collect(cheetah_policy, task, seed=6, deterministic=deterministic, max_steps=60)
    assert all(np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(b)))
    assert not np.array_equal(a.obs, c.obs)


def test_trajectory_keeps_everything_and_marks_falls():
    policy = make_policy(HOPPER)
    with SafetyTask(HOPPER) as task:
        t = collect(policy, task, seed=0)
    assert t.terminated and t.fell and t.length < task.max_episode_steps, "an untrained hopper falls"
    assert t.obs.shape == (t.length, 11) and t.actions.shape == (t.length, 3)
    assert set(t.constraint_costs) == {"cost_velocity"}
    with SafetyTask(CIRCLE) as task:
        c = collect(make_policy(CIRCLE), task, seed=0, max_steps=40)
    assert not c.fell and c.truncated and "cost_out_of_boundary" in c.constraint_costs


def test_save_and_load_round_trip(tmp_path, cheetah_policy):
    with SafetyTask(CHEETAH) as task:
        t = collect(cheetah_policy, task, seed=1, max_steps=30)
    path = save_trajectory(t, tmp_path, "traj-1")
    back = load_trajectory(path)
    assert set(back.constraint_costs) == set(t.constraint_costs)  # zip below would pass over one dropped
    assert all(np.array_equal(x, y) for x, y in zip(_arrays(t), _arrays(back)))
    assert (back.seed, back.task_id, back.terminated, back.truncated) == (1, CHEETAH, t.terminated, t.truncated)
    with pytest.raises(ValueError, match="invalid trajectory id"):
        save_trajectory(t, tmp_path, "../escape")


def test_windows_keep_termination_only_at_the_end():
    policy = make_policy(HOPPER)
    with SafetyTask(HOPPER) as task:
        t = collect(policy, task, seed=0)
    head, tail = t.window(0, 10), t.window(t.length - 10, 10)
    assert head.length == 10 and not head.fell and head.truncated
    assert tail.fell and tail.start == t.length - 10


def test_invariants_name_the_bad_field():
    ok = dict(task_id=CHEETAH, obs=np.zeros((3, 2), np.float32), actions=np.zeros((3, 1), np.float32),
              rewards=np.zeros(3, np.float32), costs=np.zeros(3, np.float32), terminated=False, truncated=True)
    with pytest.raises(ValueError, match="rewards has length 2"):
        Trajectory(**{**ok, "rewards": np.zeros(2, np.float32)})
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        Trajectory(**{**ok, "actions": np.full((3, 1), 2.0, np.float32)})
    with pytest.raises(ValueError, match="costs holds non-finite"):
        Trajectory(**{**ok, "costs": np.array([0, np.nan, 0], np.float32)})


def test_policy_for_another_task_is_refused(cheetah_policy):
    with SafetyTask(HOPPER) as task, pytest.raises(CheckpointError, match="does not fit"):
        collect(cheetah_policy, task, seed=0)


def test_corrupt_trajectory_file_is_rejected(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable trajectory file"):
        load_trajectory(tmp_path / "bad.npz")
