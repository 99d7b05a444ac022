"""Tanh-squashed Gaussian MLP actor, and its checkpoint format (safetensors + JSON metadata).

Actions live in [-1, 1]^act_dim; :class:`prefine_core.envs.SafetyTask` rescales them to the
task's bounds. Observations are normalised inside the actor with statistics frozen at export, so a
checkpoint is self-contained.

A checkpoint is one ``.safetensors`` file: the tensors, plus the metadata as a JSON string under the
header key ``prefine`` (task id, sizes, provenance, parent). Loading never unpickles anything.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prefine_core.entry import parse_json
from prefine_core.files import atomic_path

FORMAT = "prefine-policy/1"
#: The largest observation, action or hidden-layer size a policy may claim. Safety-Gymnasium's largest observation
#: (Humanoid's) has 376 numbers and its largest action 17, and the networks trained here are 64 wide; a size past any
#: network (10**30 overflowed torch's int64 in a traceback) is refused by name, while [10⁶, 10⁶] still only fails to
#: match its tensors, its shapes computed without allocating anything.
MAX_SIZE = 1_000_000
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
#: Keeps atanh finite for actions exactly at the ±1 bounds.
_ACTION_EPS = 1e-6


class CheckpointError(ValueError):
    """A policy file that cannot be used; the message says why.

    Where the message names the file, ``problem`` is the rest of it ("is not …", "has no …"): a caller that knows
    the file by another name (an upload, by the name its user gave it) can say it with that name.
    """

    def __init__(self, message: str, problem: str | None = None):
        super().__init__(message)
        self.problem = problem


def _refused(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(f"{path.name} {problem}", problem)


def _is_size(value) -> bool:
    """Whether ``value`` can be a layer's size: an int from 1 to :data:`MAX_SIZE`, and not a bool (JSON's ``true`` is
    an int to Python, and torch refuses it as a size)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_SIZE


@dataclass(frozen=True)
class PolicyMeta:
    """What a checkpoint says about itself, so that loading never needs a guess."""

    task_id: str
    obs_dim: int
    act_dim: int
    hidden_sizes: tuple[int, ...] = (64, 64)
    name: str = ""
    """Human-readable name shown in the app."""
    parent: str | None = None
    """Name or path of the policy this one was trained from (None for a policy from scratch)."""
    provenance: dict = field(default_factory=dict)
    """How it was made: algorithm, steps, seed, cost penalty, config, wall time."""
    format: str = FORMAT

    def __post_init__(self):
        for name in ("obs_dim", "act_dim"):
            value = getattr(self, name)
            if not _is_size(value):
                raise ValueError(f"{name} must be a whole number from 1 to {MAX_SIZE}, got {value!r:.80}")
        sizes = tuple(self.hidden_sizes)
        if not sizes or not all(_is_size(h) for h in sizes):
            raise ValueError(f"hidden_sizes must be whole numbers from 1 to {MAX_SIZE}, got {self.hidden_sizes!r:.80}")
        object.__setattr__(self, "hidden_sizes", sizes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "PolicyMeta":
        data = parse_json("metadata", text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"metadata format is {data.get('format') if isinstance(data, dict) else data!r}, expected {FORMAT!r}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown metadata fields {sorted(unknown)}")
        missing = {"task_id", "obs_dim", "act_dim"} - set(data)
        if missing:
            raise ValueError(f"metadata lacks the fields {sorted(missing)}")
        for name, kinds, what in (("task_id", str, "a task id"), ("name", str, "text"), ("parent", (str, type(None)),
                                  "text or null"), ("provenance", dict, "a JSON object"), ("hidden_sizes", list, "a list")):
            if name in data and not isinstance(data[name], kinds):
                raise ValueError(f"metadata field {name} must be {what}, got {data[name]!r:.80}")
        data["hidden_sizes"] = tuple(data.get("hidden_sizes", ()))
        return cls(**data)


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of ``sizes`` (input, hidden…, output) with tanh between them (none after the last)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class TanhGaussianPolicy(nn.Module):
    """π(a|s): a = tanh(u), u ~ N(μ(s), σ²), with a state-independent log σ."""

    def __init__(self, meta: PolicyMeta):
        super().__init__()
        self.meta = meta
        self.mean_net = mlp([meta.obs_dim, *meta.hidden_sizes, meta.act_dim])
        self.log_std = nn.Parameter(torch.full((meta.act_dim,), -0.5))
        self.register_buffer("obs_mean", torch.zeros(meta.obs_dim))
        self.register_buffer("obs_var", torch.ones(meta.obs_dim))
        self.source: Path | None = None
        """The file it was loaded from (None for one made here), for a message about it to name."""

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """(…, obs_dim) -> (…, obs_dim), clipped to ±10 like the running normaliser in PPO."""
        return ((obs - self.obs_mean) / torch.sqrt(self.obs_var + 1e-8)).clamp(-10.0, 10.0)

    def distribution(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-tanh mean and std, each (…, act_dim)."""
        return self.normalized_distribution(self.normalize(obs))

    def normalized_distribution(self, normalized_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`distribution` of observations already normalised (PPO's, as each was when it was collected)."""
        mean = self.mean_net(normalized_obs)
        std = self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp().expand_as(mean)
        return mean, std

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log π(a|s) of squashed actions with the tanh change of variables.

        obs (…, obs_dim), actions (…, act_dim) in [-1, 1] -> (…,).
        log π(a|s) = log N(atanh a; μ, σ) − Σ log(1 − a²)
        """
        mean, std = self.distribution(obs)
        a = actions.clamp(-1.0 + _ACTION_EPS, 1.0 - _ACTION_EPS)
        u = torch.atanh(a)
        gauss = -0.5 * ((u - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)
        return (gauss - torch.log1p(-a.pow(2))).sum(-1)

    def sample(self, obs: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Squashed actions (…, act_dim); the std is scaled by ``temperature``."""
        mean, std = self.distribution(obs)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        return torch.tanh(mean + temperature * std * noise)

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True, rng: np.random.Generator | None = None, temperature: float = 1.0) -> np.ndarray:
        """One action for one observation (numpy in, numpy out), in [-1, 1]^act_dim."""
        mean, std = self.distribution(torch.as_tensor(obs, dtype=torch.float32))
        if deterministic:
            return torch.tanh(mean).numpy()
        rng = rng if rng is not None else np.random.default_rng()
        noise = torch.as_tensor(rng.standard_normal(mean.shape), dtype=torch.float32)
        return torch.tanh(mean + temperature * std * noise).numpy()


def save_policy(policy: TanhGaussianPolicy, path: str | os.PathLike) -> Path:
    """Write the checkpoint atomically (temp file in the same folder, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in policy.state_dict().items()}
    from safetensors import SafetensorError

    try:
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata={"prefine": policy.meta.to_json()})
    except SafetensorError as exc:  # e.g. a full disk: report it as the OS error it is
        raise OSError(f"could not write the policy {path}: {exc}") from None
    return path


def read_meta(path: str | os.PathLike) -> PolicyMeta:
    """The metadata of a checkpoint, without loading its tensors."""
    return _open_checkpoint(Path(path))[0]


def _open_checkpoint(path: Path) -> tuple[PolicyMeta, dict[str, torch.Tensor]]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    if not path.is_file():
        raise CheckpointError(f"no policy file at {path}")
    try:  # from its bytes: the library opens a file only by a name it can encode (a name in another encoding was
        data = path.read_bytes()  # refused as "corrupt")
        tensors = load(data)
        size = int.from_bytes(data[:8], "little")  # the format: the header's length, then the header (JSON)
        header = json.loads(data[8:8 + size]).get("__metadata__") or {}
    except (SafetensorError, OSError, RuntimeError, ValueError, AttributeError):  # the library's own words mean nothing
        problem = "is not a readable safetensors policy file (corrupt, truncated or another format)"
        raise _refused(path, problem) from None
    if not isinstance(header, dict) or "prefine" not in header:
        raise _refused(path, "has no PREFINE metadata; it is not a policy saved by this tool")
    try:
        meta = PolicyMeta.from_json(header["prefine"])
    except (ValueError, TypeError) as exc:
        raise _refused(path, f"has invalid metadata: {exc}") from None
    return meta, tensors


def load_policy(path: str | os.PathLike, task_id: str | None = None) -> TanhGaussianPolicy:
    """Load a checkpoint, refused by name unless its network fits the task it names; with ``task_id``, refuse a policy
    made for another task."""
    path = Path(path)
    meta, tensors = _open_checkpoint(path)
    if task_id is not None and meta.task_id != task_id:
        raise _refused(path, f"is a policy for {meta.task_id}, not for {task_id}")
    expected = expected_shapes(meta)  # checked before the network is built: sizes a file merely claims
    found = {k: tuple(v.shape) for k, v in tensors.items()}  # (hidden_sizes [10⁶, 10⁶]) would allocate terabytes
    if expected != found:
        wrong = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
        details = ", ".join(f"{k}: expected {expected.get(k)}, found {found.get(k)}" for k in wrong[:4])
        raise _refused(path, f"does not match its metadata's sizes ({details})")
    _check_values(path, tensors)
    _check_fits_its_task(path, meta)
    policy = TanhGaussianPolicy(meta)
    policy.load_state_dict(tensors)
    policy.eval()
    policy.source = path
    return policy


def expected_shapes(meta: PolicyMeta) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in a :class:`TanhGaussianPolicy` of ``meta``: the network built on PyTorch's meta
    device, which allocates nothing (sizes a file merely claims, [10⁶, 10⁶] say, cost no memory)."""
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in TanhGaussianPolicy(meta).state_dict().items()}


def _check_values(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse weights a rollout cannot use (it would act NaN): not floating point, not finite, or a negative
    observation variance."""
    not_float = sorted(k for k, v in tensors.items() if not v.is_floating_point())
    if not_float:
        raise _refused(path, f"holds tensors that are not floating point in {not_float}")
    bad = sorted(k for k, v in tensors.items() if not torch.isfinite(v).all())
    if bad:
        raise _refused(path, f"holds non-finite values in {bad}")
    if (tensors["obs_var"] < 0).any():
        raise _refused(path, "holds a negative observation variance in obs_var")


def _check_fits_its_task(path: Path, meta: PolicyMeta) -> None:
    """Refuse a policy whose network does not fit the task its metadata names (another robot's weights under this
    task's id, or sizes edited by hand): a fine-tune from it failed in ``load_state_dict``, and ``info`` passed it."""
    from prefine_core.envs import UnknownTaskError, task_sizes

    try:
        obs_dim, act_dim = task_sizes(meta.task_id)
    except UnknownTaskError as exc:
        raise _refused(path, f"names a task that cannot be run here: {exc}") from None
    if (meta.obs_dim, meta.act_dim) != (obs_dim, act_dim):
        raise _refused(path, f"does not fit the task it names: {meta.task_id}'s observations have {obs_dim} numbers "
                             f"and actions {act_dim}, but its network takes {meta.obs_dim} and gives {meta.act_dim}")


def check_compatible(policy: TanhGaussianPolicy, task) -> None:
    """Raise if a policy's sizes do not fit a task (e.g. a checkpoint for another robot), naming its file if it has
    one."""
    meta = policy.meta
    if meta.task_id != task.task_id or (meta.obs_dim, meta.act_dim) != (task.obs_dim, task.act_dim):
        policy_for = f"policy for {meta.task_id} (obs {meta.obs_dim}, act {meta.act_dim})"
        fit = f"does not fit {task.task_id} (obs {task.obs_dim}, act {task.act_dim})"
        if policy.source is None:
            raise CheckpointError(f"{policy_for} {fit}")
        raise _refused(policy.source, f"is a {policy_for}, which {fit}")
