"""Uploads and downloads of the data page: round trip, and every kind of bad file refused with advice."""
from __future__ import annotations

import io
import zipfile

import pytest

from conftest import CHEETAH, HOPPER, make_policy
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


def test_export_zip_imports_into_another_workspace(ws, tmp_path):
    from prefine_core.workspace import Workspace

    data = transfer.export_zip(ws, CHEETAH)
    other = Workspace.open(tmp_path / "other", shipped=None)
    message = transfer.import_upload(other, "export.zip", data, CHEETAH)
    assert "1 pairs" in message
    assert other.store.effective_labels(CHEETAH).choice.tolist() == ["left"]


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


def test_delete_needs_confirmation_and_takes_the_pair_with_its_labels(ws, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PREFINE_WORKSPACE", str(ws.root))
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    app = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=60).run()
    app.switch_page("pages/data.py").run()
    (pair,) = ws.store.list_pairs(CHEETAH)
    app.multiselect(key="delete_ids").set_value([pair.id]).run()
    assert app.button(key="delete").disabled, "deleting must wait for the typed confirmation"
    app.text_input(key="delete_confirm").input("DELETE").run()
    app.button(key="delete").click().run()
    assert not app.exception, app.exception
    assert ws.store.list_pairs(CHEETAH) == [] and ws.store.effective_labels(CHEETAH).empty
    assert ws.store.counts()["trajectories"] == 3, "the clips stay"
