"""A workspace damaged after it was written (a row edited by hand, a file removed or cut short): what reads it says
what is wrong, by name, and never takes other data down with it."""
from __future__ import annotations

import pytest

from conftest import CHEETAH, choice_button, clips_workspace, make_policy


@pytest.fixture
def ws(tmp_path):
    """One policy, 6 real clips, 3 pairs, none labelled."""
    return clips_workspace(tmp_path / "ws")


def test_deleting_a_pair_removes_its_own_videos_not_the_file_its_row_names(ws):
    """Deleting a pair deleted whatever file its row's video_path named: a row edited to name a policy's checkpoint
    took the checkpoint with it."""
    from pathlib import Path

    first, second = ws.store.list_pairs(CHEETAH)[:2]
    policy = Path(ws.store.list_policies()[0].path)
    ws.store.set_pair_video(first.id, policy)  # the damage
    own = ws.pair_video_path(second.id)
    own.write_bytes(b"video")
    ws.store.set_pair_video(second.id, own)
    assert ws.delete_pairs([first.id, second.id]) == 2
    assert policy.is_file() and not own.exists()


def _label_page_on(ws, monkeypatch, pair_id: int):
    """The app's Label page, as labeller kim, skipping pairs until ``pair_id`` is on screen."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PREFINE_WORKSPACE", str(ws.root))
    monkeypatch.setenv("PREFINE_SHIPPED_POLICIES", "")
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    app = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=60)
    app.session_state["task_id"] = CHEETAH
    app.run()
    app.switch_page("pages/label.py").run()
    app.text_input(key="annotator").input("kim").run()
    while app.session_state["pair_id"] != pair_id:
        choice_button(app, "skip").click().run()
    assert not app.exception, app.exception
    return app


def _damage_a_clip(ws) -> int:
    """Remove the array file of the second pair's left clip (a cleanup, a partial copy); returns that pair's id."""
    from pathlib import Path

    pair = ws.store.list_pairs(CHEETAH)[1]
    Path(ws.store.trajectory_record(pair.left_id).path).unlink()
    return pair.id


def test_a_clip_whose_file_is_gone_is_named_by_the_store_itself(ws):
    """Every reader of a clip (Label page, teacher, training, export) said "clip N cannot be read" in its own words
    around the file's error; the store now names the clip once, and NotFound stays NotFound."""
    from prefine_core.store import NotFound

    clip = ws.store.get_pair(_damage_a_clip(ws)).left_id
    with pytest.raises(ValueError, match=rf"^clip {clip} cannot be read \(traj-.*\.npz is not a readable trajectory "
                                         "file: .*No such file"):
        ws.store.get_trajectory(clip)
    with pytest.raises(NotFound, match="trajectory_id 999 does not exist"):
        ws.store.get_trajectory(999)


def test_a_pair_whose_clip_is_gone_is_said_and_skipped_not_a_stop_to_labelling(ws, tmp_path, monkeypatch):
    """One clip file removed stopped the Label page with a traceback before its Skip button, and the same pair was
    served again at every visit; label-synthetic labelled nothing after it, run after run."""
    from pathlib import Path

    from conftest import choice_button
    from prefine_core.cli import main
    from prefine_core.labelling import pair_view

    clip_file = Path(ws.store.trajectory_record(ws.store.list_pairs(CHEETAH)[1].left_id).path)
    kept = clip_file.read_bytes()
    broken = _damage_a_clip(ws)
    view = pair_view(ws.store, ws.store.get_pair(broken))
    assert view.video is None and view.unreadable.startswith(f"pair {broken} cannot be judged: clip ")
    app = _label_page_on(ws, monkeypatch, broken)
    assert any(e.value.startswith(f"Pair {broken} cannot be judged") for e in app.error), [e.value for e in app.error]
    assert choice_button(app, "left").disabled and not choice_button(app, "skip").disabled
    choice_button(app, "skip").click().run()
    assert not app.exception and app.session_state["pair_id"] != broken

    assert main(["label-synthetic", "--workspace", str(ws.root)]) == 0
    labels = ws.store.effective_labels(CHEETAH)
    assert sorted(labels[labels.annotator == "synthetic-teacher"].pair_id) == sorted(
        p.id for p in ws.store.list_pairs(CHEETAH) if p.id != broken), "every other pair is labelled"
    clip_file.write_bytes(kept)  # restored: the teacher passed over the pair without a label, so it labels it now
    assert main(["label-synthetic", "--workspace", str(ws.root)]) == 0
    labels = ws.store.effective_labels(CHEETAH)
    assert labels[labels.pair_id == broken].annotator.tolist() == ["synthetic-teacher"]


def test_a_pair_the_teacher_passes_over_is_served_to_a_person_at_once(ws):
    """The teacher passed over a pair with a clip gone while holding it: with one person per pair, nobody was served
    it (nor its "cannot be judged" message) for the next 10 minutes. A pass lets the hold go, as a skip does."""
    from prefine_core.teachers import SyntheticTeacher, label_pending

    broken, unreadable = _damage_a_clip(ws), []
    assert label_pending(ws.store, SyntheticTeacher(), CHEETAH, overlap=1, unreadable=unreadable) == 2
    assert [said.split(":")[0] for said in unreadable] == [f"pair {broken} passed over"]
    assert ws.store.next_pair("kim", CHEETAH, overlap=1).id == broken


def test_auto_label_says_the_pairs_it_skipped(ws):
    from prefine_core.demo import auto_label_report

    broken = _damage_a_clip(ws)
    said = auto_label_report(ws, CHEETAH, "10")
    assert said.startswith(f"The synthetic teacher labelled 2 pairs and passed over 1 pair whose clips are gone or "
                           f"damaged (pair {broken} passed over: clip "), said


def test_an_export_of_a_damaged_store_is_refused_whole_and_leaves_nothing(ws, tmp_path):
    """An export stopped by a missing clip file left a folder of arrays and policies without a manifest, and rows
    edited by hand (a cost past any float, a pair naming a deleted clip) were exported as they were, for the import
    to refuse later."""
    from pathlib import Path

    import sqlalchemy as sa

    from prefine_core.exchange import export_bundle, import_bundle
    from prefine_core.workspace import Workspace

    with ws.store.engine.begin() as conn:
        conn.execute(sa.text("update trajectories set temperature = 1e400 where id = 2"))  # SQLite reads it as inf
    with pytest.raises(ValueError, match=r"trajectories row 2 holds a number that is not finite in temperature "
                                         r"\(edited by hand\?\); nothing was exported"):
        export_bundle(ws, tmp_path / "out")
    with ws.store.engine.begin() as conn:
        conn.execute(sa.text("update trajectories set temperature = null where id = 2"))
    clip = ws.store.list_pairs(CHEETAH)[1].left_id
    kept = Path(ws.store.trajectory_record(clip).path).read_bytes()
    _damage_a_clip(ws)
    with pytest.raises(ValueError, match=f"clip {clip} cannot be read .*; nothing was exported"):
        export_bundle(ws, tmp_path / "out")
    assert list(tmp_path.iterdir()) == [ws.root], "no export folder, whole or partial"
    Path(ws.store.trajectory_record(clip).path).write_bytes(kept)  # restored
    (tmp_path / "out").mkdir()  # an empty folder is taken
    assert export_bundle(ws, tmp_path / "out")["pairs"] == 3
    assert import_bundle(Workspace.open(tmp_path / "other", shipped=None), tmp_path / "out")["pairs"] == 3
    import sqlite3

    db = sqlite3.connect(ws.root / "prefine.db")  # a clip's row deleted under its pair (foreign keys off)
    db.execute("pragma foreign_keys = off")
    db.execute(f"delete from trajectories where id = {clip}")
    db.commit()
    db.close()
    with pytest.raises(ValueError, match="the store holds what an import of this export would refuse .*pair"):
        export_bundle(ws, tmp_path / "again")
    assert not (tmp_path / "again").exists() and len(list(tmp_path.iterdir())) == 3


@pytest.mark.parametrize("column, edit", [
    ("total_return", "'lots'"), ("total_cost", "1e400"), ("length", "'ten'"), ("seed", "'x'"), ("start", "4.5")])
def test_a_clip_row_whose_copy_of_its_arrays_was_edited_exports_what_the_arrays_say(ws, tmp_path, column, edit):
    """A clip's return edited to text reads as NaN, and refused the whole export ("trajectories row 1 holds a number
    that is not finite"), though an import computes it from the arrays; a length edited to text was exported as null,
    which the export's own check refused. What a clip's row copies from its arrays is exported from the arrays."""
    import json

    import sqlalchemy as sa

    from prefine_core.exchange import export_bundle, import_bundle
    from prefine_core.workspace import Workspace

    clip_id = ws.store.list_trajectories()[0].id
    with ws.store.engine.begin() as conn:
        conn.execute(sa.text(f"update trajectories set {column} = {edit} where id = {clip_id}"))
    assert export_bundle(ws, tmp_path / "out")["trajectories"] == 6
    row = json.loads((tmp_path / "out" / "trajectories.jsonl").read_text().splitlines()[0])
    clip = ws.store.get_trajectory(clip_id)
    assert row["id"] == clip_id and row["total_return"] == float(clip.rewards.sum())
    assert (row["total_cost"], row["length"], row["seed"], row["start"]) == (clip.total_cost, 10, 0, clip.start)
    assert import_bundle(Workspace.open(tmp_path / "other", shipped=None), tmp_path / "out")["trajectories"] == 6


def test_a_clip_whose_replay_is_not_its_stored_steps_gets_no_video_and_the_others_do(ws):
    """A clip's row edited (its seed) replayed another episode, and that video was shown to be judged as the stored
    clip the fine-tune trains on; and one clip that failed to render stopped the pass, every pair after it unrendered."""
    import sqlalchemy as sa

    from prefine_core.pair_videos import render_pending

    pairs = ws.store.list_pairs(CHEETAH)
    with ws.store.engine.begin() as conn:
        conn.execute(sa.text(f"update trajectories set seed = 3 where id = {pairs[0].left_id}"))
    done = render_pending(ws, CHEETAH, size=48)
    assert (done["rendered"], done["unrenderable"]) == (2, 1)
    (said,) = done["damaged"]
    assert said.startswith(f"pair {pairs[0].id}: clip {pairs[0].left_id}'s replay (policy 1, seed 3, steps 0–9) is not "
                           "its stored clip, so a video would show another episode than the one labelled: its row or "
                           "its policy's file changed since it was collected"), said
    assert [p.video_ready for p in ws.store.list_pairs(CHEETAH)] == [False, True, True]


@pytest.mark.parametrize("column, edit, reads_as", [
    ("total_return", "'lots'", "nan"), ("total_cost", "'none'", "nan"), ("length", "'ten'", None),
    ("start", "4.5", None), ("seed", "'x'", None), ("temperature", "'warm'", None)])
def test_a_number_column_edited_to_text_reads_as_unrecorded_and_stops_nothing(ws, capsys, column, edit, reads_as):
    """SQLite keeps text written into a number column by hand; one such clip row failed `pairs --task` ("agg function
    failed") and every mean over the task's clips. It now reads as NaN (a column that may not be empty) or None."""
    import json
    import math

    import sqlalchemy as sa

    from prefine_core.cli import main
    from prefine_core.pair_videos import render_pending

    clip = ws.store.list_pairs(CHEETAH)[0].left_id
    with ws.store.engine.begin() as conn:
        conn.execute(sa.text(f"update trajectories set {column} = {edit} where id = {clip}"))
    value = getattr(ws.store.trajectory_record(clip), column)
    assert math.isnan(value) if reads_as == "nan" else value is None
    capsys.readouterr()
    assert main(["pairs", "--task", CHEETAH, "--n", "1", "--json", "--workspace", str(ws.root)]) == 0
    (summary,) = json.loads(capsys.readouterr().out)["pool"]
    assert summary["clips"] == 6 and all(math.isfinite(v) for k, v in summary.items() if k != "source"), summary
    done = render_pending(ws, CHEETAH, size=48)  # a clip whose steps are unknown is not replayed: said, not a crash
    if column in ("length", "start"):
        assert done["damaged"][0] == (f"pair 1: clip {clip}'s row holds no readable first step or length (edited by "
                                      "hand?), so which steps to replay is unknown")
    assert done["rendered"] + done["unrenderable"] == len(ws.store.list_pairs(CHEETAH)) == 4


def test_a_pair_score_or_label_time_edited_to_text_reads_as_unrecorded(ws):
    import math

    import sqlalchemy as sa

    pair = ws.store.list_pairs(CHEETAH)[0]
    ws.store.add_label(pair.id, "ann", "left", seconds=2.5)
    with ws.store.engine.begin() as conn:
        conn.execute(sa.text(f"update pairs set score = 'high' where id = {pair.id}"))
        conn.execute(sa.text("update labels set seconds = 'slow'"))
    assert math.isnan(ws.store.get_pair(pair.id).score)
    assert [label.seconds for label in ws.store.label_history(CHEETAH)] == [None]


def test_a_video_path_edited_to_name_another_file_is_no_video(ws):
    """A pair's or a clip's video_path edited to name another file (a policy, /etc/passwd) was read as its video:
    the Label and Data pages sent that file to the browser."""
    from pathlib import Path

    from prefine_core.labelling import pair_view

    pair = ws.store.list_pairs(CHEETAH)[0]
    policy = Path(ws.store.list_policies()[0].path)
    ws.store.set_pair_video(pair.id, policy)
    ws.store.set_trajectory_video(pair.left_id, policy)
    assert ws.store.get_pair(pair.id).video_path is None and not ws.store.get_pair(pair.id).video_ready
    assert ws.store.trajectory_record(pair.left_id).video_path is None
    assert pair_view(ws.store, ws.store.get_pair(pair.id)).video is None
    own = ws.pair_video_path(pair.id)
    own.write_bytes(b"video")
    ws.store.set_pair_video(pair.id, own)
    assert ws.store.get_pair(pair.id).video_path == str(own), "its own file is its video"


@pytest.mark.parametrize("config,said", [("{not json", "the saved settings are not a JSON object ('{not json')"),
                                         ('{"steps": "many"}', "steps must be a whole number, got 'many'")])
def test_a_runs_saved_settings_damaged_since_are_said_as_the_runs(ws, config, said):
    """Settings that are not JSON were refused as "unknown config fields ['unreadable_json']", a field nobody wrote;
    a field of the wrong kind was said without saying it is run N's saved settings."""
    import re

    import sqlalchemy as sa

    from prefine_core import jobs
    from prefine_core.checkpoints import register_checkpoint
    from prefine_core.policy import save_policy

    run_id = ws.store.create_run(CHEETAH, 1, "prefine", {"steps": 20})
    ws.store.update_run(run_id, status="failed", error="stopped")
    with ws.store.engine.begin() as conn:
        conn.execute(sa.text("update runs set config = :config where id = :id"), {"config": config, "id": run_id})
    refusal = jobs.resume_refusal(ws, ws.store.get_run(run_id))
    assert refusal.startswith(f"run {run_id}'s saved settings are not a PREFINE config ({said}") and \
        "unreadable_json" not in refusal, refusal
    save_policy(make_policy(CHEETAH), jobs.run_dir(ws, run_id) / "checkpoints" / "step_0000020.safetensors")
    ws.store.update_run(run_id, status="done", error=None)
    with pytest.raises(ValueError, match=re.escape(f"run {run_id}'s saved settings cannot be read ({said}")):
        register_checkpoint(ws, run_id, 20)


def test_the_labels_of_a_fine_tune_name_a_clip_gone_or_of_another_task(ws):
    """A labelled pair whose clip file is gone said only "traj-….npz is not a readable trajectory file"; one whose
    task was edited to another robot's passed every check, and the fine-tune failed on a tensor size mismatch."""
    from pathlib import Path

    import sqlalchemy as sa

    from prefine_core.labelling import set_people_per_pair

    for labelled in ws.store.list_pairs(CHEETAH):
        ws.store.add_label(labelled.id, "ann", "left")
    pair = ws.store.list_pairs(CHEETAH)[1]
    hopper = "SafetyHopperVelocity-v1"
    set_people_per_pair(ws.store, hopper, "1")  # the task's row, which the edited pair's foreign key needs
    with ws.store.engine.begin() as conn:
        conn.execute(sa.text(f"update pairs set task_id = '{hopper}' where id = {pair.id}"))
    with pytest.raises(ValueError, match=f"clip {pair.left_id} is a clip of {CHEETAH}, but a labelled pair of {hopper} "
                                         "names it"):
        ws.store.preference_pairs(hopper)
    Path(ws.store.trajectory_record(ws.store.list_pairs(CHEETAH)[0].right_id).path).unlink()
    with pytest.raises(ValueError, match=f"clip .* cannot be read .*; it is a clip of a labelled pair of {CHEETAH}"):
        ws.store.preference_pairs(CHEETAH)


@pytest.mark.parametrize("where", ["videos", "prefine.db"])
def test_a_file_where_a_workspace_folder_should_be_or_the_reverse_is_said(tmp_path, capsys, monkeypatch, where):
    """A file named videos said "[Errno 17] File exists"; a folder named prefine.db, "holds no PREFINE store"."""
    import json

    from prefine_core.cli import main

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    root = tmp_path / "ws"
    root.mkdir()
    if where == "videos":
        (root / "prefine.db").touch()
        (root / "videos").write_text("not a folder")
        said = f"the workspace {root} holds a file named videos where its videos folder should be; move that file away"
    else:
        (root / "prefine.db").mkdir()
        said = f"the workspace {root} holds a folder named prefine.db where its store should be"
    assert main(["runs", "--workspace", str(root), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"].startswith(said)


def test_an_export_into_an_empty_folder_keeps_that_folder_as_it_is(ws, tmp_path):
    """The export written beside its folder and moved onto it replaced an empty folder given by the user: its
    permissions became the temporary folder's 0700, and a link to a folder (or ".") could not be replaced at all."""
    import os
    import stat

    from prefine_core.exchange import export_bundle

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o775)
    link = tmp_path / "link"
    link.symlink_to(shared)
    assert export_bundle(ws, link)["pairs"] == 3
    assert link.is_symlink() and stat.S_IMODE(shared.stat().st_mode) == 0o775
    assert (shared / "manifest.json").is_file() and not [p for p in os.listdir(shared) if p.startswith(".")]
    with pytest.raises(ValueError, match=f"export folder {link} is not empty"):
        export_bundle(ws, link)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        export_bundle(ws, tmp_path / "file")


def test_the_label_page_says_why_the_last_rendering_made_no_video_for_its_pair(ws, monkeypatch, capsys):
    """A pair whose clip no longer replays as stored was offered "Render missing videos" again and again, each
    rendering failing the same way and saying so only in the job's log."""
    import sqlalchemy as sa

    from prefine_core import jobs

    first = ws.store.list_pairs(CHEETAH)[0]
    with ws.store.engine.begin() as conn:
        conn.execute(sa.text(f"update trajectories set seed = 3 where id = {first.left_id}"))
    run_id = ws.store.create_run(CHEETAH, None, "render", {"size": 48})
    assert jobs.execute(ws, run_id) == "done"
    assert f"no video: pair {first.id}: clip {first.left_id}'s replay" in capsys.readouterr().out  # its log
    app = _label_page_on(ws, monkeypatch, first.id)  # the pairs with videos come first
    said = [w.value for w in app.warning]
    assert any(w.startswith(f"This pair has no video: the last rendering could not make it (clip {first.left_id}'s "
                            "replay") for w in said), said
    assert not any(w.startswith("This pair has no video, and no run of the app is rendering it") for w in said)


def test_a_failed_export_removes_only_what_it_wrote(ws, monkeypatch):
    """An export that failed emptied its whole folder: into the workspace's exports folder, it deleted another
    export's temporary folder being written there meanwhile (the Data page's download)."""
    from prefine_core import exchange

    _damage_a_clip(ws)
    real = exchange._write_bundle

    def meanwhile(*args, **kwargs):
        (ws.exports_dir / "other-download").mkdir()
        (ws.exports_dir / "other-download" / "part").write_text("theirs")
        return real(*args, **kwargs)

    monkeypatch.setattr(exchange, "_write_bundle", meanwhile)
    with pytest.raises(ValueError, match="cannot be read"):
        exchange.export_bundle(ws, ws.exports_dir)
    assert [p.name for p in ws.exports_dir.iterdir()] == ["other-download"]


def test_a_videos_folder_linked_to_another_disk_keeps_its_videos(tmp_path):
    """Rows keep resolved paths: with videos/ a link to another disk, every video read as none."""
    from prefine_core.workspace import Workspace

    elsewhere = tmp_path / "bigdisk" / "videos"
    elsewhere.mkdir(parents=True)
    root = tmp_path / "ws"
    root.mkdir()
    (root / "videos").symlink_to(elsewhere)
    ws = Workspace.open(root, shipped=None)
    ids = [ws.store.add_trajectory(_tiny_clip(), None, "test", ws.trajectories_dir) for _ in range(2)]
    pair = ws.store.add_pair(*ids, "random", 0.0, "test")
    video = ws.pair_video_path(pair)
    video.write_bytes(b"video")
    ws.store.set_pair_video(pair, video)
    assert ws.store.get_pair(pair).video_path == str(elsewhere / video.name) and ws.store.get_pair(pair).video_ready


def _tiny_clip():
    import numpy as np

    from prefine_core.rollout import Trajectory

    return Trajectory(CHEETAH, np.zeros((5, 17), np.float32), np.zeros((5, 6), np.float32), np.zeros(5, np.float32),
                      np.zeros(5, np.float32), terminated=False, truncated=True, seed=1)


def test_an_export_stopped_midway_is_named_when_the_same_folder_is_given_again(ws, tmp_path):
    from prefine_core.exchange import export_bundle

    out = tmp_path / "out"
    (out / ".export.partial-abc123").mkdir(parents=True)  # as a killed export leaves it
    with pytest.raises(ValueError, match=r"is not empty \(it holds \.export\.partial-abc123, left by an export that "
                                         r"was stopped: remove it\)"):
        export_bundle(ws, out)
