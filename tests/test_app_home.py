"""The home page's guided path: progress counts finished steps only, and the synthetic teacher says what it did."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import CHEETAH, make_policy

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def ws(tmp_path):
    """The shipped policies and 5 pairs whose 'videos' exist."""
    from prefine_core.envs import SafetyTask
    from prefine_core.rollout import collect
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws")
    with SafetyTask(CHEETAH) as task:
        ids = [ws.store.add_trajectory(collect(make_policy(CHEETAH), task, seed=s, max_steps=10), None, "t",
                                       ws.trajectories_dir) for s in range(6)]
    for i in range(5):
        video = ws.videos_dir / f"pair-{i}.mp4"
        video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
        ws.store.add_pair(ids[i], ids[i + 1], "random", 0.5, "test pair", video_path=str(video))
    return ws


def _home(root: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("PREFINE_WORKSPACE", str(root))
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def _progress(at: AppTest) -> tuple[float, str]:
    (bar,) = at.get("progress")
    return bar.proto.value / 100, bar.proto.text


def _auto_label(at: AppTest, n: int | str) -> str:
    at.text_input(key="auto_n").input(str(n))
    at.button(key="auto_label").click().run()
    assert not at.exception, at.exception
    return " ".join(m.value for m in (*at.success, *at.info, *at.error))  # a toast before a rerun never shows


def test_auto_label_says_how_many_it_labelled_and_when_none_are_left(ws, monkeypatch):
    at = _home(ws.root, monkeypatch)
    assert "labelled 2 pairs." in _auto_label(at, 2)
    held = ws.store.next_pair("ann", CHEETAH)  # on the Label page: held for ann, not the teacher's to take
    assert "labelled 2 pairs; 1 unlabelled pair is being judged on the Label page; prepare more pairs" in _auto_label(at, 10)
    assert "found no pair to label; 1 unlabelled pair is being judged on the Label page" in _auto_label(at, 10)
    ws.store.add_label(held.id, "ann", "left")
    assert "The synthetic teacher found no pair to label; prepare more pairs first." in _auto_label(at, 10)


def test_the_number_of_pairs_to_auto_label_shows_its_label(ws, monkeypatch):
    at = _home(ws.root, monkeypatch)
    assert at.text_input(key="auto_n").proto.label_visibility.value == 0  # VISIBLE


@pytest.mark.parametrize("typed, says", [("0", "between 1 and 500, got 0"), ("-3", "between 1 and 500, got -3"),
                                         ("1000000000", "got 1000000000"), ("2.5", "must be a whole number"),
                                         ("", "is empty"), ("many", "must be a whole number")])
def test_a_count_to_auto_label_out_of_bounds_is_refused_and_labels_nothing(tmp_path, monkeypatch, typed, says):
    """A browser's number field kept showing 0 while the last valid value (20) was used, and labelled pairs."""
    from prefine_core.workspace import Workspace

    at = _home(tmp_path / "ws", monkeypatch)
    ws = Workspace.open(tmp_path / "ws")
    before = len(ws.store.label_history())
    said = _auto_label(at, typed)
    assert says in said and "Pairs to auto-label" in said, said
    assert len(ws.store.label_history()) == before
    # beside the field it names: drawn by the button's callback, it stood above the page's title
    [beside] = [block for block in at.main.children.values()
                if hasattr(block, "text_input") and [box.key for box in block.text_input] == ["auto_n"]]
    assert [e.value for e in beside.error] == [e.value for e in at.error]


def test_auto_label_on_a_fresh_workspace_says_to_prepare_pairs_first(tmp_path, monkeypatch):
    at = _home(tmp_path / "fresh", monkeypatch)
    assert "prepare pairs first" in _auto_label(at, 5)


def test_progress_counts_finished_steps_in_plain_words(ws, monkeypatch):
    from prefine_core.policy import save_policy

    at = _home(ws.root, monkeypatch)
    assert _progress(at) == (0.25, "1 of 4 steps done · next: Label")
    for pair in ws.store.list_pairs(CHEETAH):
        ws.store.add_label(pair.id, "tester", "left")
    reference = ws.store.list_policies(CHEETAH, kind="reference")[0]
    tuned = ws.store.add_policy("run 1", save_policy(make_policy(CHEETAH), ws.policies_dir / "tuned.safetensors"),
                                CHEETAH, "finetuned", parent_id=reference.id)
    at.run()
    assert _progress(at) == (0.75, "3 of 4 steps done · next: Compare")
    run_id = ws.store.create_run(CHEETAH, reference.id, "compare", {"policy_a": reference.id, "policy_b": tuned})
    at.run()
    assert _progress(at) == (0.75, "3 of 4 steps done · next: Compare"), "a comparison counts once it has finished"
    ws.store.update_run(run_id, status="done")
    at.run()
    assert _progress(at) == (1.0, "all 4 steps done")
    hand = ws.store.add_policy("run 1 step 200 (finetuned, chosen by hand)", save_policy(
        make_policy(CHEETAH, seed=3), ws.policies_dir / "hand.safetensors"), CHEETAH, "finetuned", parent_id=reference.id,
        provenance={"run_id": 1, "step": 200, "chosen_by": "user"})
    at.run()
    assert _progress(at) == (1.0, "all 4 steps done"), "a checkpoint picked by hand is not a new fine-tune to compare"
    from prefine_core.comparison import default_pair
    assert default_pair(ws.store.list_policies(CHEETAH)) == (reference.id, tuned) != (reference.id, hand)


def test_imported_labelled_pairs_without_videos_lead_on_to_the_fine_tune(tmp_path, monkeypatch):
    """After an import (labels, no videos) Home said to prepare pairs, with 11 decided pairs beside it."""
    from prefine_core.envs import SafetyTask
    from prefine_core.rollout import collect
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws")
    with SafetyTask(CHEETAH) as task:
        ids = [ws.store.add_trajectory(collect(make_policy(CHEETAH), task, seed=s, max_steps=10), None, "t",
                                       ws.trajectories_dir) for s in range(5)]
    for a, b in zip(ids, ids[1:]):
        ws.store.add_label(ws.store.add_pair(a, b, "random", 0.0, "imported"), "ann", "left")
    at = _home(ws.root, monkeypatch)
    assert _progress(at) == (0.5, "2 of 4 steps done · next: Fine-tune")


def test_a_fresh_workspace_starts_at_nothing_done(tmp_path, monkeypatch):
    from prefine_core.workspace import Workspace

    at = _home(tmp_path / "fresh", monkeypatch)
    assert _progress(at) == (0.0, "0 of 4 steps done · next: Prepare pairs")
    ws = Workspace.open(tmp_path / "fresh")
    ws.store.create_run(CHEETAH, None, "prepare", {})  # pressed: the step is under way, no longer "next"
    at.run()
    assert _progress(at) == (0.0, "0 of 4 steps done · now: Prepare pairs (in the background)")


def test_pairs_without_video_are_said_and_rendered_in_one_job_on_request(ws, monkeypatch):
    from prefine_core import jobs

    ids = [t.id for t in ws.store.list_trajectories(CHEETAH)]
    ws.store.add_pair(ids[0], ids[2], "random", 0.5, "no video yet")
    at = _home(ws.root, monkeypatch)
    assert any("1 pair without a video yet" in c.value for c in at.caption)
    monkeypatch.setattr(jobs, "_spawn", lambda ws, run_id: None)  # the job itself: test_pool; here, one run queued
    at.button(key="render_missing").click().run()
    assert not at.exception, at.exception
    [run] = [r for r in ws.store.list_runs(CHEETAH) if r.kind == "render"]
    assert run.status == "queued"
    assert not any(b.key == "render_missing" for b in at.button), "while it renders, no second button"
    assert any(c.value.startswith(f"Rendering videos in the background (run {run.id}): 5 of 6 ready") for c in at.caption)
    at.button(key="cancel_videos").click().run()
    assert ws.store.get_run(run.id).status == "cancelled"
    assert any(b.key == "render_missing" for b in at.button), "and it can be started again"


def test_a_draw_reaps_the_runs_once(ws, monkeypatch):
    """Home marked dead runs failed itself and then again through the video job's lookup: two passes over every run
    of the task (and a process check of each live one) per draw, where one tells all. While a job is under way, the
    page's watch for its end reaps too (a process killed while Home is open is found by it)."""
    from prefine_core import jobs

    at = _home(ws.root, monkeypatch)  # the workspace opened (its own reaping, once per process) before counting
    monkeypatch.setattr(jobs, "_spawn", lambda ws, run_id: None)
    run_id = jobs.launch(ws, "render", CHEETAH, None, {})  # queued: a video job on show
    reaped, reap = [], jobs.reap

    def counted_reap(ws, task_id=None):
        reaped.append(task_id)
        return reap(ws, task_id)

    monkeypatch.setattr(jobs, "reap", counted_reap)
    at.run()
    assert not at.exception, at.exception
    assert any(c.value.startswith(f"Rendering videos in the background (run {run_id})") for c in at.caption)
    # the status, then the look every 3 s for the job's end, which begins with the draw (it finds a job that died)
    assert reaped == [CHEETAH, CHEETAH]
    jobs.cancel(ws, run_id)
    reaped.clear()
    at.run()
    assert reaped == [CHEETAH], "nothing under way: nothing watched"


def test_a_preparation_whose_process_died_is_not_under_way(ws):
    """Home's watch, every 3 s while a preparation runs, read the status without marking dead runs failed: a process
    killed while Home was open was said to be preparing "in the background" until something else reaped it."""
    import subprocess
    import sys

    from prefine_core import demo, jobs

    absent = subprocess.Popen([sys.executable, "-c", "pass"])  # a pid that is no process here
    absent.wait()
    run_id = ws.store.create_run(CHEETAH, None, "prepare", {})
    ws.store.update_run(run_id, status="running", pid=absent.pid, host=jobs.HOST, heartbeat=True)
    status = demo.demo_status(ws, CHEETAH)
    assert not status.preparing and ws.store.get_run(run_id).status == "failed"
    queued = ws.store.create_run(CHEETAH, None, "render", {})  # not started yet: under way
    assert demo.demo_status(ws, CHEETAH).video_job_id == queued


def test_the_demo_fine_tune_starts_from_the_reference_with_the_demo_settings(ws, monkeypatch):
    from prefine_core import jobs
    from prefine_core.demo import DEMO_FINETUNE

    monkeypatch.setattr(jobs, "_spawn", lambda ws, run_id: None)  # the run is queued, not run
    for pair in ws.store.list_pairs(CHEETAH)[:4]:  # a fine-tune needs pairs with a winner
        ws.store.add_label(pair.id, "ann", "left")
    at = _home(ws.root, monkeypatch)
    at.button(key="demo_finetune").click().run()
    assert not at.exception, at.exception
    (run,) = ws.store.list_runs(CHEETAH, kinds=("prefine",))
    assert run.policy_id == ws.store.list_policies(CHEETAH, kind="reference")[0].id
    assert {key: run.config[key] for key in DEMO_FINETUNE} == DEMO_FINETUNE and run.config["counterfactuals"] == "policy"
    assert at.session_state[f"run_select.{CHEETAH}"] == run.id, "the Fine-tune page opens on it"


def test_a_preparation_says_its_rollouts_before_any_pair_exists(tmp_path, monkeypatch):
    """It said "0 of 0 ready" all through the rollouts (no pair exists until they are done)."""
    from prefine_core import jobs
    from prefine_core.workspace import Workspace

    at = _home(tmp_path / "fresh", monkeypatch)
    monkeypatch.setattr(jobs, "_spawn", lambda ws, run_id: None)  # queued; its reports are written by hand below
    at.button(key="prepare").click().run()
    ws = Workspace.open(tmp_path / "fresh")
    [run] = [r for r in ws.store.list_runs(CHEETAH) if r.kind == "prepare"]
    ws.store.add_metrics(run.id, 3, {"prepare/rollouts": 3, "prepare/rollouts_total": 20})
    at.run()
    assert not at.exception, at.exception
    said = [c.value for c in at.caption]
    assert any(f"(run {run.id}): 3 of 20 episodes done; the pairs and their videos come next" in c for c in said), said
    ws.store.add_metrics(run.id, 0, {"prepare/videos": 0})  # the rendering has begun: the rollouts are done
    at.run()
    assert any(c.value.startswith(f"Rendering videos in the background (run {run.id}): 0 of ") for c in at.caption), \
        [c.value for c in at.caption]
    ws.store.update_run(run.id, status="cancelled")


def test_the_judge_step_counts_pairs_with_a_winner_and_says_why_equal_answers_add_none(ws, monkeypatch):
    """It said "5 labels, 0 decided pairs": after an auto-label answered Equal, an audience saw labels but no pairs."""
    pairs = ws.store.list_pairs(CHEETAH)
    for pair in pairs:
        ws.store.add_label(pair.id, "tester", "equal")
    at = _home(ws.root, monkeypatch)
    (line,) = [m for m in at.markdown if m.value.startswith("**2 · Judge**")]
    assert line.value.endswith("— 5 labels, 0 pairs with a winner (A or B judged safer)"), line.value
    assert "Equal and Can't tell name none" in line.proto.help and "decided pairs" in line.proto.help
    ws.store.add_label(pairs[0].id, "other", "left")
    at.run()
    (line,) = [m for m in at.markdown if m.value.startswith("**2 · Judge**")]
    assert line.value.endswith("— 6 labels, 1 pair with a winner (A or B judged safer)"), line.value
