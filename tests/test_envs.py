"""The environment boundary: the 3.11 import shim, task ids, costs, headless rendering, reset speed."""
import os
import subprocess
import sys

import numpy as np
import pytest

from prefine_core.envs import SafetyTask, UnknownTaskError, camera_for, can_fall, task_ids, validate_task_id
from tests.conftest import CHEETAH, CIRCLE, HOPPER

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env}, timeout=120)


def test_plain_import_fails_on_311_and_the_shim_fixes_it():
    plain = _python("import safety_gymnasium")
    assert plain.returncode != 0 and "mutable default" in plain.stderr
    shimmed = _python(
        "import dataclasses; before = dataclasses._get_field\n"
        "from prefine_core.envs import _import_safety_gymnasium\n"
        "sg = _import_safety_gymnasium()\n"
        "assert dataclasses._get_field is before, 'shim must restore dataclasses'\n"
        "from safety_gymnasium.assets.geoms.hazards import Hazards\n"
        "a, b = Hazards(), Hazards()\n"
        "assert a.color is not b.color and (a.color == b.color).all(), 'ndarray default must be a copy'\n"
        "a.color[0] = -1; assert b.color[0] != -1\n"
        "print('ok')"
    )
    assert shimmed.returncode == 0, shimmed.stderr
    assert shimmed.stdout.strip() == "ok"


def test_mujoco_gl_defaults_to_egl_and_respects_the_user():
    code = "import prefine_core.envs, os; print(os.environ['MUJOCO_GL'])"
    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    default = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert default.stdout.strip() == "egl"
    assert _python(code, MUJOCO_GL="osmesa").stdout.strip() == "osmesa"


def test_unknown_task_lists_nearest_ids():
    with pytest.raises(UnknownTaskError) as err:
        validate_task_id("SafetyHalfCheetahVelocity-v9")
    assert "SafetyHalfCheetahVelocity-v1" in str(err.value)
    with pytest.raises(UnknownTaskError, match="none of the .* ids is close to it; the shipped policies are for "
                                              f"{CHEETAH}, {HOPPER}, {CIRCLE}"):
        SafetyTask("Bogus-v0")  # not a list of unrelated ids called "nearest"


def test_task_ids_cover_navigation_and_velocity():
    ids = task_ids()
    assert {CHEETAH, HOPPER, CIRCLE, "SafetyPointGoal1-v0", "SafetyCarButton2-v0"} <= set(ids)
    assert "SafetyHopperVelocityGymnasium-v1" not in ids  # gymnasium.make only: SafetyTask cannot build it
    with pytest.raises(UnknownTaskError, match="nearest valid ids: SafetyHopperVelocity-v1"):
        SafetyTask("SafetyHopperVelocityGymnasium-v1")
    with pytest.raises(UnknownTaskError, match="lacks the texture file"):
        SafetyTask("SafetyPointRace0-v0")


@pytest.mark.parametrize("task_id", [CHEETAH, HOPPER, CIRCLE, "SafetyPointGoal1-v0"])
def test_make_step_render_and_costs(task_id):
    with SafetyTask(task_id, render=True, width=64, height=64) as task:
        obs = task.reset(seed=3)
        assert obs.shape == (task.obs_dim,) and obs.dtype == np.float32
        step = task.step(np.ones(task.act_dim))
        assert step.obs.shape == (task.obs_dim,)
        assert step.constraint_costs, "per-constraint costs must always be reported"
        assert step.cost >= 0
        frame = task.render()
        assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0


def test_out_of_bounds_costs_in_circle_and_speeding_in_velocity():
    with SafetyTask(CIRCLE) as task:
        task.reset(seed=0)
        costs = [task.step(np.array([1.0, 0.0])).constraint_costs["cost_out_of_boundary"] for _ in range(300)]
    assert max(costs) == 1.0, "driving straight for 300 steps must leave the circle's boundary"
    with SafetyTask(CHEETAH) as task:
        task.reset(seed=0)
        step = task.step(np.zeros(task.act_dim))
    assert step.cost == 0.0 and step.constraint_costs == {"cost_velocity": 0.0}


@pytest.mark.parametrize("task_id", [CIRCLE, CHEETAH])
def test_frames_carry_none_of_the_envs_cost_cues(task_id):
    # Navigation tasks draw a red sphere around the agent on a costly step, velocity tasks a sphere above the robot
    # that turns red over the limit; a clip shown without cost must show neither (render.annotate marks cost).
    import dataclasses

    with SafetyTask(task_id, render=True, width=96, height=96) as task:
        task.reset(seed=0)
        task.render()  # the viewer exists, shadows off
        if task_id == CIRCLE:
            while task.step(np.array([1.0, 0.0])).cost == 0:  # the boundary is left within 300 steps (test above)
                pass
        else:
            task.step(np.zeros(task.act_dim))  # the velocity sphere is drawn on every step
        env = task._env.unwrapped
        markers = [] if task_id == CIRCLE else list(env.mujoco_renderer.viewer._markers)
        frame = task.render()
        if task_id == CIRCLE:
            with_cue = np.asarray(task._env.render())
            cue_free = np.asarray(env.task.render(cost={}, **dataclasses.asdict(env.render_parameters)))
        else:
            env.mujoco_renderer.viewer._markers[:] = markers  # as the step left them
            with_cue = np.asarray(task._env.render())
            env.mujoco_renderer.viewer._markers[:] = []
            cue_free = np.asarray(task._env.render())
    assert np.abs(with_cue.astype(int) - cue_free).sum() > 0, "the env draws its cue on this step"
    assert np.array_equal(frame, cue_free)


@pytest.mark.parametrize("task_id, far", [(CHEETAH, 150.0), (HOPPER, 60.0)])
def test_the_floor_is_drawn_under_a_robot_far_down_the_track_and_physics_is_untouched(task_id, far):
    """The floor is drawn 80 m wide (HalfCheetah; Hopper 40 m): a fast cheetah ran the rest of its episode in grey
    space, where nobody could judge its speed. Drawing it under the robot changes no step of an episode."""
    import mujoco

    with SafetyTask(task_id, render=True, width=96, height=96) as task:
        task.reset(seed=0)
        env = task._env.unwrapped
        env.data.qpos[0] = far
        mujoco.mj_forward(env.model, env.data)
        ground = task.render()[64:]  # the lower third: floor, or the grey of nothing
        assert ground.std() > 20, "a checkered floor under the robot"
        rng, rendered, plain = np.random.default_rng(0), [], []
        actions = rng.uniform(-1, 1, (60, task.act_dim))
        for steps, draw in ((rendered, True), (plain, False)):
            task.reset(seed=1)
            for action in actions:
                steps.append(task.step(action).obs)
                if draw:
                    task.render()
    assert np.array_equal(np.array(rendered), np.array(plain))


def test_camera_and_fall_per_family():
    assert camera_for(CIRCLE) == "fixedfar"
    assert can_fall(HOPPER) and not can_fall(CHEETAH) and not can_fall(CIRCLE)


def test_navigation_reset_is_fast_without_hd_skybox():
    import time

    with SafetyTask(CIRCLE) as task:
        task.reset(seed=0)
        times = []
        for seed in range(1, 8):
            start = time.perf_counter()
            task.reset(seed=seed)
            times.append(time.perf_counter() - start)
    # a correctness bound, far above the measured ~2 ms and far below the ~1 s of decoding the skybox
    assert np.median(times) < 0.5


def test_closing_a_navigation_task_frees_the_viewers_safety_gymnasium_keeps():
    """Safety-Gymnasium never closes them: the garbage collector freed their GL contexts after EGL was gone at exit,
    and a PointCircle render job started from the CLI ended its log with two EGLError tracebacks after "done"."""
    task = SafetyTask(CIRCLE, render=True, width=48, height=48)
    task.reset(seed=0)
    task.render()
    viewers = task._env.unwrapped.task._viewers
    [viewer] = list(viewers.values())
    freed = []
    viewer.free = lambda: freed.append(True)  # what its close() calls to free the GL context
    task.close()
    assert freed == [True] and viewers == {}
