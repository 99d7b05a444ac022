"""Offline safe-RL datasets in the DSRL / D4RL HDF5 layout, imported as clips of a task's pool.

The file holds flat arrays (``observations`` (N, obs_dim), ``actions`` (N, act_dim) in [-1, 1], ``rewards``,
``costs``, ``terminals``, ``timeouts`` (N,)); episodes end at a terminal or a timeout. Every array is checked before
anything is written; the clips are added in one transaction, and clips already here (the same file imported before
with the same clip length) are not added again.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from prefine_core.envs import task_sizes
from prefine_core.exchange import ClipsHere, check_sizes
from prefine_core.rollout import Trajectory
from prefine_core.workspace import Workspace

HDF5_KEYS = ("observations", "actions", "rewards", "costs", "terminals", "timeouts")


def _read_hdf5(path: Path) -> dict[str, np.ndarray]:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            missing = [k for k in HDF5_KEYS if k not in handle]
            if missing:
                raise ValueError(f"{path.name} lacks dataset(s) {missing}; a DSRL/D4RL file has {list(HDF5_KEYS)}")
            for k in HDF5_KEYS:
                if not isinstance(handle[k], h5py.Dataset):
                    kind = "group" if isinstance(handle[k], h5py.Group) else type(handle[k]).__name__
                    raise ValueError(f"{path.name}: {k} is an HDF5 {kind}, not a dataset; a DSRL/D4RL file has "
                                     f"datasets {list(HDF5_KEYS)}")
            data = {k: np.asarray(handle[k][()]) for k in HDF5_KEYS}
    except OSError as exc:
        raise ValueError(f"{path.name} is not a readable HDF5 file (corrupt or truncated?): {exc}") from None
    # complex numbers are numbers to numpy: their imaginary part was dropped with only a warning
    not_numbers = [k for k, v in data.items() if not (np.issubdtype(v.dtype, np.number) or v.dtype == bool)
                   or np.issubdtype(v.dtype, np.complexfloating)]
    if not_numbers:
        raise ValueError(f"{path.name}: dataset(s) {not_numbers} hold {data[not_numbers[0]].dtype} values, not real numbers")
    return data


#: The shape of each D4RL-layout array: (steps, size) or (steps,).
_HDF5_DIMS = {"observations": 2, "actions": 2, "rewards": 1, "costs": 1, "terminals": 1, "timeouts": 1}


def _check_dims(data: dict[str, np.ndarray], name: str) -> None:
    """Refuse D4RL-layout arrays with the wrong number of dimensions (a single number, a table where a column
    belongs), before anything reads their length or size."""
    for key, ndim in _HDF5_DIMS.items():
        if data[key].ndim != ndim:
            raise ValueError(f"{name} has {key} of shape {data[key].shape}; {key} must be {ndim}-D "
                             f"{'(steps, size)' if ndim == 2 else '(steps,)'}")


def episodes_from_arrays(data: dict[str, np.ndarray], task_id: str, name: str = "dataset") -> list[Trajectory]:
    """Split flat D4RL-layout arrays into episodes at ``terminals`` or ``timeouts``; checks every array."""
    _check_dims(data, name)
    n = len(data["rewards"])
    if n == 0:
        raise ValueError(f"{name} holds no steps")
    for key in HDF5_KEYS:
        if len(data[key]) != n:
            raise ValueError(f"{name}: {key} has {len(data[key])} rows, rewards has {n}")
    for key in _HDF5_DIMS:
        if key not in ("terminals", "timeouts") and not np.isfinite(data[key].astype(np.float64)).all():
            raise ValueError(f"{name}: {key} holds non-finite values")
    if (np.abs(data["actions"]) > 1.0 + 1e-5).any():
        raise ValueError(f"{name}: actions lie outside [-1, 1] (max |a| = {np.abs(data['actions']).max():.3g})")
    if (data["costs"] < 0).any():
        raise ValueError(f"{name}: costs holds negative values (min {data['costs'].min():.3g}); a cost is 0 or more per step")
    terminals, timeouts = data["terminals"].astype(bool), data["timeouts"].astype(bool)
    ends = np.flatnonzero(terminals | timeouts) + 1
    if not len(ends) or ends[-1] != n:
        ends = np.append(ends, n)  # a last, unfinished episode is kept as truncated
    result, start = [], 0
    for stop in ends:
        terminated = bool(terminals[stop - 1])
        try:
            result.append(Trajectory(
                task_id=task_id, obs=data["observations"][start:stop].astype(np.float32),
                actions=np.clip(data["actions"][start:stop], -1, 1).astype(np.float32),
                rewards=data["rewards"][start:stop].astype(np.float32), costs=data["costs"][start:stop].astype(np.float32),
                terminated=terminated, truncated=not terminated))
        except ValueError as exc:  # e.g. values that add up past float32 over an episode: said with where
            raise ValueError(f"{name}: the episode of steps {start}–{stop - 1}: {exc}") from None
        start = stop
    return result


#: The first bytes of an HDF5 file (one without a user block, as DSRL's and D4RL's are).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def dataset_source(source: str | None, path: str | os.PathLike) -> str:
    """The pool source an HDF5 file's clips are imported under: ``source``, or ``dataset:<file name>``. A name of a
    policy's source is refused: its clips would count as that policy's rollouts."""
    from prefine_core.pool import names_a_policy

    name = Path(path).name
    if source is not None and names_a_policy(source):
        raise ValueError(f"source {source!r} names a policy's rollouts ('{source.partition(':')[0]}:…'); give the "
                         f"dataset a name of its own, such as dataset:{name}")
    return source or f"dataset:{name}"


def import_hdf5(ws: Workspace, path: str | os.PathLike, task_id: str, clip_length: int = 200,
                max_episodes: int | None = None, source: str | None = None, on_progress=None) -> dict:
    """Import a DSRL/D4RL-layout HDF5 file as clips of ``task_id`` (one transaction); returns counts. Clips already
    here (the file imported before with this clip length) are not added again: ``clips_already_here``.
    ``on_progress(done, total)`` after each clip is written."""
    from prefine_core.pool import clips

    path = Path(path)
    source = dataset_source(source, path)
    if not path.is_file():
        raise ValueError(f"no file at {path}")
    data = _read_hdf5(path)
    _check_dims(data, path.name)
    check_sizes(path.name, task_id, task_sizes(task_id), data["observations"], data["actions"])
    episodes = episodes_from_arrays(data, task_id, path.name)[:max_episodes]
    cut = [clip for e in episodes for clip in clips(e, clip_length)]
    here = ClipsHere(ws.store, [task_id])
    new = [clip for clip in cut if here.find(clip) is None]  # imported before: not twice in the pool
    ids = []
    with ws.store.batch() as batch:
        for clip in new:
            ids.append(batch.add_trajectory(clip, None, source, ws.trajectories_dir))
            if on_progress:
                on_progress(len(ids), len(new))
    return {"source": source, "episodes": len(episodes), "clips": len(ids), "steps": int(sum(e.length for e in episodes)),
            "clips_already_here": len(cut) - len(new)}
