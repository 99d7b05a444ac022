"""The behaviour pool and pair generation.

The pool must contain the behaviour we want to teach (DESIGN §4, lesson 2): the reference policy at
several sampling temperatures, the shipped behaviour policies trained with cost penalties (slower,
safer gaits), imported datasets (``datasets.import_hdf5``) and each round's fine-tuned policies.
Clips are fixed-length windows (``clip_length``; 0 = whole episodes); a clip that ends in a fall
is marked (``Trajectory.fell``). Temperature 0 means deterministic (mean) actions.

The videos of the pairs are rendered ahead of time by :mod:`prefine_core.pair_videos`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from prefine_core import queries
from prefine_core.store import MAX_TEMPERATURE, POLICY_KINDS, PolicyRecord, Store, TrajectoryRecord
from prefine_core.store.api import POOL_LOCK
from prefine_core.workspace import Workspace

#: Strategies score all pairs of candidates; a larger pool is subsampled (seeded) to this many clips.
MAX_CANDIDATES = 1500


@dataclass
class PoolConfig:
    task_id: str
    """Safety-Gymnasium task id."""
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    """Episode seeds, the same for every source (so reference and fine-tuned clips can be paired by seed)."""
    reference_temperatures: tuple[float, ...] = (0.5, 1.0, 1.5)
    """Sampling temperatures of the reference policy (0 = deterministic)."""
    other_temperature: float = 1.0
    """Temperature of behaviour, fine-tuned and BC policies (stochastic, DESIGN §4 lesson 4)."""
    clip_length: int = 200
    """Window length in steps; 0 keeps whole episodes."""
    max_steps: int | None = None
    """Cap on episode length (None: the task's limit)."""
    kinds: tuple[str, ...] = ("reference", "behaviour", "finetuned", "bc")
    """Which registered policies to roll out."""

    def __post_init__(self):
        if self.clip_length < 0:
            raise ValueError(f"clip_length must be ≥ 0, got {self.clip_length}")
        if not self.seeds or any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be non-empty and ≥ 0, got {self.seeds}")
        if not all(0 <= t <= MAX_TEMPERATURE for t in (*self.reference_temperatures, self.other_temperature)):
            # past the store's limit, the clips before the first such one were written, then the rest refused
            raise ValueError(f"temperatures must be from 0 to {MAX_TEMPERATURE:g}, got "
                             f"{(*self.reference_temperatures, self.other_temperature)}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ValueError(f"max_steps must be positive, got {self.max_steps}")


@dataclass(frozen=True)
class PoolSource:
    name: str
    policy: PolicyRecord
    temperature: float


def source_name(policy: PolicyRecord, temperature: float) -> str:
    stem = Path(policy.path).stem
    return f"{policy.kind}:{stem}@T{temperature:g}"


def names_a_policy(source: str) -> bool:
    """Whether ``source`` has the form :func:`source_name` gives a policy's rollouts (``kind:…``): clips imported
    under it would be counted as that policy's."""
    kind, colon, _ = source.partition(":")
    return bool(colon) and kind in POLICY_KINDS


def pool_sources(store: Store, config: PoolConfig) -> list[PoolSource]:
    sources = []
    for policy in store.list_policies(task_id=config.task_id):
        if policy.kind not in config.kinds:
            continue
        if not Path(policy.path).is_file():
            warnings.warn(f"policy {policy.id} ({policy.name}) has no file at {policy.path}; left out of the pool")
            continue
        temps = config.reference_temperatures if policy.kind == "reference" else (config.other_temperature,)
        sources += [PoolSource(source_name(policy, t), policy, t) for t in temps]
    return sources


def clips(trajectory, clip_length: int) -> list:
    """Consecutive windows of ``clip_length``; a last, shorter window is kept only if it ends in a fall."""
    if clip_length == 0 or trajectory.length <= clip_length:
        return [trajectory]
    windows = [trajectory.window(s, clip_length) for s in range(0, trajectory.length, clip_length)]
    return [w for w in windows if w.length == clip_length or w.fell]


def collect_pool(ws: Workspace, config: PoolConfig, on_progress=None) -> list[int]:
    """Roll out every source on every seed (skipping (source, seed) already in the store); returns new ids."""
    from prefine_core.envs import SafetyTask
    from prefine_core.policy import load_policy
    from prefine_core.rollout import collect

    ws.register_shipped()  # shipped policies may have appeared since the workspace was opened
    sources = pool_sources(ws.store, config)
    if not sources:
        raise ValueError(f"no policies registered for {config.task_id}: ship or import a reference policy first")
    have = {(r.source, r.seed) for r in ws.store.list_trajectories(task_id=config.task_id)}
    todo = [(s, seed) for s in sources for seed in config.seeds if (s.name, seed) not in have]
    added: list[int] = []
    # Every policy loaded before the first rollout: a broken file among them is refused before minutes of rollouts
    # (it was found at its turn, after the clips of the policies before it had been written)
    loaded = {path: load_policy(path, task_id=config.task_id) for path in dict.fromkeys(s.policy.path for s, _ in todo)}
    with SafetyTask(config.task_id) as task:
        for done, (source, seed) in enumerate(todo):
            episode = collect(loaded[source.policy.path], task, seed=seed, deterministic=source.temperature == 0,
                              temperature=source.temperature or 1.0, max_steps=config.max_steps)
            with ws.store.batch() as batch:
                batch.one_at_a_time(POOL_LOCK)
                if not batch.has_clips(config.task_id, source.name, seed):  # collected by another command meanwhile
                    added += [batch.add_trajectory(clip, source.policy.id, source.name, ws.trajectories_dir,
                                                   temperature=source.temperature)
                              for clip in clips(episode, config.clip_length)]
            if on_progress:
                on_progress(done + 1, len(todo))
    return added


def pool_summary(store: Store, task_id: str) -> pd.DataFrame:
    """Per source: clips, and mean return, cost, length, cost per step and fall rate of its clips."""
    records = store.list_trajectories(task_id=task_id)
    frame = pd.DataFrame([{"source": r.source, "return": r.total_return, "cost": r.total_cost, "length": r.length,
                           "fell": r.fell} for r in records], columns=["source", "return", "cost", "length", "fell"])
    summary = frame.groupby("source").agg(
        clips=("return", "size"), return_mean=("return", "mean"), cost_mean=("cost", "mean"),
        length_mean=("length", "mean"), fall_rate=("fell", "mean"), cost_total=("cost", "sum"),
        steps_total=("length", "sum"))
    summary["cost_per_step"] = summary.pop("cost_total") / summary.pop("steps_total")
    return summary.reset_index()


def candidates(store: Store, task_id: str, records: list[TrajectoryRecord] | None = None) -> list[queries.Candidate]:
    """Every clip of the task as a strategy may see it (no reward, no cost)."""
    records = records if records is not None else store.list_trajectories(task_id=task_id)
    result = []
    for r in records:
        t = store.clip_arrays(r)
        result.append(queries.Candidate(id=r.id, source=r.source, policy_id=r.policy_id, seed=r.seed, start=r.start,
                                        temperature=r.temperature, obs=t.obs, actions=t.actions, fell=t.fell))
    return result


def generate_pairs(store: Store, task_id: str, n: int, strategy: str = "random", seed: int = 0,
                   finetuned_ids: list[int] | None = None, beta: float = 0.05, include_datasets: bool = False) -> list[int]:
    """Choose ``n`` new pairs with ``strategy`` and store them (one transaction); returns their ids.

    ``finetuned_ids``: the fine-tuned policies for ``uncertainty`` (an ensemble) and ``ref_vs_ft``
    (the first one); default the newest fine-tuned policy of the task. Pairs are drawn from clips
    that can be rendered (people need the video); ``include_datasets`` adds the clips of imported
    datasets too, for labellers that need no video (the synthetic teacher).
    """
    from prefine_core.policy import load_policy

    if strategy not in queries.STRATEGIES:
        raise ValueError(f"strategy must be one of {queries.STRATEGIES}, got {strategy!r}")
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    rng = np.random.default_rng(seed)
    records = [r for r in store.list_trajectories(task_id=task_id) if include_datasets or r.replayable]
    if len(records) < 2:
        raise ValueError(f"the pool of {task_id} holds {len(records)} clip(s) to pair"
                         f"{'' if include_datasets else ' with video'}; collect a pool first (need ≥ 2)")
    if len(records) > MAX_CANDIDATES:  # strategies compare all pairs: keep that bounded
        records = [records[i] for i in sorted(rng.choice(len(records), MAX_CANDIDATES, replace=False))]
    pool = candidates(store, task_id, records)
    existing = {queries._key(p.left_id, p.right_id) for p in store.list_pairs(task_id)}
    if strategy == "random":
        proposals = queries.random_pairs(pool, n, rng, existing)
    elif strategy == "diversity":
        proposals = queries.diversity_pairs(pool, n, rng, existing)
    else:
        references = store.list_policies(task_id, kind="reference")
        if not references:
            raise ValueError(f"strategy {strategy!r} needs a reference policy for {task_id}")
        tuned = [store.get_policy(i) for i in finetuned_ids] if finetuned_ids else store.list_policies(task_id, kind="finetuned")[-1:]
        if not tuned:
            raise ValueError(f"strategy {strategy!r} needs a fine-tuned policy for {task_id}: run a fine-tune first")
        if strategy == "uncertainty":
            reference = load_policy(references[0].path, task_id)
            proposals = queries.uncertainty_pairs(pool, n, rng, existing, [load_policy(p.path, task_id) for p in tuned],
                                                  reference, beta=beta)
        else:
            proposals = queries.ref_vs_ft_pairs(pool, n, rng, existing, references[0].id, tuned[0].id, tuned[0].name)
            if not proposals:
                raise ValueError(f"no new reference and {tuned[0].name!r} clips share a seed and window: collect the "
                                 f"pool again (pairs --collect) so the fine-tuned policy is rolled out on the same seeds")
    with store.batch() as batch:
        batch.one_at_a_time(POOL_LOCK)
        here = batch.pair_keys(task_id)  # with those another command added since this one chose
        return [batch.add_pair(p.left_id, p.right_id, strategy, p.score, p.reason) for p in proposals
                if queries._key(p.left_id, p.right_id) not in here]
