"""Pair videos rendered ahead of time, and the video of one clip on demand.

Pair videos are rendered by re-running the clip's seeded rollout with rendering on (same seed, same
trajectory) — in a background job (:func:`render_missing`, or a ``prepare`` job), so a labeller never
waits; :meth:`Store.next_pair` serves pairs whose video is ready first.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from prefine_core.entry import counted
from prefine_core.store import Store, TrajectoryRecord
from prefine_core.workspace import Workspace, plain_video_path


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
    return (f"Rendering videos in the background (run {job.id}): {counts['videos_ready']} of {counts['pairs']} ready; "
            "labelling can start with the first video.")


def render_missing(ws: Workspace, task_id: str, size: int = 256) -> int:
    """Render ``task_id``'s pair videos that are missing in a background job (``render``), unless a job is already
    at it; returns that job's run id. Its progress and log are a run's, like a fine-tune's."""
    from prefine_core import jobs

    running = video_job(ws, task_id)
    return running.id if running is not None else jobs.launch(ws, "render", task_id, None, {"size": int(size)})
