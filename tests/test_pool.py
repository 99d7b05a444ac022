"""The behaviour pool: sources, windows and falls, the per-source summary, pair generation, and pair
videos rendered ahead of time (in this process and in a background OS process)."""
from __future__ import annotations

import pytest

from conftest import CHEETAH, HOPPER, make_policy


@pytest.fixture
def pool_ws(tmp_path, monkeypatch):
    """A workspace with a reference and a behaviour policy (random-init, real files) and a tiny pool."""
    from prefine_core import pool
    from prefine_core.policy import save_policy
    from prefine_core.workspace import Workspace

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    ws = Workspace.open(tmp_path / "ws", shipped=None)
    for kind, name, seed in (("reference", "reference", 0), ("behaviour", "behaviour_penalty2", 1)):
        path = save_policy(make_policy(CHEETAH, seed=seed), ws.policies_dir / f"{name}.safetensors")
        ws.store.add_policy(name, path, CHEETAH, kind)
    config = pool.PoolConfig(CHEETAH, seeds=(0, 1), reference_temperatures=(0.0, 1.0), clip_length=40, max_steps=100)
    pool.collect_pool(ws, config)
    return ws, config


def test_pool_holds_every_source_in_windows_and_is_summarised(pool_ws):
    from prefine_core import pool

    ws, config = pool_ws
    records = ws.store.list_trajectories(CHEETAH)
    # 3 sources (reference at T0 and T1, behaviour at T1) × 2 seeds × 2 full windows of 40 (the last 20 steps dropped)
    assert len(records) == 12 and {r.length for r in records} == {40} and {r.start for r in records} == {0, 40}
    assert {r.source for r in records} == {"reference:reference@T0", "reference:reference@T1",
                                           "behaviour:behaviour_penalty2@T1"}
    assert pool.collect_pool(ws, config) == []  # already collected: nothing new
    summary = pool.pool_summary(ws.store, CHEETAH)
    assert set(summary.columns) >= {"source", "clips", "return_mean", "cost_mean", "length_mean", "fall_rate", "cost_per_step"}
    assert summary.clips.tolist() == [4, 4, 4] and summary.length_mean.tolist() == [40.0] * 3


def test_a_broken_policy_file_is_refused_before_any_rollout(pool_ws):
    """The broken file was found at its turn, after the clips of the policies before it had been written."""
    from prefine_core import pool

    ws, config = pool_ws
    broken = ws.policies_dir / "broken.safetensors"
    broken.write_bytes(b"not a policy")
    ws.store.add_policy("zz broken", broken, CHEETAH, "behaviour")
    before = ws.store.counts()["trajectories"]
    more = pool.PoolConfig(CHEETAH, seeds=(0, 1, 2), reference_temperatures=(0.0, 1.0), clip_length=40, max_steps=100)
    with pytest.raises(ValueError, match="broken.safetensors is not a readable safetensors policy file"):
        pool.collect_pool(ws, more)
    assert ws.store.counts()["trajectories"] == before  # seed 2 of the good policies not rolled out either


def test_windows_keep_a_short_last_clip_only_when_it_falls():
    from prefine_core.envs import SafetyTask
    from prefine_core.pool import clips
    from prefine_core.rollout import collect

    with SafetyTask(HOPPER) as task:
        episode = collect(make_policy(HOPPER), task, seed=0, max_steps=200)
    assert episode.fell  # a random hopper falls within a few dozen steps
    windows = clips(episode, 5)
    assert [w.fell for w in windows] == [False] * (len(windows) - 1) + [True]
    assert sum(w.length for w in windows) == episode.length
    assert clips(episode, 0) == [episode]


def test_generated_pairs_record_strategy_score_and_reason(pool_ws):
    from prefine_core import pool

    ws, _ = pool_ws
    random_ids = pool.generate_pairs(ws.store, CHEETAH, 4, "random", seed=1)
    diverse_ids = pool.generate_pairs(ws.store, CHEETAH, 3, "diversity")
    pairs = {p.id: p for p in ws.store.list_pairs(CHEETAH)}
    assert {pairs[i].strategy for i in random_ids} == {"random"}
    assert all(pairs[i].score > 0 and "differently" in pairs[i].reason for i in diverse_ids)
    keys = [frozenset((p.left_id, p.right_id)) for p in pairs.values()]
    assert len(set(keys)) == len(keys) == 7  # never the same pair twice
    with pytest.raises(ValueError, match="fine-tuned"):
        pool.generate_pairs(ws.store, CHEETAH, 2, "uncertainty")
    with pytest.raises(ValueError, match="strategy"):
        pool.generate_pairs(ws.store, CHEETAH, 2, "cost-contrast")


def test_reference_vs_finetuned_on_the_same_seed_and_uncertainty(pool_ws):
    from prefine_core import pool
    from prefine_core.policy import save_policy

    ws, config = pool_ws
    path = save_policy(make_policy(CHEETAH, seed=7), ws.policies_dir / "ft.safetensors")
    ref = ws.store.list_policies(CHEETAH, kind="reference")[0]
    ft = ws.store.add_policy("ft round 1", path, CHEETAH, "finetuned", parent_id=ref.id)
    pool.collect_pool(ws, config)
    ids = pool.generate_pairs(ws.store, CHEETAH, 10, "ref_vs_ft")
    assert len(ids) == 4  # 2 seeds × 2 windows at temperature 1 (the fine-tuned policy is sampled at T1)
    for pair in map(ws.store.get_pair, ids):
        left, right = ws.store.trajectory_record(pair.left_id), ws.store.trajectory_record(pair.right_id)
        assert {left.policy_id, right.policy_id} == {ref.id, ft}
        assert (left.seed, left.start, left.temperature) == (right.seed, right.start, right.temperature)
        assert f"seed {left.seed}" in pair.reason
    uncertain = [ws.store.get_pair(i) for i in pool.generate_pairs(ws.store, CHEETAH, 3, "uncertainty")]
    assert len(uncertain) == 3 and all(p.strategy == "uncertainty" and "P(left)" in p.reason for p in uncertain)


def test_render_pending_writes_pair_videos(pool_ws):
    from prefine_core import pair_videos, pool

    ws, _ = pool_ws
    pool.generate_pairs(ws.store, CHEETAH, 2, "random")
    result = pair_videos.render_pending(ws, CHEETAH, size=64, limit=1)
    assert result == {"rendered": 1, "unrenderable": 0, "deleted_meanwhile": 0, "pending_before": 1}
    (ready,) = [p for p in ws.store.list_pairs(CHEETAH) if p.video_ready]
    assert ready.video_path.endswith(".mp4") and (ws.videos_dir / f"pair-{ready.id}.mp4").stat().st_size > 1000
    plain = ws.videos_dir / f"pair-{ready.id}-plain.mp4"  # for "hide the cost": the same pair without overlay
    assert plain.stat().st_size > 1000 and plain.read_bytes() != (ws.videos_dir / f"pair-{ready.id}.mp4").read_bytes()
    assert ws.store.next_pair("labeller").id == ready.id  # the ready pair is served first


def test_a_pair_whose_video_file_is_gone_is_without_video_and_rendered_again(pool_ws):
    """A video file removed after rendering (by hand, or a workspace copied without its videos) left a row naming
    it: the pair counted as ready, the Label page redrew itself without end, and no render job would make it again."""
    from prefine_core import pair_videos, pool

    ws, _ = pool_ws
    first, second = pool.generate_pairs(ws.store, CHEETAH, 2, "random")
    assert pair_videos.render_pending(ws, CHEETAH, size=48)["rendered"] == 2
    gone = ws.videos_dir / f"pair-{first}.mp4"
    gone.unlink()
    assert not ws.store.get_pair(first).video_ready and ws.store.get_pair(second).video_ready
    assert [p.id for p in ws.store.list_pairs(CHEETAH, without_video=True)] == [first]
    assert ws.store.counts(CHEETAH)["videos_ready"] == 1
    assert pair_videos.render_pending(ws, CHEETAH, size=48) == {"rendered": 1, "unrenderable": 0,
                                                                "deleted_meanwhile": 0, "pending_before": 1}
    assert gone.stat().st_size > 1000 and ws.store.counts(CHEETAH)["videos_ready"] == 2


def test_a_pair_deleted_while_the_videos_render_is_passed_over(pool_ws):
    """Deleting a pending pair on the Data page failed the whole render job and left the pair's files behind."""
    from prefine_core import pair_videos, pool

    ws, _ = pool_ws
    first, second, third = pool.generate_pairs(ws.store, CHEETAH, 3, "random", seed=5)
    doomed = []

    def delete_the_second(done: int, total: int) -> None:  # a person deletes it while the job is on the first
        if done == 1:
            ws.delete_pairs([second])
            doomed.append(second)

    result = pair_videos.render_pending(ws, CHEETAH, size=48, on_progress=delete_the_second)
    assert doomed and result["deleted_meanwhile"] == 1 and result["rendered"] == result["pending_before"] - 1
    assert not list(ws.videos_dir.glob(f"pair-{second}*")), "no files of the deleted pair"
    assert ws.store.get_pair(third).video_ready, "the pairs after it still rendered"


def test_missing_videos_render_in_one_background_job(pool_ws):
    import time

    from prefine_core import jobs, pair_videos, pool

    ws, _ = pool_ws
    pool.generate_pairs(ws.store, CHEETAH, 1, "random")
    assert pair_videos.video_job(ws, CHEETAH) is None
    run_id = pair_videos.render_missing(ws, CHEETAH, size=48)
    assert pair_videos.video_job(ws, CHEETAH).id == run_id
    assert pair_videos.render_missing(ws, CHEETAH) == run_id, "not twice"
    deadline = time.time() + 180
    while ws.store.get_run(run_id).status in jobs.ACTIVE and time.time() < deadline:
        time.sleep(0.5)
    run = ws.store.get_run(run_id)
    assert (run.kind, run.status) == ("render", "done"), run.error
    assert ws.store.counts(CHEETAH)["videos_ready"] == 1 and jobs.result(ws, run_id)["rendered"] == 1
    assert pair_videos.video_job(ws, CHEETAH) is None


def test_a_clip_is_rendered_once_as_its_own_video_and_a_dataset_clip_is_refused(pool_ws):
    import imageio.v3 as iio
    import numpy as np

    from prefine_core import pair_videos
    from prefine_core.rollout import Trajectory
    from prefine_core.workspace import plain_video_path

    ws, config = pool_ws
    record = next(r for r in ws.store.list_trajectories(CHEETAH) if r.replayable and r.start > 0)
    assert pair_videos.clip_video(record) is None
    video = pair_videos.render_clip(ws, record.id, size=64)
    frames = iio.imread(video)
    assert len(frames) == record.length == config.clip_length, "one frame per step of the window, not of the episode"
    assert len(iio.imread(plain_video_path(video))) == record.length
    assert pair_videos.clip_video(ws.store.trajectory_record(record.id)) == video
    stamp = video.stat().st_mtime_ns
    assert pair_videos.render_clip(ws, record.id, size=64) == video and video.stat().st_mtime_ns == stamp, "reused"

    steps = 5
    dataset = Trajectory(obs=np.zeros((steps, 17), np.float32), actions=np.zeros((steps, 6), np.float32),
                         rewards=np.zeros(steps, np.float32), costs=np.zeros(steps, np.float32), terminated=False,
                         truncated=False, task_id=CHEETAH)
    clip = ws.store.add_trajectory(dataset, None, "dsrl", ws.trajectories_dir)
    with pytest.raises(ValueError, match=f"clip {clip} comes from dsrl, an imported dataset"):
        pair_videos.render_clip(ws, clip)
    assert ws.store.trajectory_record(clip).video_path is None


def test_clips_and_pairs_another_command_added_meanwhile_are_not_added_again(pool_ws, monkeypatch):
    """Two ``pairs --collect`` at once each rolled out and stored what neither had found in the store (38 clips where
    16 were due, and a pair of a clip with its own twin); three ``pairs --n 200`` stored each pair two or three times.
    What another command added between this one's look at the store and its write is not added again."""
    from prefine_core import pool, queries, rollout

    ws, config = pool_ws
    more = pool.PoolConfig(CHEETAH, seeds=(2,), reference_temperatures=(0.0, 1.0), clip_length=40, max_steps=100)
    real_collect, real_random = rollout.collect, queries.random_pairs

    def collect_while_another_command_collects(*args, **kwargs):
        monkeypatch.setattr(rollout, "collect", real_collect)
        pool.collect_pool(ws, more)  # the other command, start to end
        return real_collect(*args, **kwargs)

    monkeypatch.setattr(rollout, "collect", collect_while_another_command_collects)
    assert pool.collect_pool(ws, more) == []
    records = ws.store.list_trajectories(CHEETAH)
    assert len(records) == 18 and len({(r.source, r.seed, r.start) for r in records}) == 18

    def choose_while_another_command_stores_the_same(*args, **kwargs):
        proposals = real_random(*args, **kwargs)
        for p in proposals[:3]:
            ws.store.add_pair(p.left_id, p.right_id, "random", p.score, "the other command")
        return proposals

    monkeypatch.setattr(queries, "random_pairs", choose_while_another_command_stores_the_same)
    assert len(pool.generate_pairs(ws.store, CHEETAH, 5, seed=7)) == 2
    keys = [queries._key(p.left_id, p.right_id) for p in ws.store.list_pairs(CHEETAH)]
    assert len(keys) == 5 and len(set(keys)) == 5
