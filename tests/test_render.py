"""Videos: browser-playable H.264, overlay and cost timeline, synchronised pairs."""
import imageio.v2 as imageio
import numpy as np
import pytest

from prefine_core.render import TIMELINE_HEIGHT, annotate, compose_pair, record, write_clip_video, write_pair_video
from prefine_core.rollout import collect
from prefine_core.envs import SafetyTask
from tests.conftest import CHEETAH, CIRCLE, make_policy


def _probe(path):
    reader = imageio.get_reader(path)
    meta = reader.get_meta_data()
    frames = [f for f in reader]
    reader.close()
    return meta, frames


def test_recorded_frames_match_the_plain_rollout(cheetah_policy):
    trajectory, frames = record(cheetah_policy, seed=4, max_steps=25, size=64)
    with SafetyTask(CHEETAH) as task:
        plain = collect(cheetah_policy, task, seed=4, max_steps=25)
    assert np.array_equal(trajectory.actions, plain.actions)
    assert len(frames) == trajectory.length and frames[0].shape == (64, 64, 3)
    window, window_frames = record(cheetah_policy, seed=4, max_steps=25, size=64, frame_range=(10, 20))
    assert len(window_frames) == 10 and np.array_equal(window_frames[0], frames[10])


def test_a_window_renders_its_own_frames_only(cheetah_policy, monkeypatch):
    """A clip late in an episode rendered every frame before it and threw them away: preparing pairs of clips from
    whole episodes took minutes more. The steps before the window are simulated, not drawn; the frames are the same."""
    from prefine_core.envs import SafetyTask

    _, frames = record(cheetah_policy, seed=4, max_steps=40, size=64)
    drawn, render = [], SafetyTask.render
    monkeypatch.setattr(SafetyTask, "render", lambda task: drawn.append(1) or render(task))
    window, window_frames = record(cheetah_policy, seed=4, max_steps=40, size=64, frame_range=(30, 40))
    assert len(drawn) == 10 and len(window_frames) == 10
    assert all(np.array_equal(a, b) for a, b in zip(window_frames, frames[30:40]))
    assert window.length == 40


def test_clip_is_h264_yuv420p_with_all_frames(tmp_path, cheetah_policy):
    trajectory, frames = record(cheetah_policy, seed=0, max_steps=20, size=64)
    out = write_clip_video(frames, trajectory.costs, tmp_path / "clip.mp4")
    meta, decoded = _probe(out)
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert len(decoded) == 20
    assert not list(tmp_path.glob(".*")), "no temp files left behind"


def test_one_step_cost_event_is_visible_on_the_timeline():
    frames = [np.zeros((64, 300, 3), np.uint8)] * 300
    costs = np.zeros(300)
    costs[137] = 1
    annotated = annotate(frames, costs)
    strip = annotated[0][64:64 + TIMELINE_HEIGHT]
    red_columns = np.flatnonzero((strip[:, :, 0] > 150) & (strip[:, :, 1] < 80)).tolist()
    assert red_columns, "a single costly step must be marked"
    hidden = annotate(frames, costs, show_cost=False)[0][64:64 + TIMELINE_HEIGHT]
    assert not ((hidden[:, :, 0] > 150) & (hidden[:, :, 1] < 80)).any(), "hiding cost hides the marks"
    # a red border on the costly frame itself
    assert annotated[137][32, 1, 0] > 150 and annotated[136][32, 1, 0] < 50


def test_pair_pads_the_shorter_clip_and_plays_in_one_video(tmp_path):
    policy = make_policy(CIRCLE)
    a, fa = record(policy, seed=1, max_steps=30, size=64)
    b, fb = record(policy, seed=2, max_steps=18, size=64)
    out = write_pair_video(fa, a.costs, fb, b.costs, tmp_path / "pair.mp4")
    meta, decoded = _probe(out)
    assert len(decoded) == 30
    assert decoded[0].shape[1] >= 2 * 64
    with pytest.raises(ValueError, match="differ in shape"):
        compose_pair([np.zeros((8, 8, 3), np.uint8)], [np.zeros((8, 9, 3), np.uint8)])
    with pytest.raises(ValueError, match="frames but"):
        annotate(fa, a.costs[:-1])


def test_pair_recorded_in_threads_equals_serial_recording(cheetah_policy):
    from prefine_core.render import record_pair

    (a, fa), (b, fb) = record_pair(cheetah_policy, cheetah_policy, 3, 4, max_steps=15, size=48)
    serial_a, serial_fa = record(cheetah_policy, seed=3, max_steps=15, size=48)
    serial_b, serial_fb = record(cheetah_policy, seed=4, max_steps=15, size=48)
    assert np.array_equal(a.actions, serial_a.actions) and np.array_equal(b.actions, serial_b.actions)
    assert (len(fa), len(fb)) == (len(serial_fa), len(serial_fb)) == (15, 15)  # zip alone passes over missing frames
    assert all(np.array_equal(x, y) for x, y in zip(fa + fb, serial_fa + serial_fb))
