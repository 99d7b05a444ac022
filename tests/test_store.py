"""The preference store on SQLite and PostgreSQL: records, validation, append-only labels, serving,
runs, migrations from an older schema, and the workspace."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from conftest import CHEETAH, make_policy
from store_backends import cheetah_episode, fill, pg_schema_url, store, store_url, windows  # noqa: F401


def test_policies_are_registered_once_per_path(store, tmp_path):
    ref = store.add_policy("ref", tmp_path / "ref.safetensors", CHEETAH, "reference", provenance={"steps": 10})
    again = store.add_policy("ref", tmp_path / "ref.safetensors", CHEETAH, "reference")
    child = store.add_policy("ft", tmp_path / "ft.safetensors", CHEETAH, "finetuned", parent_id=ref)
    assert again == ref
    record = store.get_policy(child)
    assert (record.parent_id, record.kind, record.task_id) == (ref, "finetuned", CHEETAH)
    assert store.get_policy(ref).provenance == {"steps": 10}
    assert [p.id for p in store.list_policies(CHEETAH, kind="finetuned")] == [child]


def test_trajectory_arrays_round_trip(store, tmp_path, cheetah_episode):
    clip = cheetah_episode.window(10, 50)
    tid = store.add_trajectory(clip, None, "reference@T1", tmp_path, temperature=1.0)
    back = store.get_trajectory(tid)
    record = store.trajectory_record(tid)
    np.testing.assert_array_equal(back.obs, clip.obs)
    np.testing.assert_array_equal(back.costs, clip.costs)
    assert (record.start, record.length, record.seed, record.temperature) == (10, 50, 0, 1.0)
    assert record.total_cost == pytest.approx(clip.total_cost) and record.fell is False


@pytest.mark.parametrize("call, field", [
    (lambda s, p: s.add_label(p, "ann", "maybe"), "choice"),
    (lambda s, p: s.add_label(99999, "ann", "left"), "pair_id"),
    (lambda s, p: s.add_label(p, "  ", "left"), "annotator"),
    (lambda s, p: s.add_label(p, "x" * 65, "left"), "annotator"),
    (lambda s, p: s.add_label(p, "ann", "left", seconds=float("nan")), "seconds"),
    (lambda s, p: s.add_label(p, "ann", "left", seconds=-1), "seconds"),
    (lambda s, p: s.add_pair(1, 1, "random", 0, "r"), "left_id"),
    (lambda s, p: s.add_pair(1, 424242, "random", 0, "r"), "right_id"),
    (lambda s, p: s.add_policy("p", "/x.safetensors", CHEETAH, "magic"), "kind"),
    (lambda s, p: s.add_policy("p", "/x.safetensors", CHEETAH, "bc", parent_id=777), "policy_id"),
    (lambda s, p: s.update_run(1, colour="red"), "colour"),
    (lambda s, p: s.next_pair("ann", overlap=0), "overlap"),
    # a count, said as an id past the largest: "overlap 9223372036854775808 does not exist"
    (lambda s, p: s.pairs_open_to("ann", overlap=2**63), "overlap must be a whole number from 1 to 9223372036854775807"),
])
def test_bad_input_is_rejected_by_name_and_changes_nothing(store, tmp_path, cheetah_episode, call, field):
    _, (pair, *_) = fill(store, tmp_path, cheetah_episode)
    before = store.counts()
    with pytest.raises(ValueError, match=field):
        call(store, pair)
    assert store.counts() == before


def test_labels_are_append_only_and_undo_supersedes(store, tmp_path, cheetah_episode):
    _, (p1, p2, _) = fill(store, tmp_path, cheetah_episode)
    first = store.add_label(p1, "ann", "left", seconds=2.5)
    store.add_label(p2, "ann", "equal")
    changed = store.add_label(p1, "ann", "right")  # a change of mind
    assert store.undo_last_label("ann") == p1  # retracts the change of mind on p1
    assert store.undo_last_label("ann") == p2
    assert store.undo_last_label("ann") is None
    history = store.label_history()
    assert [h.choice for h in history] == ["left", "equal", "right", "retract", "retract"]
    assert history[2].supersedes_id == first and history[3].supersedes_id == changed
    assert store.effective_labels().empty
    store.add_label(p1, "ann", "left")
    labels = store.effective_labels()
    assert labels[["pair_id", "annotator", "choice"]].values.tolist() == [[p1, "ann", "left"]]
    assert store.undo_last_label("nobody") is None


def test_next_pair_overlap_video_first_and_skip(store, tmp_path, cheetah_episode):
    _, (p1, p2, p3) = fill(store, tmp_path, cheetah_episode)
    store.set_pair_video(p3, tmp_path / "p3.mp4")
    assert store.pairs_open_to("a") == 3 and store.pairs_open_to("a", "another-task") == 0
    assert store.next_pair("a").id == p3  # video ready first
    assert store.next_pair("a").id == p3  # the pair handed out stays until labelled
    assert (store.pairs_open_to("a"), store.pairs_open_to("b"), store.pairs_open_to("b", overlap=2)) == (3, 2, 3)
    assert store.next_pair("b").id == p1  # p3 is leased to a (overlap 1)
    assert store.next_pair("b", overlap=2).id == p1  # b's own lease comes first
    store.add_label(p3, "a", "left")
    store.add_label(p1, "b", "skip")  # skipped: not served to b again, not a judgement
    assert store.next_pair("a").id == p1  # a skip holds no slot
    assert store.next_pair("c", overlap=2).id == p3  # with overlap 2 a second person gets p3
    assert store.next_pair("b").id == p2
    assert store.pairs_open_to("d") == 0 and store.next_pair("d") is None  # p1, p2 leased, p3 labelled
    assert store.pairs_open_to("a") == 1  # p1, its own lease; p2 is held by b
    assert store.counts()["labelled"] == 1


def test_preference_pairs_by_majority_skipping_ties(store, tmp_path, cheetah_episode):
    (t1, t2, t3, t4), (p12, p13, p14) = fill(store, tmp_path, cheetah_episode, n_traj=4, n_pairs=3)
    store.add_label(p12, "a", "left")
    store.add_label(p12, "b", "left")
    store.add_label(p12, "c", "right")
    store.add_label(p13, "a", "right")
    store.add_label(p13, "b", "left")  # a tie: skipped
    store.add_label(p14, "a", "cant_tell")
    assert store.decided_pairs(CHEETAH) == [(t1, t2)]
    (winner, loser), = store.preference_pairs(CHEETAH)
    np.testing.assert_array_equal(winner.obs, store.get_trajectory(t1).obs)
    counts = store.counts(CHEETAH)
    assert (counts["labelled"], counts["pending"], counts["labels"], counts["annotators"]) == (3, 0, 6, 3)


def test_delete_pairs_takes_their_labels_and_nothing_else(store, tmp_path, cheetah_episode):
    _, (p1, p2, p3) = fill(store, tmp_path, cheetah_episode)
    store.add_label(p1, "ann", "left")
    store.add_label(p1, "ann", "right")
    store.add_label(p2, "ann", "equal")
    store.next_pair("bob")
    with pytest.raises(ValueError, match="pair_id 999"):
        store.delete_pairs([p1, 999])
    assert store.counts()["pairs"] == 3
    assert store.delete_pairs([p1, p3]) == 2
    assert [p.id for p in store.list_pairs()] == [p2]
    assert [h.pair_id for h in store.label_history()] == [p2]
    assert store.counts()["trajectories"] == 4


def test_a_policy_is_deleted_only_when_nothing_uses_it(store, tmp_path, cheetah_episode):
    from prefine_core.store import NotFound

    ref = store.add_policy("ref", tmp_path / "ref.safetensors", CHEETAH, "reference")
    [store.add_trajectory(w, ref, "test", tmp_path) for w in windows(cheetah_episode, 1)]
    child = store.add_policy("ft", tmp_path / "ft.safetensors", CHEETAH, "finetuned", parent_id=ref)
    made = store.create_run(CHEETAH, None, "prefine", {})
    store.update_run(made, output_policy_id=child)
    compared = store.add_policy("upload", tmp_path / "up.safetensors", CHEETAH, "imported")
    store.create_run(CHEETAH, None, "comparison", {"policy_a": 999, "policy_b": compared})
    wrong = store.add_policy("wrong upload", tmp_path / "wrong.safetensors", CHEETAH, "imported")
    with pytest.raises(ValueError, match=r"policy \d+ \('ref'\) is still used by 1 clip, 1 policy made from it; nothing"):
        store.delete_policy(ref)
    with pytest.raises(ValueError, match=rf"\('ft'\) is still used by 1 run \(run {made}\); nothing was deleted"):
        store.delete_policy(child)
    with pytest.raises(ValueError, match=r"\('upload'\) is still used by 1 run"):
        store.delete_policy(compared)
    assert len(store.list_policies()) == 4 and store.counts()["trajectories"] == 1  # nothing went
    assert store.delete_policy(wrong).name == "wrong upload"
    assert [p.name for p in store.list_policies()] == ["ref", "ft", "upload"]
    with pytest.raises(NotFound, match=f"policy_id {wrong} does not exist"):
        store.delete_policy(wrong)
    with pytest.raises(ValueError, match="policy_id must be"):
        store.delete_policy("1; drop table policies")


def test_runs_and_metrics(store, tmp_path):
    ref = store.add_policy("ref", tmp_path / "ref.safetensors", CHEETAH, "reference")
    run = store.create_run(CHEETAH, ref, "prefine", {"beta": 0.05})
    assert store.get_run(run).status == "queued"
    store.update_run(run, status="running", pid=1234, heartbeat=True, log_path="/tmp/log")
    store.add_metrics(run, 0, {"loss/total": 1.5, "pref/accuracy": 0.5})
    store.add_metrics(run, 10, {"loss/total": 0.5})
    out = store.add_policy("ft", tmp_path / "ft.safetensors", CHEETAH, "finetuned", parent_id=ref)
    store.update_run(run, status="done", output_policy_id=out)
    record = store.get_run(run)
    assert (record.status, record.pid, record.output_policy_id, record.config) == ("done", 1234, out, {"beta": 0.05})
    metrics = store.run_metrics(run)
    assert list(metrics.columns) == ["step", "name", "value", "time"]
    assert metrics[metrics.name == "loss/total"].value.tolist() == [1.5, 0.5]
    assert [r.id for r in store.list_runs(CHEETAH)] == [run]
    render = store.create_run(CHEETAH, None, "render", {})
    hopper = store.create_run("SafetyHopperVelocity-v1", None, "render", {})
    assert [r.id for r in store.list_runs()] == [hopper, render, run], "newest first"
    assert [r.id for r in store.list_runs(kinds=("render",))] == [hopper, render]
    assert [r.id for r in store.list_runs(CHEETAH, kinds=("render", "prefine"), statuses=("done",))] == [run]
    assert [r.id for r in store.list_runs(statuses=("queued", "running"))] == [hopper, render]
    assert [r.id for r in store.list_runs(kinds=("render",), limit=1)] == [hopper]
    with pytest.raises(ValueError, match="status"):
        store.update_run(run, status="exploded")
    with pytest.raises(ValueError, match="metric 'x'"):
        store.add_metrics(run, 1, {"x": float("inf")})


def test_metrics_after_a_step_are_dropped_by_prefix_or_all_but_it(store, tmp_path):
    ref = store.add_policy("ref", tmp_path / "ref.safetensors", CHEETAH, "reference")
    run = store.create_run(CHEETAH, ref, "prefine", {})
    for step in (10, 20, 30):
        store.add_metrics(run, step, {"loss/total": 1.0, "bc_stage/loss/bc": 1.0})
    assert store.delete_metrics_after(run, 20, prefix="bc_stage/", keep_prefixed=True) == 1  # the run's own step 30
    assert store.delete_metrics_after(run, 10, prefix="bc_stage/") == 2  # the stage's steps 20 and 30
    rows = store.run_metrics(run)
    assert sorted(zip(rows.step, rows.name)) == [(10, "bc_stage/loss/bc"), (10, "loss/total"), (20, "loss/total")]
    assert store.delete_metrics_after(run, -1) == 3 and store.run_metrics(run).empty


def test_only_new_refuses_a_second_answer_but_not_one_after_undo(store, tmp_path, cheetah_episode):
    from prefine_core.store import AlreadyAnswered

    _, (p1, _, _) = fill(store, tmp_path, cheetah_episode)
    store.add_label(p1, "ann", "left", only_new=True)
    with pytest.raises(AlreadyAnswered, match=f"ann already answered pair {p1} \\('left'\\)"):
        store.add_label(p1, "ann", "right", only_new=True)
    store.add_label(p1, "bob", "right", only_new=True)  # another annotator's first answer
    assert store.undo_last_label("ann") == p1
    store.add_label(p1, "ann", "equal", only_new=True)  # after a retraction the pair is theirs to answer again
    assert [r.choice for r in store.label_history() if r.annotator == "ann"] == ["left", "retract", "equal"]


def test_pair_open_to_and_undo_within_one_task(store, tmp_path, cheetah_episode):
    ref = store.add_policy("ref", tmp_path / "ref.safetensors", CHEETAH, "reference")
    a, b = (store.add_trajectory(cheetah_episode, ref, "t", tmp_path) for _ in range(2))
    pair = store.add_pair(a, b, "random", 0.5, "test")
    assert store.pair_open_to("ann", pair, CHEETAH) and not store.pair_open_to("ann", pair, "SafetyPointCircle1-v0")
    assert store.next_pair("bob", CHEETAH).id == pair  # handed to bob: held for him a while
    assert not store.pair_open_to("ann", pair) and store.pair_open_to("bob", pair)
    store.add_label(pair, "bob", "left")
    assert not store.pair_open_to("bob", pair) and not store.pair_open_to("bob", 99_999)
    assert store.undo_last_label("bob", "SafetyPointCircle1-v0") is None  # bob's label is on another task's pair
    assert store.undo_last_label("bob", CHEETAH) == pair


def test_an_annotators_labels_use_up_no_annotator_ids(store, tmp_path, cheetah_episode):
    """Each label looks its annotator up, inserting a new one: on PostgreSQL an insert that does nothing still takes a
    sequence value, so the second annotator's id was the first's plus the first's label count."""
    from sqlalchemy import text

    ref = store.add_policy("ref", tmp_path / "ref.safetensors", CHEETAH, "reference")
    a, b = (store.add_trajectory(cheetah_episode, ref, "t", tmp_path) for _ in range(2))
    pair = store.add_pair(a, b, "random", 0.5, "test")
    for choice in ("left", "right", "equal", "left"):
        store.add_label(pair, "ann", choice)
    store.add_label(pair, "bob", "left")
    with store.engine.connect() as conn:
        ids = dict(conn.execute(text("SELECT name, id FROM annotators")).all())
    assert ids["bob"] == ids["ann"] + 1, ids


def test_latest_steps_per_run_in_one_query_with_a_literal_prefix(store, tmp_path):
    ref = store.add_policy("ref", tmp_path / "ref.safetensors", CHEETAH, "reference")
    staged, plain, empty = (store.create_run(CHEETAH, ref, "prefine", {}) for _ in range(3))
    store.add_metrics(staged, 70, {"bc_stage/loss/bc": 1.0})
    store.add_metrics(staged, 20, {"loss/total": 1.0})
    store.add_metrics(plain, 40, {"bcXstage/loss": 1.0})  # "_" is a LIKE wildcard: the prefix must match literally
    store.add_metrics(plain, 30, {"loss/total": 1.0})
    assert store.latest_steps([staged, plain, empty], except_prefix="bc_stage/") == {
        staged: (20, 70), plain: (40, 40), empty: (None, None)}
    assert store.latest_steps([staged]) == {staged: (70, 70)}
    assert store.latest_steps([]) == {}


def test_failed_batch_leaves_no_rows_and_no_files(store, tmp_path, cheetah_episode):
    folder = tmp_path / "arrays"
    with pytest.raises(ValueError, match="pair_id"):
        with store.batch() as batch:
            batch.add_trajectory(cheetah_episode.window(0, 20), None, "x", folder)
            batch.add_label(31337, "ann", "left")
    assert store.counts()["trajectories"] == 0
    assert list(folder.glob("*")) == []


def _old_task_and_two_clips(conn, now) -> None:
    """Rows an older schema version already holds: one task and two clips (ids 1 and 2)."""
    conn.execute(text("INSERT INTO tasks (id, created_at) VALUES (:t, :now)"), {"t": CHEETAH, "now": now})
    for i in (1, 2):
        conn.execute(text(
            "INSERT INTO trajectories (task_id, source, path, seed, start, length, total_return, total_cost, "
            "fell, terminated, truncated, created_at) VALUES (:t, 'old', :path, :i, 0, 5, 1.0, 0.0, false, false, "
            "true, :now)"), {"t": CHEETAH, "path": f"/old/{i}.npz", "i": i, "now": now})


def _old_pairs_and_a_label(conn, now, pairs: int, labelled: int, reason: str = "old") -> None:
    """Beside :func:`_old_task_and_two_clips`: ``pairs`` pairs of its two clips, and old-ann's 'left' on pair ``labelled``."""
    for _ in range(pairs):
        conn.execute(text("INSERT INTO pairs (task_id, left_id, right_id, strategy, score, reason, created_at) "
                          "VALUES (:t, 1, 2, 'random', 0, :why, :now)"), {"t": CHEETAH, "why": reason, "now": now})
    conn.execute(text("INSERT INTO annotators (name, created_at) VALUES ('old-ann', :now)"), {"now": now})
    conn.execute(text("INSERT INTO labels (pair_id, annotator_id, choice, created_at) VALUES (:p, 1, 'left', :now)"),
                 {"p": labelled, "now": now})


def test_older_schema_opens_and_keeps_its_data(store_url):
    """A database made by schema version 0001 (before assignments) opens in the current version."""
    from prefine_core.store import Store
    from prefine_core.store.engine import current_revision, head_revision, make_engine, upgrade

    engine = make_engine(store_url)
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    now = datetime(2025, 1, 1)
    with engine.begin() as conn:
        _old_task_and_two_clips(conn, now)
        _old_pairs_and_a_label(conn, now, pairs=1, labelled=1, reason="old pair")
    engine.dispose()
    store = Store(store_url)
    assert current_revision(store.engine) == head_revision()
    assert store.effective_labels().choice.tolist() == ["left"]
    assert store.get_pair(1).reason == "old pair"
    assert store.next_pair("new-ann") is None  # labelled by old-ann: overlap 1 is reached
    assert store.next_pair("new-ann", overlap=2).id == 1  # uses the new assignments table
    store.add_label(1, "new-ann", "right")  # ids continue after the old rows
    assert store.counts()["labels"] == 2
    store.close()


def test_version_0002_assignments_are_back_filled(store_url):
    """0003 marks a lease as judged where its annotator's standing label is a judgement, and adds missing ones."""
    from prefine_core.store import Store
    from prefine_core.store.engine import make_engine, upgrade

    engine = make_engine(store_url)
    upgrade(engine, "0002")
    now, rows = datetime(2025, 1, 1), []
    with engine.begin() as conn:
        _old_task_and_two_clips(conn, now)
        for _ in range(3):
            conn.execute(text("INSERT INTO pairs (task_id, left_id, right_id, strategy, score, reason, created_at) "
                              "VALUES (:t, 1, 2, 'random', 0, 'old', :now)"), {"t": CHEETAH, "now": now})
        for name in ("a", "b"):
            conn.execute(text("INSERT INTO annotators (name, created_at) VALUES (:n, :now)"), {"n": name, "now": now})
        # a: leased pair 1 and judged it; leased pair 2 and skipped it. b: judged pair 3 without a lease row.
        for pair, annotator, choice in ((1, 1, "left"), (2, 1, "skip"), (3, 2, "right")):
            conn.execute(text("INSERT INTO labels (pair_id, annotator_id, choice, created_at) VALUES (:p, :a, :c, :now)"),
                         {"p": pair, "a": annotator, "c": choice, "now": now})
        for pair in (1, 2):
            conn.execute(text("INSERT INTO assignments (pair_id, annotator_id, served_at) VALUES (:p, 1, :now)"),
                         {"p": pair, "now": now})
    engine.dispose()
    store = Store(store_url)
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT pair_id, annotator_id, judged FROM assignments ORDER BY pair_id")).all()
    assert [tuple(r) for r in rows] == [(1, 1, True), (2, 1, False), (3, 2, True)]
    assert store.next_pair("c").id == 2  # pairs 1 and 3 are judged (overlap 1); a's old lease on 2 expired
    store.close()


def test_a_deleted_pairs_id_is_never_given_to_a_new_pair(store_url):
    """A page still showing a deleted pair must not save a choice onto a new pair that took its number (SQLite gave
    out the highest deleted id again); a store upgraded from 0004 keeps its rows, its references and foreign keys."""
    from prefine_core.store import Store
    from prefine_core.store.engine import make_engine, upgrade

    engine = make_engine(store_url)
    upgrade(engine, "0004")
    now = datetime(2025, 1, 1)
    with engine.begin() as conn:
        _old_task_and_two_clips(conn, now)
        _old_pairs_and_a_label(conn, now, pairs=3, labelled=2)
    engine.dispose()
    store = Store(store_url)
    assert [p.id for p in store.list_pairs()] == [1, 2, 3] and store.effective_labels().pair_id.tolist() == [2]
    store.delete_pairs([3])
    assert store.add_pair(1, 2, "random", 0.0, "new") == 4
    store.delete_pairs([4])  # the highest id, deleted: the next pair still gets a new number
    assert store.add_pair(1, 2, "random", 0.0, "newer") == 5
    assert [p.id for p in store.list_pairs()] == [1, 2, 5]
    with pytest.raises(ValueError, match="pair_id"):
        store.add_label(3, "old-ann", "left")  # the deleted pair stays deleted
    with pytest.raises(Exception):  # foreign keys are on again after the upgrade
        with store.engine.begin() as conn:
            conn.execute(text("INSERT INTO labels (pair_id, annotator_id, choice, created_at) VALUES (999, 1, 'left', :now)"),
                         {"now": now})
    store.close()


def test_a_deleted_policys_id_is_never_given_to_a_new_policy(store_url, tmp_path):
    """A kept choice or a link (``?policy_b=14``) named the new policy that took a deleted one's number; a store
    upgraded from 0007 keeps its policies, the clips and runs that refer to them, and its foreign keys."""
    from prefine_core.store import Store
    from prefine_core.store.engine import make_engine, upgrade

    engine = make_engine(store_url)
    upgrade(engine, "0007")
    engine.dispose()
    store = Store(store_url)  # upgraded to the head on opening
    ids = [store.add_policy(f"p{i}", tmp_path / f"p{i}.safetensors", CHEETAH, "imported") for i in range(3)]
    child = store.add_policy("child", tmp_path / "child.safetensors", CHEETAH, "finetuned", parent_id=ids[0])
    run = store.create_run(CHEETAH, ids[1], "compare", {})
    assert store.add_policy("p0 again", tmp_path / "p0.safetensors", CHEETAH, "imported") == ids[0]  # known: its id
    store.delete_policy(child)  # the highest id, deleted: the next policy still gets a new number …
    assert store.add_policy("new", tmp_path / "new.safetensors", CHEETAH, "imported") == child + 1  # … and only one
    assert store.get_run(run).policy_id == ids[1] and [p.id for p in store.list_policies(CHEETAH)][:3] == ids
    with pytest.raises(Exception):  # foreign keys are on
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE policies SET parent_id = 999999 WHERE id = :id"), {"id": ids[0]})
    store.close()


def test_a_tasks_people_per_pair_is_stored_and_bounded(store, tmp_path, cheetah_episode):
    _, (p1, _, _) = fill(store, tmp_path, cheetah_episode)
    assert store.task_overlap(CHEETAH) == 1 and store.task_overlap("NeverSeen-v0") == 1
    store.add_label(p1, "ann", "left")
    store.set_task_overlap(CHEETAH, 2)
    assert store.task_overlap(CHEETAH) == 2
    assert store.pair_open_to("bob", p1, CHEETAH, overlap=store.task_overlap(CHEETAH))
    for bad in (0, 11, 2.5, True, "2"):
        with pytest.raises(ValueError, match="people per pair"):
            store.set_task_overlap(CHEETAH, bad)
    assert store.task_overlap(CHEETAH) == 2


def test_schema_matches_migrations(store):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from prefine_core.store.schema import metadata

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_sqlite_uses_wal_and_foreign_keys(tmp_path):
    from prefine_core.store import Store

    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_transient_errors_are_retried_whole(tmp_path, monkeypatch):
    """A locked database re-runs the transaction from the start; a persistent error is raised, not dropped."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from prefine_core.store import engine as engine_module

    monkeypatch.setattr(engine_module, "BACKOFF_S", 0.001)
    engine = engine_module.make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    attempts = []

    def locked() -> OperationalError:
        return OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))

    def flaky(conn):
        attempts.append(1)
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        if len(attempts) < 3:
            raise locked()
        return "ok"

    assert engine_module.run_transaction(engine, flaky) == "ok"
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1  # failed attempts rolled back
    attempts.clear()

    def always_locked(conn):
        attempts.append(1)
        raise locked()

    with pytest.raises(OperationalError, match="locked"):
        engine_module.run_transaction(engine, always_locked)
    assert len(attempts) == engine_module.RETRIES


def test_a_retried_write_keeps_only_the_committed_arrays(tmp_path, cheetah_episode, monkeypatch):
    import sqlite3
    from pathlib import Path

    from sqlalchemy.exc import OperationalError

    from prefine_core.store import Store
    from prefine_core.store import engine as engine_module

    monkeypatch.setattr(engine_module, "BACKOFF_S", 0.001)
    store, folder, calls = Store(f"sqlite:///{tmp_path / 'x.db'}"), tmp_path / "arrays", []

    def write(w):
        trajectory_id = w.add_trajectory(cheetah_episode.window(0, 10), None, "x", folder)
        calls.append(trajectory_id)
        if len(calls) == 1:  # the first attempt wrote its file, then hit a locked database
            raise OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
        return trajectory_id

    trajectory_id = store._write(write)
    assert len(calls) == 2
    assert list(folder.glob("*.npz")) == [Path(store.trajectory_record(trajectory_id).path)]


def _lose_the_first_acknowledgement(store) -> list:
    """The database commits the first write, then the client hears a dropped connection (and retries)."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    commits = []

    @event.listens_for(store.engine, "commit")
    def commit_then_lose_the_ack(conn):
        if conn.get_execution_options().get("prefine_write") and not commits:
            commits.append(1)
            conn.connection.dbapi_connection.commit()  # on disk now
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("server closed the connection"))

    return commits


def test_a_commit_whose_acknowledgement_is_lost_is_stored_once_with_its_file(tmp_path, cheetah_episode, monkeypatch):
    """The retry finds the first attempt's receipt: one row, its file on disk, the first attempt's id returned."""
    from pathlib import Path

    from prefine_core.store import Store
    from prefine_core.store import engine as engine_module

    monkeypatch.setattr(engine_module, "BACKOFF_S", 0.001)
    store, folder = Store(f"sqlite:///{tmp_path / 'x.db'}"), tmp_path / "arrays"
    commits = _lose_the_first_acknowledgement(store)
    trajectory_id = store.add_trajectory(cheetah_episode.window(0, 10), None, "x", folder)
    rows = store.list_trajectories()
    assert commits and [r.id for r in rows] == [trajectory_id]
    assert list(folder.glob("*.npz")) == [Path(rows[0].path)]


def test_a_label_and_a_served_pair_whose_acknowledgement_is_lost_are_not_repeated(tmp_path, cheetah_episode, monkeypatch):
    from prefine_core.store import Store
    from prefine_core.store import engine as engine_module

    monkeypatch.setattr(engine_module, "BACKOFF_S", 0.001)
    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    a, b, c = (store.add_trajectory(cheetah_episode.window(i, 10), None, "x", tmp_path / "arrays") for i in (0, 10, 20))
    first, second = store.add_pair(a, b, "random", 0, "r"), store.add_pair(a, c, "random", 0, "r")
    commits = _lose_the_first_acknowledgement(store)
    served = store.next_pair("ann")  # the retry returns the pair the committed attempt handed out
    assert commits and served.id == first and store.next_pair("ann").id == first
    commits.clear()
    label_id = store.add_label(first, "ann", "left")
    assert commits and [r.id for r in store.label_history()] == [label_id]
    assert store.next_pair("ann").id == second


def test_old_write_receipts_are_pruned(tmp_path):
    from datetime import timedelta

    from sqlalchemy import func, select

    from prefine_core.store import Store
    from prefine_core.store import schema as S

    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    store.add_policy("ref", tmp_path / "ref.safetensors", CHEETAH, "reference")
    count = lambda: store._read(lambda c: c.execute(select(func.count()).select_from(S.write_receipts)).scalar())  # noqa: E731
    assert count() >= 1
    assert store.prune_receipts() == 0 and count() >= 1  # fresh receipts stay
    assert store.prune_receipts(older_than=timedelta(seconds=-1)) >= 1 and count() == 0


def test_workspace_registers_shipped_policies_idempotently(tmp_path, monkeypatch):
    from prefine_core.policy import save_policy
    from prefine_core.workspace import Workspace

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    shipped = tmp_path / "policies" / CHEETAH
    save_policy(make_policy(CHEETAH), shipped / "reference.safetensors")
    (shipped / "behaviour_penalty2.safetensors").write_bytes(b"still being written")
    ws = Workspace.open(tmp_path / "ws", shipped=tmp_path / "policies")
    assert [p.kind for p in ws.store.list_policies(CHEETAH)] == ["reference"]
    assert all(d.is_dir() for d in (ws.trajectories_dir, ws.videos_dir, ws.policies_dir, ws.runs_dir, ws.exports_dir))
    save_policy(make_policy(CHEETAH, seed=1), shipped / "behaviour_penalty2.safetensors")
    assert len(ws.register_shipped()) == 2  # appeared while the workspace was open
    ws = Workspace.open(tmp_path / "ws", shipped=tmp_path / "policies")
    assert sorted(p.kind for p in ws.store.list_policies(CHEETAH)) == ["behaviour", "reference"]
    assert ws.store.url.endswith("prefine.db")


def _workspace_with_one_of_everything(data, episode):
    """A workspace under ``data/workspace`` with a shipped policy beside it, two clips, a pair video and a run log."""
    from prefine_core.policy import save_policy
    from prefine_core.workspace import Workspace

    (data / "policies" / CHEETAH).mkdir(parents=True)
    save_policy(make_policy(CHEETAH), data / "policies" / CHEETAH / "reference.safetensors")
    ws = Workspace.open(data / "workspace", db_url=f"sqlite:///{data / 'workspace.db'}", shipped=data / "policies")
    [shipped] = ws.store.list_policies()
    ids = [ws.store.add_trajectory(clip, shipped.id, "test", ws.trajectories_dir) for clip in (episode, episode.window(0, 10))]
    pair = ws.store.add_pair(*ids, "random", 0.0, "test")
    ws.pair_video_path(pair).write_bytes(b"mp4")
    ws.store.set_pair_video(pair, ws.pair_video_path(pair))
    run = ws.store.create_run(CHEETAH, shipped.id, "finetune", {})
    ws.store.update_run(run, log_path=ws.runs_dir / "run.log")
    ws.store.close()
    return ids, pair, run


def _assert_every_file_found(data, ids, pair, run, episode):
    from pathlib import Path

    from prefine_core.workspace import Workspace

    ws = Workspace.open(data / "workspace", db_url=f"sqlite:///{data / 'workspace.db'}", shipped=data / "policies")
    assert [p.path for p in ws.store.list_policies()] == [str(data / "policies" / CHEETAH / "reference.safetensors")]
    assert ws.store.get_trajectory(ids[0]).length == episode.length  # the arrays load from the new place
    assert Path(ws.store.get_pair(pair).video_path).read_bytes() == b"mp4"
    assert ws.store.get_run(run).log_path == str(ws.runs_dir / "run.log")
    ws.store.close()


def test_a_moved_workspace_keeps_every_file_its_rows_name(tmp_path, cheetah_episode):
    import shutil

    ids, pair, run = _workspace_with_one_of_everything(tmp_path / "before" / "data", cheetah_episode)
    shutil.move(tmp_path / "before", tmp_path / "after")  # e.g. the checkout renamed
    _assert_every_file_found(tmp_path / "after" / "data", ids, pair, run, cheetah_episode)  # and no second shipped row


def test_rows_with_absolute_paths_from_before_are_made_relative_on_open(tmp_path, cheetah_episode):
    import shutil

    from prefine_core.store import Store

    data = tmp_path / "before" / "data"
    ids, pair, run = _workspace_with_one_of_everything(data, cheetah_episode)
    url = f"sqlite:///{data / 'workspace.db'}"
    with Store(url).engine.begin() as conn:  # as stored before: absolute
        for table, column in (("policies", "path"), ("trajectories", "path"), ("pairs", "video_path"), ("runs", "log_path")):
            conn.execute(text(f"UPDATE {table} SET {column} = :home || '/workspace/' || {column}"), {"home": str(data)})
    assert Store(url).trajectory_record(ids[0]).path.startswith(str(data))
    _assert_every_file_found(data, ids, pair, run, cheetah_episode)  # opening it rewrites them
    with Store(url).engine.connect() as conn:
        assert not any(path.startswith("/") for (path,) in conn.execute(text("SELECT path FROM trajectories")))
    shutil.move(tmp_path / "before", tmp_path / "after")
    _assert_every_file_found(tmp_path / "after" / "data", ids, pair, run, cheetah_episode)


@pytest.mark.parametrize("url, message", [
    ("not a url at all", r"the database URL \(PREFINE_DB_URL\) is not a URL: give sqlite:///PATH or postgresql"),
    ("mysql://user:secret@host/db", r"mysql://user:\*\*\*@host/db names the database kind 'mysql'; the store runs on "
                                    "SQLite or PostgreSQL"),
])
def test_a_database_url_that_is_not_one_the_store_runs_on_is_refused_in_words(url, message):
    """They reached the app as a SQLAlchemy traceback; a password in the URL is not repeated."""
    from prefine_core.store import Store

    with pytest.raises(ValueError, match=message) as refused:
        Store(url)
    assert "secret" not in str(refused.value)


@pytest.mark.parametrize("url, message", [
    ("sqlite://", "names a SQLite database in memory, which keeps nothing"),
    ("sqlite:///:memory:", "names a SQLite database in memory, which keeps nothing"),
    ("sqlite:///relative.db", "names the SQLite file 'relative.db' relative to the folder a command runs in"),
    ("sqlite:////no/such/folder/x.db", r"names a SQLite file in /no/such/folder, which is not a folder here"),
])
def test_a_sqlite_url_that_would_keep_nothing_or_land_elsewhere_is_refused(url, message, tmp_path, monkeypatch):
    """In memory, each connection and each job's process had a store of its own: ``pairs --collect`` said 12 clips
    added, and the next command found none. A relative file landed in whatever folder the command ran in, and a
    mistyped folder was made without a word."""
    from prefine_core.store import Store

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        Store(url)
    assert list(tmp_path.iterdir()) == [] and not Path("/no").exists()


def test_a_workspace_on_a_database_url_it_cannot_use_is_refused_before_its_folder_is_made(tmp_path):
    from prefine_core.workspace import Workspace

    with pytest.raises(ValueError, match="asks for the driver postgresql\\+psycopg2, which is not installed here"):
        Workspace.open(tmp_path / "new" / "ws", db_url="postgresql+psycopg2://user@127.0.0.1:1/db", shipped=None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["ws?mode=ro", "ws5%20x"])
def test_a_workspace_whose_folder_name_reads_as_part_of_a_url_keeps_its_store_inside_it(name, tmp_path):
    """Its SQLite URL was written as text: ``ws?mode=ro`` put the store in the file ``ws`` beside it, ``ws5%20x`` in the
    folder ``ws5 x``; the next command found no store. A job's process opens it from the same URL."""
    from prefine_core.store import Store
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / name, shipped=None)
    ws.store.add_policy("p", str(tmp_path / name / "p.safetensors"), CHEETAH, "reference")
    assert [path.name for path in tmp_path.iterdir()] == [name] and (tmp_path / name / "prefine.db").is_file()
    assert [p.name for p in Store(ws.store.url).list_policies()] == ["p"]


@pytest.mark.postgres
def test_a_postgres_url_in_its_common_short_form_opens_the_store(pg_schema_url):
    from prefine_core.store import Store

    short = pg_schema_url.replace("postgresql+psycopg://", "postgres://", 1)
    assert short.startswith("postgres://")
    store = Store(short)
    try:
        assert store.engine.dialect.name == "postgresql" and store.list_runs() == []
    finally:
        store.close()
