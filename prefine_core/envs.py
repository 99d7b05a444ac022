"""The one boundary to Safety-Gymnasium: make a task, step it, render it, read its cost.

Everything outside this module sees plain numpy arrays and a cost per step. Three platform
facts live here (DESIGN §3):

* safety-gymnasium 1.0.0 breaks on import under Python 3.11 (numpy arrays as dataclass
  defaults); :func:`_import_safety_gymnasium` imports it through a shim that turns those
  defaults into ``default_factory`` copies for the duration of that one import.
* MuJoCo renders headless through EGL; ``MUJOCO_GL=egl`` is set before mujoco is imported,
  unless the user chose a backend already.
* Navigation tasks decode six HD skybox PNGs on every reset (~1 s); the shim swaps the skybox
  for MuJoCo's built-in gradient, which brings a reset to tens of milliseconds.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import functools
import os
import re
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from prefine_core.entry import quoted  # noqa: E402

#: Cameras that show what the cost is about, per task family (first match wins).
_CAMERAS = (("Circle", "fixedfar"), ("Velocity", "track"), ("", "fixedfar"))
#: Velocity tasks that end the episode when the robot falls (DESIGN §4, termination confound).
#: The largest seed an environment's reset takes (Gymnasium seeds numpy with a 32-bit unsigned int).
MAX_SEED = 2**32 - 1
_FALLING_ROBOTS = ("Hopper", "Walker2d", "Ant", "Humanoid")
_GRADIENT_SKYBOX = {
    "@type": "skybox", "@builtin": "gradient", "@rgb1": "0.45 0.6 0.8", "@rgb2": "0.05 0.05 0.1",
    "@width": "64", "@height": "64",
}


def _ndarray_defaults_as_factories(get_field):
    """Wrap ``dataclasses._get_field`` so an ndarray class default becomes a factory copy."""

    @functools.wraps(get_field)
    def patched(cls, a_name, a_type, *args):
        default = cls.__dict__.get(a_name, dataclasses.MISSING)
        if isinstance(default, np.ndarray):
            setattr(cls, a_name, dataclasses.field(default_factory=functools.partial(np.array, default)))
        return get_field(cls, a_name, a_type, *args)

    return patched


class _AssetsWithoutHDSkybox:
    """Stands in for the ``yaml`` module inside ``safety_gymnasium.world``.

    The world builder reads ``configs/assets.yaml`` on every reset and adds its HD skybox to the
    scene; this parses the file once and hands out copies with a built-in gradient skybox.
    """

    def __init__(self, yaml_module):
        self._yaml = yaml_module
        self._cache: dict[str, Any] = {}

    def load(self, stream, Loader=None):  # noqa: N803 - mirrors yaml.load
        key = getattr(stream, "name", None)
        if key is None:
            return self._yaml.load(stream, Loader=Loader)
        if key not in self._cache:
            config = self._yaml.load(stream, Loader=Loader)
            if "skybox" in config.get("textures", {}):
                config["textures"]["skybox"] = dict(_GRADIENT_SKYBOX)
            self._cache[key] = config
        return copy.deepcopy(self._cache[key])

    def __getattr__(self, name):
        return getattr(self._yaml, name)


@functools.lru_cache(maxsize=1)
def _import_safety_gymnasium():
    """Import safety_gymnasium on Python 3.11 (see the module docstring); cached."""
    import torch  # noqa: F401  - import torch before mujoco (DESIGN §3: EGL + triton)

    original = dataclasses._get_field
    dataclasses._get_field = _ndarray_defaults_as_factories(original)
    try:
        import farama_notifications  # gymnasium-robotics prints a notice about Adroit tasks we never use

        farama_notifications.notifications.pop("gymnasium_robotics", None)
        import safety_gymnasium
        import safety_gymnasium.world as world
    finally:
        dataclasses._get_field = original
    if not isinstance(world.yaml, _AssetsWithoutHDSkybox):
        world.yaml = _AssetsWithoutHDSkybox(world.yaml)
    return safety_gymnasium


@functools.lru_cache(maxsize=1)
def task_ids() -> tuple[str, ...]:
    """All Safety-Gymnasium task ids that ``safety_gymnasium.make`` builds (single-agent, non-vision).

    gymnasium's registry also holds the ``…Gymnasium-v*`` variants, which only ``gymnasium.make`` builds;
    offering them let an id pass validation and then fail inside Safety-Gymnasium with a bare assertion.
    """
    _import_safety_gymnasium()
    from safety_gymnasium.utils.registration import safe_registry

    ids = [name for name in safe_registry if name.startswith("Safety")]
    return tuple(sorted(i for i in ids if "Vision" not in i and "Debug" not in i and not _unbuildable(i)))


def _unbuildable(task_id: str) -> str | None:
    """Why the pinned safety-gymnasium wheel cannot build this registered task, or None."""
    if re.search(r"Race\d-v\d+$", task_id):  # the Race task, not the Racecar agent
        return "the safety-gymnasium 1.0.0 wheel lacks the texture file its Race tasks load"
    return None


class UnknownTaskError(ValueError):
    """A task id that Safety-Gymnasium does not know; the message lists the nearest ids."""


def validate_task_id(task_id: str) -> str:
    """Return ``task_id`` if it is a known task, else raise with the nearest valid ids."""
    known = task_ids()
    if task_id in known:
        return task_id
    reason = _unbuildable(str(task_id))
    if reason:
        raise UnknownTaskError(f"task {quoted(task_id)} cannot be built here: {reason}")
    near = difflib.get_close_matches(str(task_id), known, n=5, cutoff=0.6)  # 0.5 let "Bogus-v0" near "SafetyDoggoPush2-v0"
    if near:
        raise UnknownTaskError(f"unknown task id {quoted(task_id)}; nearest valid ids: {', '.join(near)}")
    shipped = [t for t in ("SafetyHalfCheetahVelocity-v1", "SafetyHopperVelocity-v1", "SafetyPointCircle1-v0") if t in known]
    raise UnknownTaskError(f"unknown task id {quoted(task_id)}: none of the {len(known)} Safety-Gymnasium ids is close to it; "
                           f"the shipped policies are for {', '.join(shipped)}")


def camera_for(task_id: str) -> str:
    """The camera that shows what this task's cost is about."""
    return next(camera for key, camera in _CAMERAS if key in task_id)


def can_fall(task_id: str) -> bool:
    """Whether episodes of this task end early when the robot falls (a catastrophic failure)."""
    return "Velocity" in task_id and any(robot in task_id for robot in _FALLING_ROBOTS)


def _constraint_costs(info: dict) -> dict[str, float]:
    """Per-constraint costs of one step, read from Safety-Gymnasium's ``info`` dict."""
    return {k: float(v) for k, v in info.items() if k.startswith("cost_") and k != "cost_sum"}


def _disable_costly_effects(env) -> bool:
    """Turn off shadows and reflections in the env's offscreen viewers; False if none exists yet."""
    import mujoco

    unwrapped = env.unwrapped
    renderer = getattr(unwrapped, "mujoco_renderer", None)  # velocity tasks (gymnasium MuJoCo envs)
    holder = renderer if renderer is not None else getattr(unwrapped, "task", None)  # navigation tasks
    viewers = list(getattr(holder, "_viewers", {}).values())
    for viewer in viewers:
        viewer.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        viewer.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
    return bool(viewers)


def _floor_and_body(model, camera: str) -> tuple[int, int, np.ndarray] | None:
    """(the floor plane's geom, the body ``camera`` follows, the floor's checker period in metres), or None where the
    model has no such camera or no plane. Found once per task: the model does not change."""
    import mujoco

    camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    floors = [g for g in range(model.ngeom) if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE]
    if camera_id < 0 or not floors:
        return None
    floor, material = floors[0], model.geom_matid[floors[0]]
    size = model.geom_size[floor][:2]
    period = (np.where(model.mat_texuniform[material], 1.0, 2.0 * size) / model.mat_texrepeat[material]
              if material >= 0 else size)
    return floor, int(model.cam_bodyid[camera_id]), period


@contextlib.contextmanager
def _floor_under(model, data, found: tuple[int, int, np.ndarray] | None):
    """Draw the floor under the robot the camera follows (``found``: :func:`_floor_and_body`), for one frame. A
    velocity task's floor is drawn 80 m wide (HalfCheetah; 40 m for Hopper), and a fast cheetah leaves it after some
    200 steps: the rest of its episode ran in grey space, where nobody can see how fast it goes. The floor moves by
    whole periods of its checker texture, so the squares stay where they are in the world and the robot is seen to
    pass them. Physics is untouched: a plane collides at any extent, and its place is put back before the next step."""
    if found is None:
        yield
        return
    floor, body, period = found
    robot = data.xpos[body]
    kept = model.geom_pos[floor].copy(), data.geom_xpos[floor].copy()
    shift = np.round((robot[:2] - kept[1][:2]) / period) * period
    try:
        model.geom_pos[floor][:2] += shift
        data.geom_xpos[floor][:2] += shift
        yield
    finally:
        model.geom_pos[floor], data.geom_xpos[floor] = kept


@dataclass(frozen=True)
class StepResult:
    """What one step of a task gives back, as plain values."""

    obs: np.ndarray
    reward: float
    cost: float
    constraint_costs: dict[str, float]
    terminated: bool
    truncated: bool
    forward_velocity: float | None = None
    """The robot's x velocity (m/s) where the task reports it (velocity tasks), else None."""


class SafetyTask:
    """A Safety-Gymnasium task behind a small, plain interface.

    >>> task = SafetyTask("SafetyHalfCheetahVelocity-v1")
    >>> obs = task.reset(seed=0)
    >>> step = task.step(np.zeros(task.act_dim))
    """

    def __init__(self, task_id: str, render: bool = False, width: int = 256, height: int = 256):
        validate_task_id(task_id)
        sg = _import_safety_gymnasium()
        self.task_id = task_id
        self.camera = camera_for(task_id)
        kwargs: dict[str, Any] = {}
        if render:
            kwargs = dict(render_mode="rgb_array", width=width, height=height, camera_name=self.camera)
        self._env = sg.make(task_id, **kwargs)
        self.obs_dim = int(np.prod(self._env.observation_space.shape))
        self.act_dim = int(np.prod(self._env.action_space.shape))
        self.act_low = np.asarray(self._env.action_space.low, dtype=np.float64)
        self.act_high = np.asarray(self._env.action_space.high, dtype=np.float64)
        self.max_episode_steps = int(getattr(self._env.spec, "max_episode_steps", None) or 1000)
        self._fast_render = False
        self._floor: tuple | None = None  # (_floor_and_body's answer,), found at the first velocity-task frame
        self._cost_name = "cost_velocity" if "Velocity" in task_id else "cost"

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, _ = self._env.reset(seed=seed)
        return np.asarray(obs, dtype=np.float32).reshape(-1)

    def step(self, action: np.ndarray) -> StepResult:
        """Step with an action in [-1, 1]^act_dim, rescaled to the task's bounds."""
        unit = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        scaled = self.act_low + (unit + 1.0) * 0.5 * (self.act_high - self.act_low)
        obs, reward, cost, terminated, truncated, info = self._env.step(scaled)
        return StepResult(
            obs=np.asarray(obs, dtype=np.float32).reshape(-1),
            reward=float(reward),
            cost=float(cost),
            constraint_costs=_constraint_costs(info) or {self._cost_name: float(cost)},
            terminated=bool(terminated),
            truncated=bool(truncated),
            forward_velocity=float(info["x_velocity"]) if "x_velocity" in info else None,
        )

    def render(self) -> np.ndarray:
        """The current frame, (H, W, 3) uint8.

        Shadows and reflections are switched off after the first frame: on a CPU (Mesa llvmpipe)
        that renders 1.4–1.6× faster and changes nothing a labeller needs to see.
        """
        frame = self._draw()
        if not self._fast_render:
            self._fast_render = _disable_costly_effects(self._env)
            if self._fast_render:
                frame = self._draw()
        return np.asarray(frame, dtype=np.uint8)

    def _draw(self):
        """The env's frame without Safety-Gymnasium's cost cues: the sphere velocity tasks draw above the robot (green,
        red while over the limit) and the red one navigation tasks draw around the agent on a costly step. The clip's
        overlay marks cost where it is wanted (render.annotate); a clip shown without cost must not give it away."""
        env = self._env.unwrapped
        if hasattr(env, "task") and hasattr(env, "render_parameters"):  # navigation tasks (safety_gymnasium Builder)
            return env.task.render(cost={}, **dataclasses.asdict(env.render_parameters))
        viewer = getattr(getattr(env, "mujoco_renderer", None), "viewer", None)  # velocity tasks: gymnasium MuJoCo envs
        if viewer is not None:
            viewer._markers[:] = []  # the velocity marker each step adds (safety_gymnasium.utils.task_utils)
        if self._floor is None:
            self._floor = (_floor_and_body(env.model, self.camera),)
        with _floor_under(env.model, env.data, self._floor[0]):
            return self._env.render()

    def close(self) -> None:
        """Close the env and the viewers a navigation task keeps for itself: Safety-Gymnasium never closes those, and
        the garbage collector freed their GL contexts after EGL was gone at exit, which ended a render job's log with
        two EGLError tracebacks."""
        viewers = getattr(getattr(self._env.unwrapped, "task", None), "_viewers", None) or {}
        for viewer in list(viewers.values()):
            viewer.close()
        viewers.clear()
        self._env.close()

    def __enter__(self) -> "SafetyTask":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@functools.lru_cache(maxsize=None)
def task_sizes(task_id: str) -> tuple[int, int]:
    """The observation and action sizes of ``task_id`` (refused as :class:`SafetyTask` refuses it). Safety-Gymnasium
    says them only on a made environment's spaces; one is made once per task and process (~10 ms once imported)."""
    with SafetyTask(task_id) as task:
        return task.obs_dim, task.act_dim
