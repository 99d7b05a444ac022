"""Uploads and downloads of the data page: round trip, and every kind of bad file refused with advice."""
from __future__ import annotations

import io
import zipfile

import pytest

from conftest import CHEETAH, HOPPER, clips_workspace, make_policy
from prefine_core import transfer


@pytest.fixture
def ws(tmp_path):
    from prefine_core.envs import SafetyTask
    from prefine_core.rollout import collect
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", shipped=None)
    with SafetyTask(CHEETAH) as task:
        ids = [ws.store.add_trajectory(collect(make_policy(CHEETAH), task, seed=s, max_steps=10), None, "t", ws.trajectories_dir)
               for s in range(3)]
    pair = ws.store.add_pair(ids[0], ids[1], "random", 0.0, "why <b>not</b>")
    ws.store.add_label(pair, "ann", "left")
    return ws


def _data_page(ws, monkeypatch, timeout: int = 60, task: str | None = None):
    """The app on ``ws``, switched to the Data page (``task``: picked in the sidebar first)."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PREFINE_WORKSPACE", str(ws.root))
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    app = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=timeout).run()
    if task is not None:
        app.session_state["task_id"] = task
    return app.switch_page("pages/data.py").run()


def test_export_zip_imports_into_another_workspace(ws, tmp_path):
    from prefine_core.workspace import Workspace

    data = transfer.export_zip(ws, CHEETAH)
    other = Workspace.open(tmp_path / "other", shipped=None)
    message = transfer.import_upload(other, "export.zip", data, CHEETAH)
    assert message == f"imported 1 pair, 1 label row, 3 clips and 0 policies into {CHEETAH}"
    hopper_view = transfer.import_upload(Workspace.open(tmp_path / "third", shipped=None), "export.zip", data, HOPPER)
    assert hopper_view.endswith(f"into {CHEETAH}; pick it in the sidebar to see them"), "said where it went"
    assert other.store.effective_labels(CHEETAH).choice.tolist() == ["left"]
    before = other.store.counts(CHEETAH)
    before_here = ws.store.counts(CHEETAH)
    for target in (other, ws):  # again, and back into the workspace it came from: its pairs would count twice
        message = transfer.import_upload(target, "export.zip", data, CHEETAH)
        assert message.startswith("nothing new in export.zip: everything in it is already in the workspace"), message
    assert other.store.counts(CHEETAH) == before and ws.store.counts(CHEETAH) == before_here


@pytest.mark.parametrize("name, data, says", [
    ("notes.txt", b"hello", "not a file PREFINE Studio can import"),
    ("export.zip", b"PK\x03\x04 broken", "not a readable zip"),
    ("data.hdf5", b"not hdf5 at all", "not an HDF5 file"),
    ("policy.safetensors", b"\x00" * 64, "not a usable policy"),
    ("empty.zip", b"", "is empty"),
])
def test_bad_uploads_say_what_to_upload(ws, name, data, says):
    before = ws.store.counts()
    with pytest.raises(ValueError, match=says):
        transfer.import_upload(ws, name, data, CHEETAH)
    assert ws.store.counts() == before


def test_a_zip_with_an_unsafe_path_is_refused(ws):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../evil/manifest.json", "{}")
    with pytest.raises(ValueError, match="unsafe path"):
        transfer.import_upload(ws, "x.zip", buffer.getvalue(), CHEETAH)


def test_a_policy_for_another_task_is_filed_under_its_task(ws, tmp_path):
    from prefine_core.policy import save_policy

    path = save_policy(make_policy(HOPPER), tmp_path / "hopper.safetensors")
    message = transfer.import_upload(ws, "hopper.safetensors", path.read_bytes(), CHEETAH)
    assert f"a policy for {HOPPER}" in message and "switch the task" in message
    assert [p.task_id for p in ws.store.list_policies(kind="imported")] == [HOPPER]


def test_an_export_is_offered_only_for_the_task_and_state_it_was_made_of(ws, monkeypatch):
    """It was offered after a task switch under the new task's file name, and after deletions, holding what was gone."""
    app = _data_page(ws, monkeypatch, task=CHEETAH)
    app.button(key="export").click().run()
    assert not app.exception, app.exception
    assert len(app.get("download_button")) == 1
    ws.store.add_label(ws.store.list_pairs(CHEETAH)[0].id, "bea", "right")  # the workspace changed since
    app.run()
    assert not app.get("download_button")
    assert any("prepare it again" in c.value for c in app.caption)
    app.button(key="export").click().run()
    assert len(app.get("download_button")) == 1
    app.session_state["task_id"] = HOPPER
    app.run()
    assert not app.get("download_button"), "not under another task's name"


def test_an_export_over_the_upload_limit_points_at_an_import_without_a_limit(ws, monkeypatch):
    """It said to import the zip with `./studio cli import`, which unpacks a zip only up to 2 GB too: a folder export,
    imported as a folder, has no limit."""
    from streamlit import config

    limit = config.get_option("server.maxUploadSize")
    config.set_option("server.maxUploadSize", 0)  # the download, of a few kB, is over it
    try:
        app = _data_page(ws, monkeypatch, task=CHEETAH)
        app.button(key="export").click().run()
    finally:
        config.set_option("server.maxUploadSize", limit)
    (said,) = [c.value for c in app.caption if "an upload to this page takes" in c.value]
    assert "`./studio cli import FILE.zip` (up to 2 GB unpacked)" in said, said
    assert "(`./studio cli export --out DIR`, then `./studio cli import DIR`) has no size limit" in said, said


def test_the_export_download_carries_the_pairs_videos_unless_left_out(tmp_path, monkeypatch):
    """Pairs imported from a download came without videos, to be rendered by replaying their clips, which is refused
    where the replay drifts (another machine or software build). The download carries each pair's two videos, stored
    as they are (they do not deflate), and its upload installs them; with the toggle off they are left out, and an
    export prepared one way is not offered for the other."""
    from prefine_core.pair_videos import render_pending
    from prefine_core.workspace import Workspace

    ws = clips_workspace(tmp_path / "ws")
    render_pending(ws, CHEETAH, size=48)
    app = _data_page(ws, monkeypatch, task=CHEETAH)
    app.button(key="export").click().run()
    assert not app.exception, app.exception
    assert len(app.get("download_button")) == 1
    data = app.session_state["export_zip"][1].read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        videos = [member for member in archive.infolist() if member.filename.startswith("videos/")]
    assert len(videos) == 6 and {member.compress_type for member in videos} == {zipfile.ZIP_STORED}
    other = Workspace.open(tmp_path / "other", shipped=None)
    said = transfer.import_upload(other, "export.zip", data, CHEETAH)
    assert said.startswith("imported 3 pairs (3 with their videos), "), said
    assert other.store.counts(CHEETAH)["videos_ready"] == 3
    app.toggle(key="export_videos").set_value(False).run()
    assert not app.get("download_button"), "the export prepared with the videos"
    app.button(key="export").click().run()
    with zipfile.ZipFile(app.session_state["export_zip"][1]) as archive:
        assert not [name for name in archive.namelist() if name.startswith("videos/")]
    assert [path.name for path in (ws.exports_dir / "downloads").iterdir()] == [app.session_state["export_zip"][1].name], \
        "the session's first export was replaced by its second"


def test_delete_needs_confirmation_and_takes_the_pair_with_its_labels(ws, monkeypatch):
    app = _data_page(ws, monkeypatch)
    (pair,) = ws.store.list_pairs(CHEETAH)
    from prefine_core.workspace import plain_video_path

    videos = [ws.pair_video_path(pair.id), plain_video_path(ws.pair_video_path(pair.id))]
    for video in videos:
        video.parent.mkdir(parents=True, exist_ok=True)
        video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    ws.store.set_pair_video(pair.id, videos[0])
    assert app.button(key="delete").disabled, "nothing chosen yet"
    app.multiselect(key="delete_ids").set_value([pair.id]).run()
    for typed in ("", "delete"):  # the button takes the click (held, the click leaving the box fell on nothing) …
        app.text_input(key="delete_confirm").input(typed)
        app.button(key="delete").click().run()
        assert [e.value for e in app.error] == ["Type DELETE in the box above to confirm; nothing was deleted."]
        assert len(ws.store.list_pairs(CHEETAH)) == 1  # … and deletes only once DELETE is typed
    app.text_input(key="delete_confirm").input("DELETE")
    app.button(key="delete").click().run()  # typed and clicked at once: one click
    assert not app.exception, app.exception
    assert ws.store.list_pairs(CHEETAH) == [] and ws.store.effective_labels(CHEETAH).empty
    assert ws.store.counts()["trajectories"] == 3, "the clips stay"
    assert not any(video.exists() for video in videos), "its videos go with it"
    assert app.multiselect(key="delete_ids").value == [] and app.text_input(key="delete_confirm").value == ""
    assert app.button(key="delete").disabled, "after a delete, the next one needs a new choice and confirmation"
    assert any("deleted 1 pair(s)" in t.value for t in app.toast)


def test_an_older_export_does_not_bring_a_deleted_pair_back_unless_restore_is_ticked(ws, monkeypatch):
    before = transfer.export_zip(ws, CHEETAH)
    (pair,) = ws.store.list_pairs(CHEETAH)
    ws.delete_pairs([pair.id])
    app = _data_page(ws, monkeypatch)
    app.file_uploader(key="upload").set_value(("before.zip", before, "application/zip")).run()
    app.button(key="import").click().run()
    assert not app.exception, app.exception
    said = [s.value for s in app.success]
    assert any("1 pair deleted here since was left out, with 1 label row" in s for s in said), said
    assert ws.store.list_pairs(CHEETAH) == [] and ws.store.effective_labels(CHEETAH).empty
    app.checkbox(key="restore_deleted").check().run()
    app.button(key="import").click().run()
    assert any(s.value.startswith("imported 1 pair, 1 label row, 0 clips") for s in app.success), [s.value for s in app.success]
    (back,) = ws.store.list_pairs(CHEETAH)
    assert (back.left_id, back.right_id) == (pair.left_id, pair.right_id) and back.id != pair.id
    assert ws.store.effective_labels(CHEETAH).choice.tolist() == ["left"]


def _imported_files(ws) -> list:
    folder = ws.policies_dir / "imported"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_importing_the_same_policy_again_returns_the_existing_one(ws, tmp_path):
    from prefine_core.policy import save_policy

    data = save_policy(make_policy(CHEETAH, name="fast"), tmp_path / "p.safetensors").read_bytes()
    assert "was added" in transfer.import_upload(ws, "cheetah.safetensors", data, CHEETAH)
    (first,) = ws.store.list_policies(CHEETAH, kind="imported")
    assert "cheetah.safetensors" in first.name, "the uploaded file's name tells imports apart"
    files, counts = _imported_files(ws), ws.store.counts()
    for name in ("cheetah.safetensors", "copy.safetensors"):  # the same bytes, under any name
        message = transfer.import_upload(ws, name, data, CHEETAH)
        assert f"already in the workspace as {first.name} (policy {first.id})" in message
    assert ws.store.list_policies(CHEETAH) == [first] and ws.store.counts() == counts
    assert _imported_files(ws) == files


def test_a_copy_of_a_registered_policy_is_not_imported_again(ws, tmp_path):
    from prefine_core.policy import save_policy

    path = save_policy(make_policy(CHEETAH), ws.policies_dir / "shipped.safetensors")
    policy_id = ws.store.add_policy("behaviour_penalty2", path, CHEETAH, "reference")
    message = transfer.import_upload(ws, "reference.safetensors", path.read_bytes(), CHEETAH)
    assert f"(policy {policy_id})" in message
    assert [p.id for p in ws.store.list_policies()] == [policy_id] and _imported_files(ws) == []


def test_two_imports_of_one_new_policy_at_once_register_it_once(ws, tmp_path, monkeypatch):
    """Both imports check for the same bytes before either registers them (two tabs, two app instances): the
    window is opened here by hiding the first import from the second's check."""
    from prefine_core.policy import save_policy

    data = save_policy(make_policy(CHEETAH), tmp_path / "p.safetensors").read_bytes()
    monkeypatch.setattr(type(ws), "policy_with_bytes", lambda *args: None)
    first = transfer.import_upload(ws, "mine.safetensors", data, CHEETAH)
    second = transfer.import_upload(ws, "same-bytes-other-name.safetensors", data, CHEETAH)
    (policy,) = ws.store.list_policies(CHEETAH, kind="imported")
    assert f"(policy {policy.id})" in first and f"(policy {policy.id})" in second
    assert len(_imported_files(ws)) == 1 and _imported_files(ws)[0].read_bytes() == data


def test_a_corrupt_policy_upload_names_the_users_file_in_plain_words(ws):
    before = ws.store.counts()
    with pytest.raises(ValueError) as refused:
        transfer.import_upload(ws, "bad.safetensors", b"this is a text file, renamed", CHEETAH)
    message = str(refused.value)
    assert message.startswith("bad.safetensors is not a usable policy") and "not a readable safetensors" in message
    assert message.count("bad.safetensors") == 1, "no internal stored file name"
    assert "HeaderTooLarge" not in message and "deserializing" not in message, "no raw library error"
    assert ws.store.counts() == before and _imported_files(ws) == []


def test_the_import_button_pressed_twice_adds_one_policy(ws, tmp_path, monkeypatch):
    from prefine_core.policy import save_policy

    data = save_policy(make_policy(CHEETAH), tmp_path / "p.safetensors").read_bytes()
    app = _data_page(ws, monkeypatch)
    app.file_uploader(key="upload").set_value(("cheetah.safetensors", data, "application/octet-stream")).run()
    app.button(key="import").click().run()
    assert any("was added" in s.value for s in app.success), [e.value for e in app.error]
    app.button(key="import").click().run()
    assert not app.exception, app.exception
    (policy,) = ws.store.list_policies(CHEETAH, kind="imported")  # the app also registered the shipped ones
    said = [s.value.replace("\\", "") for s in app.success]  # said literally: markdown's specials escaped
    assert any(f"already in the workspace as {policy.name} (policy {policy.id})" in s for s in said), said


def test_the_clips_tab_renders_a_clip_on_request_and_plays_it(tmp_path, monkeypatch):
    from prefine_core import pair_videos, pool
    from prefine_core.policy import save_policy
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", shipped=None)
    path = save_policy(make_policy(CHEETAH), ws.policies_dir / "reference.safetensors")
    ws.store.add_policy("reference", path, CHEETAH, "reference")
    pool.collect_pool(ws, pool.PoolConfig(CHEETAH, seeds=(0,), reference_temperatures=(1.0,), clip_length=20,
                                          max_steps=20))
    (clip,) = ws.store.list_trajectories(CHEETAH)
    app = _data_page(ws, monkeypatch, timeout=120)
    assert app.selectbox(key="preview_clip").value == clip.id and len(app.get("video")) == 0  # no pairs: no video
    app.button(key="render_clip").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert pair_videos.clip_video(ws.store.trajectory_record(clip.id)) is not None
    assert not any(b.key == "render_clip" for b in app.button), "a rendered clip plays; it is not rendered again"
    assert len(app.get("video")) == 1


def test_agreement_with_one_annotator_says_what_kappa_needs(ws, monkeypatch):
    app = _data_page(ws, monkeypatch)
    assert not app.exception, app.exception
    assert any(c.value == "Cohen's κ needs two annotators who judged the same pairs: set People per pair to 2 or more."
               for c in app.caption)
    kappa_shown = lambda: any("annotator_b" in d.value.columns for d in app.dataframe)  # noqa: E731 (keys are not kept)
    assert not kappa_shown()
    # a second annotator on another pair only: no κ (it showed a row "overlap 0, kappa None" and no word of why)
    ids, judged = [t.id for t in ws.store.list_trajectories(CHEETAH)], ws.store.label_history()[0].pair_id
    ws.store.add_label(ws.store.add_pair(ids[1], ids[2], "random", 0.0, "another"), "someone else", "right")
    app.run()
    assert any(c.value.startswith("Cohen's κ needs two annotators who judged the same pairs") for c in app.caption)
    assert not kappa_shown()
    ws.store.add_label(judged, "someone else", "left")  # now one pair in common
    app.run()
    assert kappa_shown()
    app.session_state["task_id"] = CHEETAH
    app.run()
    box = app.text_input(key=f"overlap.{CHEETAH}")
    assert box.value == "1"
    box.input("many").run()
    app.button(key="save_overlap").click().run()
    assert any("People per pair must be a whole number" in e.value for e in app.error)
    assert ws.store.task_overlap(CHEETAH) == 1
    app.text_input(key=f"overlap.{CHEETAH}").input("3").run()
    app.button(key="save_overlap").click().run()
    assert not app.exception, app.exception
    assert ws.store.task_overlap(CHEETAH) == 3 and any("now goes to 3 people" in m.value for m in app.success)


def test_a_policy_nothing_uses_is_deleted_with_its_file_and_a_shipped_one_is_refused(ws, monkeypatch, tmp_path):
    from pathlib import Path

    from prefine_core import transfer
    from prefine_core.policy import save_policy

    data = save_policy(make_policy(CHEETAH), tmp_path / "wrong.safetensors").read_bytes()
    wrong, _ = transfer.register_policy(ws, "wrong.safetensors", data)
    app = _data_page(ws, monkeypatch)
    shipped = ws.store.list_policies(CHEETAH, kind="reference")[0]
    assert app.button(key="policy_delete").disabled, "nothing chosen yet"
    app.selectbox(key="policy_delete_id").set_value(wrong.id).run()
    app.button(key="policy_delete").click().run()
    assert [e.value for e in app.error] == ["Type DELETE in the box above to confirm; nothing was deleted."]
    assert wrong.id in [p.id for p in ws.store.list_policies()]
    app.selectbox(key="policy_delete_id").set_value(shipped.id).run()
    app.text_input(key="policy_delete_confirm").input("DELETE")
    app.button(key="policy_delete").click().run()
    assert not app.exception, app.exception
    # said in the Policies tab, under the button: drawn by the callback above the page, it moved the tabs back to Pairs
    assert [e.value for e in app.error] == [e.value for e in app.tabs[3].error]
    assert any("is shipped with PREFINE Studio" in e.value for e in app.tabs[3].error)
    assert ws.store.get_policy(shipped.id).name == shipped.name
    app.selectbox(key="policy_delete_id").set_value(wrong.id).run()
    app.text_input(key="policy_delete_confirm").input("DELETE").run()
    app.button(key="policy_delete").click().run()
    assert not app.exception, app.exception
    assert wrong.id not in [p.id for p in ws.store.list_policies()] and not Path(wrong.path).exists()
    assert app.selectbox(key="policy_delete_id").value is None and app.text_input(key="policy_delete_confirm").value == ""


def test_a_policy_name_is_said_literally_not_as_markup(ws, monkeypatch, tmp_path):
    from prefine_core import transfer
    from prefine_core.policy import save_policy

    name = "<b>bold</b> **x**"
    data = save_policy(make_policy(CHEETAH, name=name), tmp_path / "odd.safetensors").read_bytes()
    odd, _ = transfer.register_policy(ws, "odd.safetensors", data)
    assert odd.name.startswith(name)
    app = _data_page(ws, monkeypatch)
    app.selectbox(key="policy_delete_id").set_value(odd.id).run()
    app.text_input(key="policy_delete_confirm").input("DELETE")
    app.button(key="policy_delete").click().run()
    assert not app.exception, app.exception
    said = [t.value for t in app.toast]
    assert any(r"\<b\>bold\</b\> \*\*x\*\*" in t for t in said), said  # escaped: shown as typed, not in bold


def test_label_rows_with_a_choice_no_label_may_have_are_said(ws, monkeypatch):
    import sqlalchemy as sa

    with ws.store.engine.begin() as conn:
        conn.execute(sa.text("update labels set choice = 'LEFT!'"))
    app = _data_page(ws, monkeypatch)
    assert not app.exception, app.exception
    assert any(w.value.startswith("1 label row of this task holds a choice no label may have") for w in app.warning), \
        [w.value for w in app.warning]


def test_an_empty_workspace_says_how_its_pairs_labels_and_clips_come(tmp_path, monkeypatch):
    """A new user's Data page showed three empty tables and nothing else."""
    from prefine_core.workspace import Workspace

    app = _data_page(Workspace.open(tmp_path / "empty", shipped=None), monkeypatch)
    said = " ".join(c.value for c in app.caption)
    assert f"No pairs of {CHEETAH} yet: Home's *Prepare pairs*" in said
    assert "No labels yet: judge pairs on the Label page" in said and "No clips yet" in said


def test_the_data_tables_say_choices_in_the_label_pages_words(ws, monkeypatch):
    """The tables showed ``left``, ``cant_tell`` and ``retract`` where the Label page's buttons say "A safer",
    "Can't tell" and Undo, and named a pair's clips "left" and "right" where it says A and B."""
    pair = ws.store.list_pairs(CHEETAH)[0].id
    ws.store.add_label(pair, "bo", "cant_tell")
    ws.store.undo_last_label("bo", CHEETAH)
    app = _data_page(ws, monkeypatch)
    pairs, labels = app.dataframe[0].value, app.dataframe[1].value
    assert list(pairs.columns[:3]) == ["id", "A (clip)", "B (clip)"] and pairs.labels.tolist() == ["A safer"]
    assert labels.choice.tolist() == ["undone", "Can't tell", "A safer"]  # newest first


def test_a_prepared_download_is_a_file_that_a_session_replaces_and_that_goes_a_day_after_its_session(ws):
    """The Data page keeps the path of its prepared export, not its bytes (held for the session's life, about 0.7 MB a
    pair with videos). Preparing again replaces the session's own file; another session's stays until it is a day
    old; what is left is a whole zip that imports."""
    import os
    import time

    from prefine_core.workspace import Workspace

    mine = transfer.prepare_download(ws, CHEETAH)
    theirs = transfer.prepare_download(ws, CHEETAH)
    again = transfer.prepare_download(ws, CHEETAH, replacing=mine)
    assert not mine.exists() and theirs.exists() and again.exists()
    day_old = time.time() - transfer.DOWNLOAD_KEPT_S - 60
    os.utime(theirs, (day_old, day_old))
    last = transfer.prepare_download(ws, CHEETAH, replacing=again)
    assert sorted((ws.exports_dir / "downloads").iterdir()) == [last]
    other = Workspace.open(ws.root.parent / "other", shipped=None)
    said = transfer.import_upload(other, "export.zip", last.read_bytes(), CHEETAH)
    assert said.startswith("imported 1 pair, 1 label row"), said
