"""Export/import round trip with the pairs' videos, DSRL/D4RL HDF5 import, and all-or-nothing rejection of bad files."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import CHEETAH, clips_workspace, make_policy
from store_backends import pg_schema_url  # noqa: F401


@pytest.fixture
def labelled_ws(tmp_path, monkeypatch):
    """A workspace with a real (tiny) pool, pairs, and a label history with a change of mind and an undo."""
    from prefine_core import pool
    from prefine_core.policy import save_policy
    from prefine_core.workspace import Workspace

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    ws = Workspace.open(tmp_path / "ws1", shipped=None)
    path = save_policy(make_policy(CHEETAH), ws.policies_dir / "reference.safetensors")
    ref = ws.store.add_policy("ref", path, CHEETAH, "reference", provenance={"algo": "ppo"})
    ws.store.add_policy("ft", ws.policies_dir / "gone.safetensors", CHEETAH, "finetuned", parent_id=ref)
    with pytest.warns(UserWarning, match="no file"):  # the fine-tuned policy's checkpoint is gone: left out
        pool.collect_pool(ws, pool.PoolConfig(CHEETAH, seeds=(0,), reference_temperatures=(0.0, 1.0), clip_length=40,
                                              max_steps=80))
    p1, p2, p3 = pool.generate_pairs(ws.store, CHEETAH, 3, "random")
    ws.store.add_label(p1, "ann", "left", seconds=3.0)
    ws.store.add_label(p1, "ann", "right", seconds=1.0)
    ws.store.add_label(p2, "bob", "skip")
    ws.store.add_label(p3, "bob", "equal")
    ws.store.undo_last_label("bob")
    return ws


def _label_view(store):
    """Label history with ids replaced by the labelled trajectories' arrays' fingerprints."""
    view = []
    for h in store.label_history():
        pair = store.get_pair(h.pair_id)
        left = store.get_trajectory(pair.left_id)
        view.append((h.annotator, h.choice, h.seconds, h.supersedes_id is not None, float(left.obs.sum()),
                     pair.strategy, pair.reason))
    return view


def test_export_import_round_trip(labelled_ws, tmp_path):
    from prefine_core.exchange import export_bundle, import_bundle
    from prefine_core.policy import load_policy
    from prefine_core.workspace import Workspace

    summary = export_bundle(labelled_ws, tmp_path / "out")
    assert summary["labels"] == 5 and summary["pairs"] == 3
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["format"] == "prefine-export/1"
    ws2 = Workspace.open(tmp_path / "ws2", shipped=None)
    assert import_bundle(ws2, tmp_path / "out") == {"policies": 2, "trajectories": 4, "pairs": 3, "labels": 5,
                                                   "videos": 0, "videos_for_pairs_here": 0, "labels_already_here": 0,
                                                   "pairs_deleted_here": 0, "labels_on_deleted_pairs": 0,
                                                   "tasks": [CHEETAH]}
    assert _label_view(ws2.store) == _label_view(labelled_ws.store)
    assert ws2.store.effective_labels().choice.tolist() == ["right"]
    ref, ft = ws2.store.list_policies(CHEETAH)
    assert ft.parent_id == ref.id and ref.provenance["algo"] == "ppo"
    load_policy(ref.path, CHEETAH)  # the checkpoint travelled with the export
    for a, b in zip(labelled_ws.store.list_trajectories(), ws2.store.list_trajectories()):
        np.testing.assert_array_equal(labelled_ws.store.get_trajectory(a.id).actions, ws2.store.get_trajectory(b.id).actions)
        assert (a.source, a.seed, a.start, a.temperature, a.total_cost) == (b.source, b.seed, b.start, b.temperature, b.total_cost)
    export_bundle(ws2, tmp_path / "again")  # and the import exports to the same content
    for name in ("pairs", "labels"):
        first = [{k: v for k, v in json.loads(line).items() if k != "created_at"}
                 for line in (tmp_path / "out" / f"{name}.jsonl").read_text().splitlines()]
        second = [{k: v for k, v in json.loads(line).items() if k != "created_at"}
                  for line in (tmp_path / "again" / f"{name}.jsonl").read_text().splitlines()]
        assert len(first) == len(second)
        assert [r.get("choice", r.get("reason")) for r in first] == [r.get("choice", r.get("reason")) for r in second]


def test_a_pair_deleted_since_the_export_stays_deleted_unless_restored(labelled_ws, tmp_path):
    """Deleting a pair is a person's decision: an export made before it (one's own, or a colleague's that carries
    the pair on with new labels) does not bring the pair back, nor its labels, unless asked to."""
    from prefine_core import transfer
    from prefine_core.exchange import export_bundle, import_bundle
    from prefine_core.workspace import Workspace

    store = labelled_ws.store
    export_bundle(labelled_ws, tmp_path / "before")
    colleague = Workspace.open(tmp_path / "colleague", shipped=None)
    import_bundle(colleague, tmp_path / "before")
    doomed = next(p for p in store.list_pairs(CHEETAH) if p.id in set(store.effective_labels().pair_id))
    colleague_pair = next(p.id for p in colleague.store.list_pairs(CHEETAH)
                          if float(colleague.store.get_trajectory(p.left_id).obs.sum())
                          == float(store.get_trajectory(doomed.left_id).obs.sum()))
    colleague.store.add_label(colleague_pair, "cleo", "left")
    export_bundle(colleague, tmp_path / "colleague-export")
    labelled_ws.delete_pairs([doomed.id])
    assert store.deleted_pairs(CHEETAH) == {(doomed.left_id, doomed.right_id): doomed.id}
    history = len(store.label_history())

    again = import_bundle(labelled_ws, tmp_path / "before")
    assert (again["pairs"], again["labels"], again["pairs_deleted_here"], again["labels_on_deleted_pairs"]) == (0, 0, 1, 2)
    theirs = import_bundle(labelled_ws, tmp_path / "colleague-export")
    assert (theirs["pairs"], theirs["labels"], theirs["pairs_deleted_here"], theirs["labels_on_deleted_pairs"]) == (0, 0, 1, 3)
    assert doomed.id not in {p.id for p in store.list_pairs(CHEETAH)}
    assert (doomed.left_id, doomed.right_id) not in {(p.left_id, p.right_id) for p in store.list_pairs(CHEETAH)}
    assert len(store.label_history()) == history
    said = transfer._bundle_said("colleague.zip", theirs, CHEETAH)
    assert "1 pair deleted here since was left out, with 3 label rows" in said and "Restore pairs deleted here" in said

    restored = import_bundle(labelled_ws, tmp_path / "colleague-export", restore_deleted=True)
    assert (restored["pairs"], restored["labels"], restored["pairs_deleted_here"]) == (1, 3, 0)
    back = next(p for p in store.list_pairs(CHEETAH) if (p.left_id, p.right_id) == (doomed.left_id, doomed.right_id))
    assert back.id != doomed.id and store.deleted_pairs(CHEETAH) == {}
    assert sorted(h.annotator for h in store.label_history() if h.pair_id == back.id) == ["ann", "ann", "cleo"]
    assert import_bundle(labelled_ws, tmp_path / "before")["pairs_deleted_here"] == 0  # here again: nothing left out


def _standing(store) -> dict:
    """The standing label per (pair shown as its two clips' windows, annotator)."""
    def clip(trajectory_id):
        record = store.trajectory_record(trajectory_id)
        return record.source, record.seed, record.start

    return {(clip(r.left_id), clip(r.right_id), r.annotator): r.choice for r in store.effective_labels().itertuples()}


def test_annotators_labels_from_other_workspaces_merge_onto_the_pairs_they_share(labelled_ws, tmp_path):
    """A lead hands the pairs out, two annotators label them in workspaces of their own, and the lead imports both
    exports: each pair stays once, the labels of all three stand on it, and an import again adds nothing."""
    from prefine_core.exchange import export_bundle, import_bundle
    from prefine_core.workspace import Workspace

    lead = labelled_ws
    export_bundle(lead, tmp_path / "handout")
    p1, p2, p3 = (p.id for p in lead.store.list_pairs(CHEETAH))
    exports = []
    for name, choices in (("cy", ("left", "equal", "right")), ("di", ("right", "right", "cant_tell"))):
        annotator_ws = Workspace.open(tmp_path / name, shipped=None)
        import_bundle(annotator_ws, tmp_path / "handout")
        for pair, choice in zip(annotator_ws.store.list_pairs(CHEETAH), choices):
            annotator_ws.store.add_label(pair.id, name, choice)
        export_bundle(annotator_ws, tmp_path / f"from-{name}")
        exports.append(tmp_path / f"from-{name}")
    before = {name: lead.store.counts()[name] for name in ("trajectories", "pairs")}
    history = len(lead.store.label_history())
    first = import_bundle(lead, exports[0])
    assert first == {"policies": 0, "trajectories": 0, "pairs": 0, "labels": 3, "videos": 0, "videos_for_pairs_here": 0,
                     "labels_already_here": 5, "pairs_deleted_here": 0, "labels_on_deleted_pairs": 0,
                     "tasks": [CHEETAH]}
    assert import_bundle(lead, exports[1])["labels"] == 3
    assert {name: lead.store.counts()[name] for name in ("trajectories", "pairs")} == before, "nothing twice"
    assert len(lead.store.label_history()) == history + 6 and len(lead.store.list_policies()) == 2
    standing = lead.store.effective_labels()
    assert sorted(standing.annotator) == ["ann", "cy", "cy", "cy", "di", "di", "di"]
    assert dict(zip(standing[standing.annotator == "cy"].pair_id, standing[standing.annotator == "cy"].choice)) == {
        p1: "left", p2: "equal", p3: "right"}
    assert import_bundle(lead, exports[0]) == {"policies": 0, "trajectories": 0, "pairs": 0, "labels": 0,
                                               "videos": 0, "videos_for_pairs_here": 0, "labels_already_here": 8,
                                               "pairs_deleted_here": 0, "labels_on_deleted_pairs": 0,
                                               "tasks": [CHEETAH]}
    assert len(lead.store.label_history()) == history + 6


def test_a_history_carried_on_elsewhere_merges_and_one_that_went_another_way_is_refused(labelled_ws, tmp_path):
    from prefine_core.exchange import export_bundle, import_bundle
    from prefine_core.workspace import Workspace

    export_bundle(labelled_ws, tmp_path / "out")
    elsewhere = Workspace.open(tmp_path / "elsewhere", shipped=None)
    import_bundle(elsewhere, tmp_path / "out")
    first = elsewhere.store.list_pairs(CHEETAH)[0].id
    elsewhere.store.add_label(first, "ann", "equal")  # ann changes her mind there
    export_bundle(elsewhere, tmp_path / "on")
    assert import_bundle(labelled_ws, tmp_path / "on")["labels"] == 1
    assert _standing(labelled_ws.store) == _standing(elsewhere.store), "her later label stands here too"

    labelled_ws.store.add_label(labelled_ws.store.list_pairs(CHEETAH)[0].id, "ann", "left")  # and here, differently
    elsewhere.store.add_label(first, "ann", "right")
    export_bundle(elsewhere, tmp_path / "apart")
    counts, history = labelled_ws.store.counts(), len(labelled_ws.store.label_history())
    with pytest.raises(ValueError, match="labelled by ann here and in the export, differently"):
        import_bundle(labelled_ws, tmp_path / "apart")
    assert labelled_ws.store.counts() == counts and len(labelled_ws.store.label_history()) == history


def test_labels_here_on_a_pair_whose_clips_differ_are_refused_not_counted_twice(labelled_ws, tmp_path):
    from prefine_core.exchange import export_bundle, import_bundle
    from prefine_core.rollout import load_trajectory, save_trajectory

    export_bundle(labelled_ws, tmp_path / "out")
    labelled = json.loads((tmp_path / "out" / "labels.jsonl").read_text().splitlines()[0])["pair_id"]
    pair = next(json.loads(line) for line in (tmp_path / "out" / "pairs.jsonl").read_text().splitlines()
                if json.loads(line)["id"] == labelled)
    clip = load_trajectory(tmp_path / "out" / "arrays" / f"{pair['left_id']}.npz")
    clip.obs[0, 0] += 1.0  # the same window, other numbers: no longer the clip that is here
    save_trajectory(clip, tmp_path / "out" / "arrays", str(pair["left_id"]))
    counts, history = labelled_ws.store.counts(), len(labelled_ws.store.label_history())
    with pytest.raises(ValueError, match="labels on it are, on another pair"):
        import_bundle(labelled_ws, tmp_path / "out")
    assert labelled_ws.store.counts() == counts and len(labelled_ws.store.label_history()) == history


def _corrupt_missing_array(out):
    next((out / "arrays").glob("*.npz")).unlink()


def _corrupt_label_choice(out):
    lines = (out / "labels.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    row["choice"] = "dunno"
    (out / "labels.jsonl").write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")


def _corrupt_truncated_labels(out):
    (out / "labels.jsonl").write_text("\n".join((out / "labels.jsonl").read_text().splitlines()[:2]) + "\n")


def _corrupt_bad_json(out):
    with open(out / "pairs.jsonl", "a") as handle:
        handle.write('{"id": 99, "left_id": \n')


def _corrupt_label_time(out):
    lines = (out / "labels.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    row["created_at"] = "yesterday"
    (out / "labels.jsonl").write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")


def _corrupt_late_failure(out):
    """Passes the checks, fails inside the transaction (annotator name too long for the store)."""
    lines = (out / "labels.jsonl").read_text().splitlines()
    row = json.loads(lines[-1])
    row["annotator"] = "x" * 80
    (out / "labels.jsonl").write_text("\n".join([*lines[:-1], json.dumps(row)]) + "\n")


@pytest.mark.parametrize("corrupt, message", [
    (_corrupt_missing_array, "missing"),
    (_corrupt_label_choice, "dunno"),
    (_corrupt_label_time, "created_at 'yesterday', not an ISO 8601 time"),
    (_corrupt_truncated_labels, "partial"),
    (_corrupt_bad_json, "not valid JSON"),
    (_corrupt_late_failure, "annotator"),
    # said without naming the file
    (lambda out: (out / "labels.jsonl").write_bytes(b"\xff\xfe" + (out / "labels.jsonl").read_bytes()),
     r"labels.jsonl is not UTF-8 text \(byte 0xff at position 0\)"),
    # "arrays/1.npz holds 10 steps …, trajectories.jsonl says 10 of …"
    (lambda out: _rewrite_row(out, "trajectories", 0, {"length": "10"}),
     "trajectories.jsonl line 1: length must be a whole number of steps, got '10'"),
    # refused by the store, naming no row
    (lambda out: _rewrite_row(out, "trajectories", 0, {"temperature": -1}),
     r"trajectories.jsonl: trajectory 1: temperature must be a finite number in \[0.0, 100.0\], got -1"),
    (lambda out: _rewrite_row(out, "labels", 0, {"seconds": -5}), r"labels.jsonl: label 1: seconds must be"),
    # an ISO time, whose UTC instant is before the year 1 (said to be "not an ISO 8601 time")
    (lambda out: _rewrite_row(out, "labels", 0, {"created_at": "0001-01-01T00:00:00+05:00"}),
     "created_at '0001-01-01T00:00:00\\+05:00', which in UTC falls outside the years 1 to 9999"),
    (lambda out: _rewrite_row(out, "labels", 0, {"created_at": "9999-12-31T00:00:00"}),
     "created_at 9999-12-31 00:00 UTC, after .* UTC .*a label cannot have been given yet"),
])
def test_bad_bundle_is_rejected_and_changes_nothing(labelled_ws, tmp_path, corrupt, message):
    from prefine_core.exchange import export_bundle, import_bundle
    from prefine_core.workspace import Workspace

    export_bundle(labelled_ws, tmp_path / "out")
    corrupt(tmp_path / "out")
    ws2 = Workspace.open(tmp_path / "ws2", shipped=None)
    before = ws2.store.counts()
    with pytest.raises(ValueError, match=message):
        import_bundle(ws2, tmp_path / "out")
    assert ws2.store.counts() == before and ws2.store.list_policies() == []
    assert [p for p in ws2.root.rglob("*") if p.is_file() and not p.name.startswith("prefine.db")] == []


def _dsrl_file(path, episodes, drop=None, **override):
    data = {
        "observations": np.concatenate([e.obs for e in episodes]),
        "actions": np.concatenate([e.actions for e in episodes]),
        "rewards": np.concatenate([e.rewards for e in episodes]),
        "costs": np.concatenate([e.costs for e in episodes]),
        "terminals": np.zeros(sum(e.length for e in episodes), dtype=bool),
        "timeouts": np.concatenate([np.arange(e.length) == e.length - 1 for e in episodes]),
    }
    data.update(override)
    with h5py.File(path, "w") as handle:
        for key, value in data.items():
            if key != drop:
                handle.create_dataset(key, data=value)
    return path


@pytest.fixture(scope="module")
def two_episodes():
    from prefine_core.envs import SafetyTask
    from prefine_core.rollout import collect

    with SafetyTask(CHEETAH) as task:
        return [collect(make_policy(CHEETAH), task, seed=s, max_steps=60) for s in (0, 1)]


def test_hdf5_import_splits_episodes_into_clips(tmp_path, two_episodes):
    from prefine_core.datasets import import_hdf5
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", shipped=None)
    progress = []
    result = import_hdf5(ws, _dsrl_file(tmp_path / "cheetah.hdf5", two_episodes), CHEETAH, clip_length=30,
                         on_progress=lambda done, total: progress.append((done, total)))
    assert result == {"source": "dataset:cheetah.hdf5", "episodes": 2, "clips": 4, "steps": 120, "clips_already_here": 0}
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]  # the CLI's progress bar
    records = ws.store.list_trajectories(CHEETAH, source="dataset:cheetah.hdf5")
    assert [(r.start, r.length, r.policy_id) for r in records] == [(0, 30, None), (30, 30, None)] * 2
    np.testing.assert_array_equal(ws.store.get_trajectory(records[3].id).obs, two_episodes[1].obs[30:60])
    from prefine_core.pool import generate_pairs

    with pytest.raises(ValueError, match="with video"):  # dataset clips cannot be shown to people
        generate_pairs(ws.store, CHEETAH, 2)
    assert len(generate_pairs(ws.store, CHEETAH, 2, include_datasets=True)) == 2


def test_an_hdf5_dataset_imported_again_adds_only_clips_not_here(tmp_path, two_episodes):
    from prefine_core.datasets import import_hdf5
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", shipped=None)
    path = _dsrl_file(tmp_path / "cheetah.hdf5", two_episodes)
    import_hdf5(ws, path, CHEETAH, clip_length=30, max_episodes=1)
    more = import_hdf5(ws, path, CHEETAH, clip_length=30)  # the second episode is new, the first is here
    assert (more["clips"], more["clips_already_here"]) == (2, 2) and ws.store.counts()["trajectories"] == 4
    again = import_hdf5(ws, path, CHEETAH, clip_length=30)
    assert (again["clips"], again["clips_already_here"]) == (0, 4) and ws.store.counts()["trajectories"] == 4
    assert import_hdf5(ws, path, CHEETAH, clip_length=60)["clips"] == 2, "other windows are other clips"


def test_an_hdf5_dataset_is_not_imported_under_a_policy_s_source_name(tmp_path, two_episodes):
    """`--source reference:ref@T1` put the dataset's clips in the pool as the reference's own rollouts (the pool's
    summary, and what the benchmark says the pool held, counted them as the policy's)."""
    from prefine_core.datasets import import_hdf5
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", shipped=None)
    path = _dsrl_file(tmp_path / "cheetah.hdf5", two_episodes)
    with pytest.raises(ValueError, match="names a policy's rollouts .* such as dataset:cheetah.hdf5"):
        import_hdf5(ws, path, CHEETAH, clip_length=30, source="reference:ref@T1")
    assert ws.store.counts()["trajectories"] == 0
    assert import_hdf5(ws, path, CHEETAH, clip_length=30, source="logs: cheetah run 3")["clips"] == 4


@pytest.mark.parametrize("kwargs, message", [
    ({"drop": "costs"}, "costs"),
    ({"rewards": np.zeros(50, dtype=np.float32)}, "rewards has 50"),
    ({"observations": np.full((120, 17), np.nan, dtype=np.float32)}, "observations holds non-finite"),
    ({"observations": np.zeros((120, 5), dtype=np.float32)}, "observations of size 5"),
    ({"actions": np.full((120, 6), 3.0, dtype=np.float32)}, "outside"),
    ({"costs": np.full(120, -3e38, dtype=np.float32)}, "costs holds negative values"),
    ({"rewards": np.full(120, 3e38, dtype=np.float32)}, "the episode of steps 0–.*: rewards add up to more than"),
    ({"rewards": np.zeros(120, dtype=np.complex64)}, r"\['rewards'\] hold complex64 values, not real numbers"),  # was taken
])
def test_bad_hdf5_is_rejected_and_changes_nothing(tmp_path, two_episodes, kwargs, message):
    from prefine_core.datasets import import_hdf5
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", shipped=None)
    with pytest.raises(ValueError, match=message):
        import_hdf5(ws, _dsrl_file(tmp_path / "bad.hdf5", two_episodes, **kwargs), CHEETAH)
    assert ws.store.counts()["trajectories"] == 0 and list(ws.trajectories_dir.iterdir()) == []


def test_truncated_hdf5_is_rejected(tmp_path, two_episodes):
    from prefine_core.datasets import import_hdf5
    from prefine_core.workspace import Workspace

    path = _dsrl_file(tmp_path / "full.hdf5", two_episodes)
    (tmp_path / "cut.hdf5").write_bytes(path.read_bytes()[:3000])
    ws = Workspace.open(tmp_path / "ws", shipped=None)
    with pytest.raises(ValueError, match="cut.hdf5"):
        import_hdf5(ws, tmp_path / "cut.hdf5", CHEETAH)
    assert ws.store.counts()["trajectories"] == 0


def _rewrite_row(out, rows, index, changes):
    """Row ``index`` of ``out/<rows>.jsonl`` with ``changes``, the way a person editing the file would leave it."""
    lines = (out / f"{rows}.jsonl").read_text().splitlines()
    lines[index] = json.dumps(dict(json.loads(lines[index]), **changes))
    (out / f"{rows}.jsonl").write_text("\n".join(lines) + "\n")


def _refused_and_nothing_written(ws, folder, message):
    from prefine_core.exchange import import_bundle

    before, history = ws.store.counts(), len(ws.store.label_history())
    with pytest.raises(ValueError, match=message):
        import_bundle(ws, folder)
    assert ws.store.counts() == before and len(ws.store.label_history()) == history
    assert [p for p in ws.root.rglob("*") if p.is_file() and not p.name.startswith("prefine.db")] == []


@pytest.mark.parametrize("counts", ["abc", [1, 2], 5, True])
def test_manifest_counts_that_are_not_an_object_are_refused(labelled_ws, tmp_path, counts):
    from prefine_core.exchange import export_bundle
    from prefine_core.workspace import Workspace

    export_bundle(labelled_ws, tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    (tmp_path / "out" / "manifest.json").write_text(json.dumps(dict(manifest, counts=counts)))
    _refused_and_nothing_written(Workspace.open(tmp_path / "ws2", shipped=None), tmp_path / "out",
                                 r"manifest.json: counts must be a JSON object of row counts")


@pytest.mark.parametrize("count", ["5", 5.0, True, -1, None, [5]])
def test_manifest_counts_that_are_not_whole_numbers_are_refused(labelled_ws, tmp_path, count):
    from prefine_core.exchange import export_bundle
    from prefine_core.workspace import Workspace

    export_bundle(labelled_ws, tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    manifest["counts"]["labels"] = count
    (tmp_path / "out" / "manifest.json").write_text(json.dumps(manifest))
    _refused_and_nothing_written(Workspace.open(tmp_path / "ws2", shipped=None), tmp_path / "out",
                                 r"manifest.json: counts.labels must be a whole number of rows, got ")


#: Every id and reference field of every row an import reads, and whether null is allowed there.
ID_FIELDS = [("policies", "id", False), ("policies", "parent_id", True), ("trajectories", "id", False),
             ("trajectories", "policy_id", True), ("pairs", "id", False), ("pairs", "left_id", False),
             ("pairs", "right_id", False), ("labels", "id", False), ("labels", "pair_id", False),
             ("labels", "supersedes_id", True)]
NOT_IDS = [[1], [], {"id": 1}, True, False, 1.0, 1.5, "1", "abc", 0, -1, -(2**63), 2**63, 10**30]


@pytest.mark.parametrize("name, key, nullable", ID_FIELDS, ids=[f"{n}.{k}" for n, k, _ in ID_FIELDS])
def test_ids_of_the_wrong_type_are_refused_naming_file_line_and_field(labelled_ws, tmp_path, name, key, nullable):
    """An id or reference that is not a positive integer id (a list, a bool, a float, a string, 0, negative, past the
    largest id a store holds) is refused where the row is read, not with a TypeError from a set lookup later."""
    from prefine_core.exchange import export_bundle, import_bundle
    from prefine_core.workspace import Workspace

    export_bundle(labelled_ws, tmp_path / "out")
    original = (tmp_path / "out" / f"{name}.jsonl").read_text()
    ws2 = Workspace.open(tmp_path / "ws2", shipped=None)
    for value in NOT_IDS + ([] if nullable else [None]):
        (tmp_path / "out" / f"{name}.jsonl").write_text(original)
        _rewrite_row(tmp_path / "out", name, 1, {key: value})
        _refused_and_nothing_written(ws2, tmp_path / "out",
                                     rf"{name}.jsonl line 2: {key} must be a positive integer id")
    (tmp_path / "out" / f"{name}.jsonl").write_text(original)
    assert import_bundle(ws2, tmp_path / "out")["labels"] == 5, "the untouched export imports"


@pytest.mark.parametrize("name, key, value, message", [
    ("labels", "annotator", ["ann"], r"labels.jsonl line 1: annotator must be a string, got \['ann'\]"),
    ("labels", "annotator", None, "labels.jsonl line 1: annotator must be a string, got None"),
    ("labels", "seconds", "3", r"labels.jsonl line 1: seconds must be a number or null, got '3'"),
    ("pairs", "score", "abc", "pairs.jsonl line 1: score must be a number, got 'abc'"),
    ("pairs", "score", True, "pairs.jsonl line 1: score must be a number, got True"),
    ("pairs", "reason", {"why": 1}, "pairs.jsonl line 1: reason must be a string"),
    ("pairs", "task_id", ["x"], "pairs.jsonl line 1: task_id must be a string"),
    ("policies", "provenance", [1], r"policies.jsonl line 1: provenance must be a JSON object or null, got \[1\]"),
    ("policies", "provenance", "abc", "policies.jsonl line 1: provenance must be a JSON object or null"),
    ("policies", "name", 5, "policies.jsonl line 1: name must be a string, got 5"),
    ("policies", "file", 5, "policies.jsonl line 1: file must be a string or null, got 5"),
    ("trajectories", "temperature", [1.0], "trajectories.jsonl line 1: temperature must be a number or null"),
    ("trajectories", "source", 7, "trajectories.jsonl line 1: source must be a string, got 7"),
    ("policies", "parent_id", 1, "not a policy before it"),  # a policy its own parent: its lineage would be lost
])
def test_other_fields_of_the_wrong_type_are_refused_naming_file_line_and_field(labelled_ws, tmp_path, name, key,
                                                                               value, message):
    from prefine_core.exchange import export_bundle
    from prefine_core.workspace import Workspace

    export_bundle(labelled_ws, tmp_path / "out")
    _rewrite_row(tmp_path / "out", name, 0, {key: value})
    _refused_and_nothing_written(Workspace.open(tmp_path / "ws2", shipped=None), tmp_path / "out", message)


def _hdf5_group_instead(path, key):
    """``key`` as an HDF5 group (holding the data one level down) instead of a dataset."""
    with h5py.File(path, "a") as handle:
        data = handle[key][()]
        del handle[key]
        handle.create_group(key).create_dataset("data", data=data)


DSRL_DIMS = {"observations": 2, "actions": 2, "rewards": 1, "costs": 1, "terminals": 1, "timeouts": 1}


@pytest.mark.parametrize("key", DSRL_DIMS)
@pytest.mark.parametrize("defect", ["scalar", "group", "dimensions", "length"])
def test_hdf5_arrays_of_the_wrong_shape_are_refused_naming_the_dataset(tmp_path, two_episodes, key, defect):
    """Each dataset a DSRL/D4RL file must hold, stored as a single number, as a group, with a dimension too many or
    too few, or one row short, is refused with a message naming it; not an IndexError or TypeError."""
    from prefine_core.datasets import import_hdf5
    from prefine_core.workspace import Workspace

    path = _dsrl_file(tmp_path / "bad.hdf5", two_episodes)
    with h5py.File(path, "r") as handle:
        good = handle[key][()]
    shape = (r"\(\)" if defect == "scalar" else
             re.escape(str(good[:, 0].shape if good.ndim == 2 else good[:, None].shape)))
    if defect == "group":
        _hdf5_group_instead(path, key)
    elif defect != "length":
        path = _dsrl_file(path, two_episodes, **{key: good[0, 0] if good.ndim == 2 and defect == "scalar" else
                                                      good[0] if defect == "scalar" else
                                                      good[:, 0] if good.ndim == 2 else good[:, None]})
    else:
        path = _dsrl_file(path, two_episodes, **{key: good[:-1]})
    message = {
        "scalar": rf"bad.hdf5 has {key} of shape {shape}; {key} must be {DSRL_DIMS[key]}-D",
        "dimensions": rf"bad.hdf5 has {key} of shape {shape}; {key} must be {DSRL_DIMS[key]}-D",
        "group": rf"bad.hdf5: {key} is an HDF5 group, not a dataset",
        "length": r"bad.hdf5: \w+ has 1(19|20) rows, rewards has 1(20|19)",
    }[defect]
    ws = Workspace.open(tmp_path / "ws", shipped=None)
    with pytest.raises(ValueError, match=message):
        import_hdf5(ws, path, CHEETAH)
    assert ws.store.counts()["trajectories"] == 0 and list(ws.trajectories_dir.iterdir()) == []


def test_an_export_without_checkpoints_from_another_checkout_maps_onto_the_shipped_policies_here(tmp_path, monkeypatch):
    """``export --no-policies`` names the shipped files by the exporting checkout's paths; here they are elsewhere.
    The import must land the clips on the shipped policies here, not register dangling copies of them."""
    from prefine_core.envs import SafetyTask
    from prefine_core.exchange import export_bundle, import_bundle
    from prefine_core.rollout import collect
    from prefine_core.workspace import Workspace

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    there = Workspace.open(tmp_path / "there")
    reference = there.store.list_policies(CHEETAH, kind="reference")[0]
    with SafetyTask(CHEETAH) as task:
        clips = [there.store.add_trajectory(collect(make_policy(CHEETAH), task, seed=s, max_steps=10), reference.id,
                                            "test", there.trajectories_dir) for s in (0, 1)]
    there.store.add_label(there.store.add_pair(*clips, "random", 0.5, "random pick"), "ann", "left")
    export_bundle(there, tmp_path / "out", include_policies=False)
    rows = [json.loads(line) for line in (tmp_path / "out" / "policies.jsonl").read_text().splitlines()]
    for index, row in enumerate(rows):  # as written in another checkout
        _rewrite_row(tmp_path / "out", "policies", index, {"path": "/elsewhere/prefine" + row["path"]})
    here = Workspace.open(tmp_path / "here")
    policies = here.store.list_policies()
    added = import_bundle(here, tmp_path / "out")
    assert added["policies"] == 0 and added["trajectories"] == 2 and added["labels"] == 1
    assert here.store.list_policies() == policies
    here_reference = here.store.list_policies(CHEETAH, kind="reference")[0].id
    assert {t.policy_id for t in here.store.list_trajectories(CHEETAH)} == {here_reference}


def test_deleting_a_policy_keeps_its_file_while_another_policy_row_names_it(labelled_ws):
    """A hand-edited import can register, for another task, the path of a checkpoint here: deleting that row must not
    take the file from the policy that owns it."""
    from conftest import HOPPER
    from prefine_core.policy import load_policy

    owner = labelled_ws.store.list_policies(CHEETAH, kind="reference")[0]
    other = labelled_ws.store.add_policy("hand-edited", owner.path, HOPPER, "imported")
    labelled_ws.delete_policy(other)
    load_policy(owner.path, CHEETAH)  # still there


def test_a_policy_imported_without_its_checkpoint_is_listed_as_missing(labelled_ws, tmp_path):
    """The fine-tuned policy's file is gone in the workspace exported: after an import it is a row naming nothing, which
    the Data page and ``policies`` listed like any other."""
    from prefine_core.browse import policies_frame, policy_rows
    from prefine_core.exchange import export_bundle, import_bundle
    from prefine_core.workspace import Workspace

    export_bundle(labelled_ws, tmp_path / "out")
    here = Workspace.open(tmp_path / "here", shipped=None)
    import_bundle(here, tmp_path / "out")
    assert [(row["name"], row["file"]) for row in policy_rows(here.store, CHEETAH)] == [("ref", "here"), ("ft", "missing")]
    assert policies_frame(here.store, CHEETAH).file.tolist() == ["here", "missing"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_same_export_imported_twice_at_once_lands_once(labelled_ws, tmp_path, monkeypatch, backend, request):
    """Two tabs pressing Import on one export: both were planned against the store as it was before either, and every
    clip, pair and label came in twice. The plan is now made inside the import's write transaction, one import at a
    time (SQLite's write lock; PostgreSQL's advisory lock)."""
    import threading

    from prefine_core.exchange import export_bundle, import_bundle
    from prefine_core.workspace import Workspace

    export_bundle(labelled_ws, tmp_path / "out")
    if backend == "postgresql":
        monkeypatch.setenv("PREFINE_DB_URL", request.getfixturevalue("pg_schema_url"))
    Workspace.open(tmp_path / "ws2", shipped=None)
    tabs = [Workspace.open(tmp_path / "ws2", shipped=None) for _ in range(2)]
    results, start = [], threading.Barrier(2)

    def press_import(ws):
        start.wait()
        results.append(import_bundle(ws, tmp_path / "out"))

    threads = [threading.Thread(target=press_import, args=(ws,)) for ws in tabs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(r["pairs"] for r in results) == [0, 3] and sorted(r["labels"] for r in results) == [0, 5]
    counts = tabs[0].store.counts()
    assert (counts["trajectories"], counts["pairs"], len(tabs[0].store.label_history())) == (4, 3, 5)


def _first_row_again(out, rows):
    """Row 1 of ``out/<rows>.jsonl`` copied under id 100, and the manifest's count raised to match."""
    lines = (out / f"{rows}.jsonl").read_text().splitlines()
    (out / f"{rows}.jsonl").write_text("\n".join([*lines, json.dumps(dict(json.loads(lines[0]), id=100))]) + "\n")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["counts"][rows] += 1
    (out / "manifest.json").write_text(json.dumps(manifest))


def _a_pair_twice(out):
    _first_row_again(out, "pairs")


def _a_clip_file_twice(out):
    _first_row_again(out, "trajectories")


def _policy_row_naming_a_file_that_is_no_policy(out):
    """A hand-edited row without a checkpoint, its path a file that exists (it was listed "file here", as a reference)."""
    _rewrite_row(out, "policies", 1, {"file": None, "path": str(out / "manifest.json")})


def _policy_checkpoint_of_another_task(out):
    _rewrite_row(out, "policies", 0, {"task_id": "SafetyHopperVelocity-v1"})


def _pair_of_another_task(out):
    _rewrite_row(out, "pairs", 0, {"task_id": "SafetyHopperVelocity-v1"})


def _a_pair_of_one_clip(out):
    left = json.loads((out / "pairs.jsonl").read_text().splitlines()[0])["left_id"]
    _rewrite_row(out, "pairs", 0, {"right_id": left})


def _clips_of_a_policy_of_another_task(out):
    """A file-less policy row of another task that the clips name (it was refused inside the write, naming the id
    the policy had just been given in this store)."""
    _rewrite_row(out, "policies", 0, {"task_id": "SafetyHopperVelocity-v1", "file": None, "path": "/nowhere/p.safetensors"})


def _clip_array(out, **arrays):
    path = next((out / "arrays").glob("*.npz"))
    with np.load(path) as data:
        content = {k: data[k] for k in data.files}
    np.savez(path, **{**content, **arrays})


@pytest.mark.parametrize("corrupt, message", [
    (_a_pair_twice, "pairs 1 and 100 show the same two clips"),
    (_a_clip_file_twice, "are the same file"),
    (_policy_row_naming_a_file_that_is_no_policy, "names the file .*manifest.json, which is not a policy"),
    (_policy_checkpoint_of_another_task, "says task SafetyHopperVelocity-v1, but its checkpoint .* is a policy for "
                                         "SafetyHalfCheetahVelocity-v1"),
    (_a_pair_of_one_clip, r"pairs.jsonl: pair 1 shows trajectory \d+ on both sides"),
    (_clips_of_a_policy_of_another_task, r"trajectories.jsonl: trajectory \d+ is of SafetyHalfCheetahVelocity-v1, but its "
                                         "policy_id 1 is a policy for SafetyHopperVelocity-v1"),
    (_pair_of_another_task, "pair 1 says task SafetyHopperVelocity-v1, but its clips are of SafetyHalfCheetahVelocity-v1"),
    (lambda out: _clip_array(out, seed=np.array([1, 2])), "not a readable trajectory file"),
    (lambda out: _clip_array(out, seed=np.array(10**30, dtype=float)), "seed must be a whole number|not a readable"),
    (lambda out: _clip_array(out, start=np.array(-5)), "start .* must be from 0"),
    (lambda out: _clip_array(out, obs=np.full((40, 17), "x")), "obs must be an array of real numbers"),
    (lambda out: _clip_array(out, costs=np.full(40, -1.0, np.float32)), "costs holds negative values"),
    (lambda out: _clip_array(out, costs=np.full(40, 3e38, np.float32)), "costs add up to more than a number can hold"),
    (lambda out: _clip_array(out, rewards=np.zeros((40, 3), np.float32)), r"rewards must hold one number per step"),
])
def test_hand_edited_rows_and_arrays_that_cannot_be_right_are_refused(labelled_ws, tmp_path, corrupt, message):
    from prefine_core.exchange import export_bundle
    from prefine_core.workspace import Workspace

    export_bundle(labelled_ws, tmp_path / "out")
    corrupt(tmp_path / "out")
    _refused_and_nothing_written(Workspace.open(tmp_path / "ws2", shipped=None), tmp_path / "out", message)


def test_label_times_with_a_zone_are_kept_in_utc_and_the_export_imports_again_as_here(labelled_ws, tmp_path):
    """A time with a zone was stored with the zone dropped (5 hours off for +05:00), and the same file imported again
    was refused as a history that "went another way"."""
    from datetime import datetime, timedelta

    from prefine_core.exchange import export_bundle, import_bundle
    from prefine_core.workspace import Workspace

    export_bundle(labelled_ws, tmp_path / "out")
    lines = (tmp_path / "out" / "labels.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    for row in rows:
        row["created_at"] = datetime.fromisoformat(row["created_at"]).replace(microsecond=0).isoformat() + "+05:00"
    (tmp_path / "out" / "labels.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ws2 = Workspace.open(tmp_path / "ws2", shipped=None)
    assert import_bundle(ws2, tmp_path / "out")["labels"] == 5
    stored = sorted(h.created_at for h in ws2.store.label_history())
    given = sorted(datetime.fromisoformat(r["created_at"][:-6]) for r in rows)
    assert [g - s for g, s in zip(given, stored)] == [timedelta(hours=5)] * 5
    again = import_bundle(ws2, tmp_path / "out")
    assert (again["labels"], again["labels_already_here"]) == (0, 5)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A small real workspace whose three pairs' videos are rendered (48 px, two of the pairs labelled), and an export
    of it: (the workspace, the export's folder). Tests export and import it; none changes it."""
    from prefine_core.exchange import export_bundle
    from prefine_core.pair_videos import render_pending

    root = tmp_path_factory.mktemp("rendered")
    ws = clips_workspace(root / "ws", ("left", "right"))
    assert render_pending(ws, CHEETAH, size=48)["rendered"] == 3
    export_bundle(ws, root / "bundle")
    return ws, root / "bundle"


def _copy(bundle, tmp_path):
    return Path(shutil.copytree(bundle, tmp_path / "out"))


def _pair_rows(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "pairs.jsonl").read_text().splitlines()]


def test_pair_videos_travel_with_the_export_and_are_ready_to_label_where_imported(rendered, tmp_path):
    """An imported pair's video had to be rendered again by replaying its clips, which is refused where the replay
    drifts from the stored actions (clips collected on another machine or software build): such pairs could never be
    labelled. The export carries each pair's two videos, and an import installs them for its new pairs, byte for
    byte, without rendering; an import refused inside its write (after the videos were copied) leaves none behind."""
    from prefine_core.exchange import import_bundle
    from prefine_core.workspace import Workspace, plain_video_path

    source, bundle = rendered
    theirs = source.store.list_pairs()
    assert [row["video"] for row in _pair_rows(bundle)] == [f"videos/{p.id}.mp4" for p in theirs]
    ws2 = Workspace.open(tmp_path / "ws2", shipped=None)
    failing = _copy(bundle, tmp_path)
    _corrupt_late_failure(failing)  # the last label row: refused by the store after the pairs and their videos
    _refused_and_nothing_written(ws2, failing, "annotator")

    result = import_bundle(ws2, bundle)
    assert (result["pairs"], result["labels"], result["videos"]) == (3, 2, 3)
    here = ws2.store.list_pairs()
    assert ws2.store.counts()["videos_ready"] == 3 and ws2.store.list_pairs(without_video=True) == []
    for their_pair, pair in zip(theirs, here):
        assert Path(pair.video_path) == ws2.pair_video_path(pair.id)
        for video in (lambda p: Path(p.video_path), lambda p: plain_video_path(p.video_path)):
            assert video(pair).read_bytes() == video(their_pair).read_bytes()
    again = import_bundle(ws2, bundle)  # here already: nothing added, no video copied again
    assert (again["pairs"], again["videos"]) == (0, 0)
    assert sorted(path.name for path in ws2.videos_dir.iterdir()) == sorted(
        name for p in here for name in (f"pair-{p.id}.mp4", f"pair-{p.id}-plain.mp4"))


def test_exports_without_videos_import_as_before_and_their_pairs_are_rendered_here(rendered, tmp_path, monkeypatch):
    """An export made before videos travelled (pair rows without the field) and one made with ``--no-videos`` import
    as before: the pairs come without videos, and are rendered here."""
    from prefine_core.cli import main
    from prefine_core.exchange import import_bundle
    from prefine_core.pair_videos import render_pending
    from prefine_core.workspace import Workspace

    source, bundle = rendered
    older = _copy(bundle, tmp_path)
    shutil.rmtree(older / "videos")
    rows = [{k: v for k, v in row.items() if k != "video"} for row in _pair_rows(older)]
    (older / "pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    monkeypatch.setenv("PREFINE_SHIPPED_POLICIES", "")
    assert main(["export", "--workspace", str(source.root), "--out", str(tmp_path / "no-videos"), "--no-videos",
                 "--json"]) == 0
    assert not (tmp_path / "no-videos" / "videos").exists()
    assert [row["video"] for row in _pair_rows(tmp_path / "no-videos")] == [None] * 3
    for folder in (older, tmp_path / "no-videos"):
        ws = Workspace.open(tmp_path / f"into-{folder.name}", shipped=None)
        result = import_bundle(ws, folder)
        assert (result["pairs"], result["labels"], result["videos"]) == (3, 2, 0)
        assert ws.store.counts()["videos_ready"] == 0
        assert render_pending(ws, CHEETAH, size=48)["rendered"] == 3


def _first_video(out) -> Path:
    return out / _pair_rows(out)[0]["video"]


def _video_a_web_page(out):
    _first_video(out).write_bytes(b"<html><script>alert(1)</script></html>" * 20)


def _twin_not_a_video(out):
    from prefine_core.workspace import plain_video_path

    plain_video_path(_first_video(out)).write_bytes(bytes(1000))


def _video_a_folder(out):
    _first_video(out).unlink()
    _first_video(out).mkdir()


def _video_outside_the_export(out, name):
    """A real video and its twin beside the export, the first pair's row naming it by ``name``."""
    from prefine_core.workspace import plain_video_path

    shutil.copyfile(_first_video(out), out.parent / "elsewhere.mp4")
    shutil.copyfile(plain_video_path(_first_video(out)), out.parent / "elsewhere-plain.mp4")
    _rewrite_row(out, "pairs", 0, {"video": name.format(parent=out.parent)})


def _video_too_large(out):
    with open(_first_video(out), "ab") as handle:  # still an MP4 by its first bytes
        handle.write(bytes(3 * 1024**2 // 2))


@pytest.mark.parametrize("corrupt, message", [
    (_video_a_web_page, r"pairs.jsonl: pair 1: videos/1.mp4 is not an MP4 video"),
    (_twin_not_a_video, r"pairs.jsonl: pair 1 \(the cost-free twin of its video\): videos/1-plain.mp4 is not an MP4"),
    (lambda out: _first_video(out).unlink(), r"pairs.jsonl: pair 1 names file videos/1.mp4, which is missing"),
    (_video_a_folder, r"pairs.jsonl: pair 1 names videos/1.mp4, which is not a regular file"),
    (lambda out: _video_outside_the_export(out, "../elsewhere.mp4"),
     r"pairs.jsonl: pair 1 names file '../elsewhere.mp4', which lies outside the export folder"),
    (lambda out: _video_outside_the_export(out, "{parent}/elsewhere.mp4"), r"pair 1 names file .* outside the export"),
    (_video_too_large, r"pairs.jsonl: pair 1: videos/1.mp4 is 2 MB, over the 1 MB a pair's video may be"),
    (lambda out: _rewrite_row(out, "pairs", 0, {"video": 5}), r"pairs.jsonl line 1: video must be a string or null"),
    (lambda out: _rewrite_row(out, "pairs", 1, {"video": "videos/./1.mp4"}),
     r"pairs.jsonl: pairs 1 and 2 both name the video file videos/./1.mp4; each pair's video shows its own two clips"),
], ids=["not-mp4", "twin-not-mp4", "missing", "folder", "outside", "absolute", "too-large", "not-a-name",
        "another-pairs-video"])
def test_a_pair_video_an_import_must_not_install_is_refused_by_pair_and_nothing_is_written(
        rendered, tmp_path, monkeypatch, corrupt, message):
    from prefine_core import exchange
    from prefine_core.workspace import Workspace

    monkeypatch.setattr(exchange, "MAX_VIDEO_BYTES", 1024**2)  # the test's videos are a few kB
    out = _copy(rendered[1], tmp_path)
    corrupt(out)
    _refused_and_nothing_written(Workspace.open(tmp_path / "ws2", shipped=None), out, message)


def test_a_pair_video_damaged_here_is_left_out_of_the_export_not_a_refusal_of_it(tmp_path):
    """A video file cut short here (by hand, a full disk) would be refused by an import: the pair travels without it,
    to be rendered again where it is imported, and the export goes on with the others."""
    from prefine_core.exchange import export_bundle
    from prefine_core.pair_videos import render_pending

    ws = clips_workspace(tmp_path / "ws")
    render_pending(ws, CHEETAH, size=48)
    damaged, *others = ws.store.list_pairs()
    Path(damaged.video_path).write_bytes(b"")
    assert export_bundle(ws, tmp_path / "out")["videos"] == 2
    assert [row["video"] for row in _pair_rows(tmp_path / "out")] == [None, *(f"videos/{p.id}.mp4" for p in others)]


def _no_videos_then(source, tmp_path):
    """A workspace holding ``source``'s pairs imported from its export made without videos: (the workspace, its
    pairs), none with a video."""
    from prefine_core.exchange import export_bundle, import_bundle
    from prefine_core.workspace import Workspace

    export_bundle(source, tmp_path / "no-videos", include_videos=False)
    ws = Workspace.open(tmp_path / "ws", shipped=None)
    assert import_bundle(ws, tmp_path / "no-videos")["videos"] == 0
    return ws, ws.store.list_pairs()


def _give_video(ws, pair_id, data: bytes) -> None:
    """A video of the pair's own here (rendered here, say): both files, and the row naming them."""
    from prefine_core.workspace import plain_video_path

    for path in (ws.pair_video_path(pair_id), plain_video_path(ws.pair_video_path(pair_id))):
        path.write_bytes(data)
    assert ws.register_pair_video(pair_id)


def test_pairs_here_without_a_video_get_it_from_an_export_that_carries_it(rendered, tmp_path):
    """Pairs imported from an export without videos (an older one, or made with ``--no-videos``) whose clips cannot be
    replayed here could never get one: an import of the same export with its videos said "nothing new", as the pairs
    were here. It now installs the video of every pair here that has none; a pair here with its own keeps it."""
    from prefine_core import transfer
    from prefine_core.exchange import import_bundle
    from prefine_core.workspace import plain_video_path

    source, bundle = rendered
    ws, (own, *without) = _no_videos_then(source, tmp_path)
    mine = b"\0\0\0\x18ftypisom rendered here"
    _give_video(ws, own.id, mine)
    said = transfer.import_upload(ws, "export.zip", transfer.export_zip(source, CHEETAH), CHEETAH)
    assert said == (f"imported videos for 2 pairs that were here without one into {CHEETAH}; 2 label rows already "
                    "here were not added again"), said
    assert ws.store.counts()["videos_ready"] == 3 and ws.store.counts()["pairs"] == 3
    assert Path(ws.store.get_pair(own.id).video_path).read_bytes() == mine
    for their_pair, pair in zip(source.store.list_pairs()[1:], without):
        here = ws.store.get_pair(pair.id)
        assert Path(here.video_path) == ws.pair_video_path(pair.id)
        for video in (lambda p: Path(p.video_path), lambda p: plain_video_path(p.video_path)):
            assert video(here).read_bytes() == video(their_pair).read_bytes()
    again = import_bundle(ws, bundle)  # every pair has its video now: nothing new
    assert (again["videos"], again["videos_for_pairs_here"]) == (0, 0)
    assert transfer._bundle_said("export.zip", again, CHEETAH).startswith("nothing new in export.zip")


def test_the_videos_are_copied_before_the_write_transaction_and_copies_not_used_are_removed(
        rendered, tmp_path, monkeypatch):
    """An import copied the videos inside its write transaction: large ones held the store's write lock, and
    labellers' writes waited (7 s, then failed). They are copied before it, under the names of unfinished writes (a
    workspace opening removes those that a crash left), and moved into place after the commit; the copy for a pair
    that got its video meanwhile (rendered here) is removed, and the pair keeps its own."""
    import contextlib

    from prefine_core.exchange import import_bundle
    from prefine_core.files import _TEMP_NAME

    source, bundle = rendered
    ws, (first, *others) = _no_videos_then(source, tmp_path)
    transaction, seen = ws.store.batch, []

    @contextlib.contextmanager
    def watched():
        if not seen:
            seen.append(sorted(path.name for path in ws.videos_dir.iterdir()))
            _give_video(ws, first.id, b"\0\0\0\x18ftypisom rendered meanwhile")
        with transaction() as batch:
            yield batch

    monkeypatch.setattr(ws.store, "batch", watched)
    result = import_bundle(ws, bundle)
    assert len(seen[0]) == 6 and all(_TEMP_NAME.match(name) for name in seen[0]), seen
    assert (result["pairs"], result["videos"], result["videos_for_pairs_here"]) == (0, 2, 2)
    assert Path(ws.store.get_pair(first.id).video_path).read_bytes() == b"\0\0\0\x18ftypisom rendered meanwhile"
    assert sorted(path.name for path in ws.videos_dir.iterdir()) == sorted(
        name for p in (first, *others) for name in (f"pair-{p.id}.mp4", f"pair-{p.id}-plain.mp4"))
