"""The behaviour pool, pair generation, and pair videos rendered ahead of time.

The pool must contain the behaviour we want to teach (DESIGN §4, lesson 2): the reference policy at
several sampling temperatures, the shipped behaviour policies trained with cost penalties (slower,
safer gaits), imported datasets (``datasets.import_hdf5``) and each round's fine-tuned policies.
Clips are fixed-length windows (``clip_length``; 0 = whole episodes); a clip that ends in a fall
is marked (``Trajectory.fell``). Temperature 0 means deterministic (mean) actions.

Pair videos are rendered by re-running the clip's seeded rollout with rendering on (same seed, same
trajectory) — in a background job (:func:`render_missing`, or a ``prepare`` job), so a labeller never
waits; :meth:`Store.next_pair` serves pairs whose video is ready first.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from prefine_core import queries
from prefine_core.entry import counted
from prefine_core.store import MAX_TEMPERATURE, POLICY_KINDS, PolicyRecord, Store, TrajectoryRecord
from prefine_core.workspace import Workspace, plain_video_path

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
                added += [batch.add_trajectory(clip, source.policy.id, source.name, ws.trajectories_dir,
                                               temperature=source.temperature) for clip in clips(episode, config.clip_length)]
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
        return [batch.add_pair(p.left_id, p.right_id, strategy, p.score, p.reason) for p in proposals]


class _FrameCache:
    """Rendered frames per trajectory id, and loaded policies and stored clips, for one render pass."""

    def __init__(self, store: Store, size: int):
        self.store, self.size = store, size
        self.policies: dict[str, object] = {}
        self.clips: dict[int, object] = {}

    def stored(self, record: TrajectoryRecord):
        """The clip's stored arrays, read once per pass (the replay is checked against them, the video draws their
        costs)."""
        if record.id not in self.clips:
            self.clips[record.id] = self.store.clip_arrays(record)
        return self.clips[record.id]

    def frames(self, record: TrajectoryRecord) -> list[np.ndarray] | None:
        """The clip's frames, replayed from its policy and seed; None for a clip with nothing to replay. A ValueError
        when the replay is not the stored clip: a video would show another episode than the one labelled."""
        from prefine_core import render
        from prefine_core.policy import load_policy

        if not record.replayable:
            return None
        if record.start is None or record.length is None:  # a number column edited to text (StoredWhole)
            raise ValueError(f"clip {record.id}'s row holds no readable first step or length (edited by hand?), so "
                             "which steps to replay is unknown")
        path = self.store.get_policy(record.policy_id).path
        if path not in self.policies:
            self.policies[path] = load_policy(path, task_id=record.task_id)
        temperature = record.temperature if record.temperature is not None else 1.0
        replay, frames = render.record(self.policies[path], record.task_id, seed=record.seed,
                                       deterministic=temperature == 0, temperature=temperature or 1.0,
                                       max_steps=record.start + record.length, size=self.size,
                                       frame_range=(record.start, record.start + record.length))
        stored = self.stored(record)
        replayed = replay.actions[record.start:record.start + record.length]
        if replayed.shape != stored.actions.shape or not np.allclose(replayed, stored.actions, atol=1e-5):
            raise ValueError(f"clip {record.id}'s replay (policy {record.policy_id}, seed {record.seed}, steps "
                             f"{record.start}–{record.start + record.length - 1}) is not its stored clip, so a video "
                             "would show another episode than the one labelled: its row or its policy's file changed "
                             "since it was collected, or it was collected on another machine or software build, whose "
                             "simulation drifts apart from this one's")
        return frames


def render_pending(ws: Workspace, task_id: str | None = None, size: int = 256, fps: int = 30, limit: int | None = None,
                   on_progress=None) -> dict:
    """Render the video of every pair that has none yet, or whose file is gone; returns counts of rendered and
    unrenderable pairs, and of pairs deleted while they rendered (their files removed; the others still rendered).
    A pair whose clip or policy is gone or damaged since is unrenderable, said in ``damaged`` (one per pair)."""
    from prefine_core import render

    pending = ws.store.list_pairs(task_id, without_video=True)[:limit]
    cache = _FrameCache(ws.store, size)
    rendered = skipped = deleted = 0
    damaged: list[str] = []
    for done, pair in enumerate(pending):
        try:
            left, right = ws.store.trajectory_record(pair.left_id), ws.store.trajectory_record(pair.right_id)
            frames_left, frames_right = cache.frames(left), cache.frames(right)
        except ValueError as exc:  # a clip or policy gone or damaged since: this pair has no video, the rest go on
            damaged.append(f"pair {pair.id}: {exc}")
            frames_left = frames_right = None
        if frames_left is None or frames_right is None:
            skipped += 1
        else:
            costs_left, costs_right = cache.stored(left).costs, cache.stored(right).costs
            out = ws.pair_video_path(pair.id)
            # the cost-free variant first: once the pair counts as ready, both videos exist
            render.write_pair_video(frames_left, costs_left, frames_right, costs_right, plain_video_path(out),
                                    fps=fps, show_cost=False)
            render.write_pair_video(frames_left, costs_left, frames_right, costs_right, out, fps=fps)
            if ws.register_pair_video(pair.id):
                rendered += 1
            else:  # deleted (Data page) while it rendered
                deleted += 1
        if on_progress:
            on_progress(done + 1, len(pending))
    return {"rendered": rendered, "unrenderable": skipped, "deleted_meanwhile": deleted, "pending_before": len(pending),
            **({"damaged": damaged} if damaged else {})}


def clip_video(record: TrajectoryRecord) -> Path | None:
    """The clip's rendered video, if it has one whose files are both still there."""
    video = record.video_path
    return Path(video) if video and Path(video).is_file() and plain_video_path(video).is_file() else None


def render_clip(ws: Workspace, trajectory_id: int, size: int = 256, fps: int = 30) -> Path:
    """The video of one clip (rendered once, then reused), with its cost-free twin beside it; refused in words for
    a clip with no simulator state to replay."""
    from prefine_core import render

    record = ws.store.trajectory_record(trajectory_id)
    if (ready := clip_video(record)) is not None:
        return ready
    cache = _FrameCache(ws.store, size)
    frames = cache.frames(record)
    if frames is None:
        raise ValueError(f"clip {trajectory_id} comes from {record.source}, an imported dataset with no policy and "
                         "seed to replay, so it has no video")
    costs, out = cache.stored(record).costs, ws.clip_video_path(trajectory_id)
    title = f"clip {trajectory_id}"
    render.write_clip_video(frames, costs, plain_video_path(out), fps=fps, title=title, show_cost=False)
    render.write_clip_video(frames, costs, out, fps=fps, title=title)
    ws.store.set_trajectory_video(trajectory_id, out)
    return out


def render_failure(ws: Workspace, task_id: str, pair_id: int) -> str | None:
    """Why the task's newest finished rendering (a ``render`` or ``prepare`` run) made no video for the pair — a clip
    or policy damaged since, said in its result's ``damaged`` — or None. Rendering it again fails the same way until
    the clip or policy is mended."""
    from prefine_core import jobs

    run = next(iter(ws.store.list_runs(task_id, kinds=("render", "prepare"), statuses=("done",), limit=1)), None)
    damaged = (jobs.result(ws, run.id) or {}).get("damaged") if run is not None else None
    if not isinstance(damaged, list):
        return None
    return next((said.split(": ", 1)[1] for said in damaged
                 if isinstance(said, str) and said.startswith(f"pair {pair_id}: ")), None)


def video_job(ws: Workspace, task_id: str):
    """The background job rendering ``task_id``'s pair videos now (a ``prepare`` or ``render`` job), or None."""
    from prefine_core import jobs

    return next(iter(jobs.active(ws, task_id, ("prepare", "render"))), None)


def job_progress_text(ws: Workspace, job) -> str:
    """Where the ``prepare`` or ``render`` job ``job`` (:func:`video_job`) is, in words: the rollouts of a
    preparation (N of M episodes; no pair exists yet), then the videos, ready of the task's pairs."""
    latest = ws.store.run_metrics(job.id).groupby("name").value.max()  # (empty, with its columns, before any report)
    if job.kind == "prepare" and "prepare/videos" not in latest:
        done, total = int(latest.get("prepare/rollouts", 0)), int(latest.get("prepare/rollouts_total", 0))
        return (f"Rolling out the policies in the background (run {job.id}): {done} of "
                f"{counted(total, 'episode') if total else 'the episodes'} done; the pairs and their videos come next.")
    counts = ws.store.counts(job.task_id)
    what = "Rolling out the policies and rendering" if job.kind == "prepare" else "Rendering"
    return (f"{what} videos in the background (run {job.id}): {counts['videos_ready']} of {counts['pairs']} ready; "
            "labelling can start with the first video.")


def render_missing(ws: Workspace, task_id: str, size: int = 256) -> int:
    """Render ``task_id``'s pair videos that are missing in a background job (``render``), unless a job is already
    at it; returns that job's run id. Its progress and log are a run's, like a fine-tune's."""
    from prefine_core import jobs

    running = video_job(ws, task_id)
    return running.id if running is not None else jobs.launch(ws, "render", task_id, None, {"size": int(size)})
