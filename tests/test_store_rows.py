"""Rows a hand edit or another tool left in the store are read safely or refused in words, never a traceback, and
nothing in the store is lost: JSON that is no object, a task's people per pair, a label's choice, metrics that are no
numbers, a store of another version, times that are no times (an audit edited a SQLite store by hand)."""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime

import pytest
from sqlalchemy import select, text

from conftest import CHEETAH
from store_backends import cheetah_episode, fill, pg_schema_url, store, store_url  # noqa: F401


def _edit(store, sql: str, **values) -> None:
    """A change made behind the store's back, as a hand edit or another tool makes it."""
    with store.engine.begin() as conn:
        conn.execute(text(sql), values)


def _cli(capsys, *args) -> tuple[int, dict]:
    """A command run as a user runs it, with ``--json``: its exit status and the object it printed."""
    from prefine_core.cli import main

    capsys.readouterr()
    status = main([*map(str, args), "--json"])
    return status, json.loads(capsys.readouterr().out)


@pytest.fixture
def workspace(tmp_path, monkeypatch, cheetah_episode):
    """A SQLite workspace with real clips and pairs (the commands open it by folder)."""
    from prefine_core.workspace import Workspace

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    ws = Workspace.open(tmp_path / "ws", shipped=None)
    fill(ws.store, ws.root / "clips", cheetah_episode)
    yield ws
    ws.store.close()


def test_a_json_column_holding_json_that_is_no_object_is_read_as_unreadable(store, tmp_path):
    """``runs.config`` set to ``[1]``, ``null`` or ``"abc"`` (``policies.provenance`` to ``[1,2]``) was handed out as
    a list, None or a string: deleting a policy, the Fine-tune page's runs table, Compare and Home failed with an
    AttributeError on ``.get``. Only text that is not JSON was read as unreadable."""
    from prefine_core.store.engine import UNREADABLE_JSON

    unused = store.add_policy("unused", tmp_path / "unused.safetensors", CHEETAH, "imported")
    used = store.add_policy("used", tmp_path / "used.safetensors", CHEETAH, "imported", provenance={"algo": "ppo"})
    run = store.create_run(CHEETAH, None, "compare", {"policy_a": used, "policy_b": used})
    _edit(store, "UPDATE policies SET provenance = :v WHERE id = :id", v="[1,2]", id=used)
    assert store.get_policy(used).provenance == {UNREADABLE_JSON: "[1,2]"}
    stored = ["[1]", "null", '"abc"'] + ([7] if store.is_sqlite else [])  # SQLite's JSON column keeps a number as one
    for value in stored:
        _edit(store, "UPDATE runs SET config = :v WHERE id = :id", v=value, id=run)
        assert store.get_run(run).config == {UNREADABLE_JSON: str(value)}
        assert [r.config.get("policy_a") for r in store.list_runs(CHEETAH)] == [None]
    assert store.delete_policy(unused).id == unused  # read every run's config for the policies it names
    with store.engine.connect() as conn:  # the row itself is as it was left
        left = conn.execute(text("SELECT CAST(provenance AS TEXT) FROM policies WHERE id = :id"), {"id": used}).scalar()
    assert left == "[1,2]"


def test_a_tasks_people_per_pair_that_is_no_whole_number_in_range_is_read_as_one(store, tmp_path, cheetah_episode):
    """``tasks.overlap`` of -3 made the Label page's pair fail ("overlap must be a positive integer id") and agreement
    say ``people_per_pair: -3``; 'two' gave "invalid literal for int()", 1e20 a misleading message. Labelling goes on,
    one person per pair, until the Data page sets it again."""
    _, (p1, _, _) = fill(store, tmp_path, cheetah_episode)
    store.set_task_overlap(CHEETAH, 2)
    store.add_label(p1, "ann", "left")
    stored = [-3, 0, 11, 2**31 - 1] + (["two", 1e20, 2.5] if store.is_sqlite else [])  # PostgreSQL holds integers
    for value in stored:
        _edit(store, "UPDATE tasks SET overlap = :v WHERE id = :t", v=value, t=CHEETAH)
        overlap = store.task_overlap(CHEETAH)
        assert overlap == 1, value
        assert store.next_pair("bob", CHEETAH, overlap).id != p1  # p1 has its one person
    store.set_task_overlap(CHEETAH, 2)
    assert store.task_overlap(CHEETAH) == 2 and store.pair_open_to("bob", p1, CHEETAH, store.task_overlap(CHEETAH))


def test_a_label_row_whose_choice_is_none_a_label_may_hold_is_no_judgement_anywhere(store, tmp_path, cheetah_episode):
    """``choice='LEFT!'`` was counted as a judgement by agreement and counts, silently ignored by the fine-tune, and
    exported, then refused by the import. It is read as a retraction (the annotator's answer there is unknown) and
    counted as unreadable."""
    _, (p1, p2, _) = fill(store, tmp_path, cheetah_episode)
    store.add_label(p1, "ann", "left")
    store.add_label(p2, "ann", "right")
    store.add_label(p1, "bob", "right")
    bad = store.add_label(p2, "bob", "left")
    _edit(store, "UPDATE labels SET choice = 'LEFT!' WHERE id = :id", id=bad)
    labels = store.effective_labels()
    assert sorted(zip(labels.pair_id, labels.annotator)) == [(p1, "ann"), (p1, "bob"), (p2, "ann")]
    assert store.decided_pairs(CHEETAH) == [_winner(store, p2, "right")]  # p1 is a tie; p2 has ann's right alone
    counts = store.counts()
    assert (counts["labels"], counts["label_rows"], counts["unreadable_labels"]) == (3, 4, 1)
    assert [h.choice for h in store.label_history() if h.id == bad] == ["retract"]
    assert store.pair_open_to("bob", p2, overlap=2)  # bob's answer there is unknown: his to give again
    assert store.undo_last_label("bob") == p1  # the unreadable row stands for nothing to undo
    store.add_label(p2, "bob", "right", only_new=True)
    assert store.counts()["labels"] == 3 and store.counts()["unreadable_labels"] == 1  # the row is kept


def _winner(store, pair_id: int, choice: str) -> tuple[int, int]:
    pair = store.get_pair(pair_id)
    return (pair.left_id, pair.right_id) if choice == "left" else (pair.right_id, pair.left_id)


def test_an_export_with_an_unreadable_label_imports_and_comes_back_as_it_left(workspace, tmp_path):
    """The export carried ``'LEFT!'`` and every import of it was refused ("labels.jsonl: label 2 has choice
    'LEFT!'"): it carries the retraction it is read as, which imports, and brought back it adds nothing."""
    from prefine_core.exchange import export_bundle, import_bundle
    from prefine_core.workspace import Workspace

    pair = workspace.store.list_pairs()[0].id
    workspace.store.add_label(pair, "ann", "left")
    bad = workspace.store.add_label(pair, "ann", "right")
    _edit(workspace.store, "UPDATE labels SET choice = 'LEFT!' WHERE id = :id", id=bad)
    export_bundle(workspace, tmp_path / "out")
    other = Workspace.open(tmp_path / "ws2", shipped=None)
    assert import_bundle(other, tmp_path / "out")["labels"] == 2
    assert other.store.effective_labels().empty and [h.choice for h in other.store.label_history()] == ["left", "retract"]
    assert import_bundle(workspace, tmp_path / "out")["labels"] == 0
    other.store.close()


def test_metric_rows_that_are_no_numbers_are_read_as_not_reported(store, capsys, workspace):
    """Metrics stored as text ('lots', 'nan') were handed out as strings: ``checkpoints --json`` printed them and the
    Fine-tune page's figures failed ("could not convert string to float"); a step stored as text was the run's
    latest step. Such rows are read as metrics not reported, and left in the store."""
    for s in (store, workspace.store):  # both backends, then the workspace the command opens
        run = s.create_run(CHEETAH, None, "prefine", {})
        s.add_metrics(run, 0, {"eval/return": 1.0, "eval/cost": 2.0})
        s.add_metrics(run, 10, {"eval/return": 3.0, "eval/cost": 4.0})
        rows = [(20, "eval/return", "NaN"), (-1, "eval/return", 5.0), (30, "eval/cost", "Infinity")]
        if s.is_sqlite:  # SQLite keeps any text, and a fraction, in a number column
            rows += [(40, "eval/return", "lots"), (50, "eval/cost", "nan"), ("x", "eval/return", 6.0),
                     (1.5, "eval/cost", 7.0)]
        value = ":v" if s.is_sqlite else "CAST(:v AS DOUBLE PRECISION)"
        for step, name, v in rows:
            _edit(s, f"INSERT INTO metrics (run_id, step, name, value, time) VALUES (:r, :s, :n, {value}, :t)",
                  r=run, s=step, n=name, v=v, t=datetime(2025, 1, 1))
        metrics = s.run_metrics(run)
        assert metrics.step.tolist() == [0, 0, 10, 10] and metrics.value.tolist() == [1.0, 2.0, 3.0, 4.0]
        last = 50 if s.is_sqlite else 30  # reported at that step, if unreadably
        assert s.latest_steps([run]) == {run: (last, last)}
        assert s.delete_metrics_after(run, 0) == (6 if s.is_sqlite else 4)  # the rows whose step is 'x' or 1.5 stay
    status, said = _cli(capsys, "checkpoints", "--workspace", workspace.root, "--run", run)
    assert status == 0 and [c["return"] for c in said["checkpoints"]] == [1.0]
    with workspace.store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM metrics WHERE run_id = :r"), {"r": run}).scalar() == 5


@pytest.mark.parametrize("revision, message", [
    ("0099_future", r"was written by a newer PREFINE Studio: its schema revision '0099_future' is unknown here"),
    ("0007", r"from revision 0007 to 0009 failed \(.*host.*\); nothing was changed"),
])
def test_a_store_of_another_version_is_refused_in_words_and_left_as_it_is(store_url, tmp_path, revision, message):
    """``alembic_version`` of '0099_future' (a newer PREFINE Studio) ended every command in Alembic's CommandError
    traceback; '0007' on tables that are newer in an OperationalError traceback ("duplicate column name")."""
    from prefine_core.store import Store

    store = Store(store_url)
    policy = store.add_policy("p", tmp_path / "p.safetensors", CHEETAH, "imported")
    _edit(store, "UPDATE alembic_version SET version_num = :v", v=revision)
    store.close()
    with pytest.raises(ValueError, match=message):
        Store(store_url)
    store = Store(store_url, migrate=False)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [revision]
    assert [p.id for p in store.list_policies()] == [policy]
    store.close()


def test_a_command_on_a_store_of_a_newer_version_says_so(tmp_path, monkeypatch, capsys):
    """Every command ended in Alembic's ``Can't locate revision identified by '0099_future'`` traceback."""
    from prefine_core.workspace import Workspace

    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    Workspace.open(tmp_path / "ws", shipped=None).store.close()
    with sqlite3.connect(tmp_path / "ws" / "prefine.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099_future'")
    for command in ("runs", "policies", "agreement"):
        status, said = _cli(capsys, command, "--workspace", tmp_path / "ws")
        assert status == 2 and "newer PREFINE Studio" in said["error"] and "nothing was changed" in said["error"]


def test_a_time_that_is_no_time_is_read_as_long_past(workspace, tmp_path, capsys):
    """SQLite only (PostgreSQL's columns hold times). ``runs.heartbeat='yesterday-ish'``, or garbage in a
    ``created_at`` of labels, pairs or policies, failed every listing of that table ("Invalid isoformat string",
    naming neither table nor row): ``runs``, ``policies``, ``agreement``, ``export``, ``checkpoints`` and every page.
    Such a value reads as 1970-01-01: it sorts first, a run's heartbeat is stale, an export carries a time."""
    from prefine_core import jobs
    from prefine_core.exchange import import_bundle
    from prefine_core.store import schema as S
    from prefine_core.store.schema import UNREADABLE_TIME
    from prefine_core.workspace import Workspace

    s = workspace.store
    policy = s.add_policy("p", tmp_path / "p.safetensors", CHEETAH, "imported")
    pair = s.list_pairs()[0].id
    label = s.add_label(pair, "ann", "left")
    run = s.create_run(CHEETAH, None, "prefine", {})
    s.update_run(run, status="running", pid=None, heartbeat=True)
    s.add_metrics(run, 0, {"eval/return": 1.0})
    for table, column, value, row in [("runs", "heartbeat", "yesterday-ish", run), ("runs", "created_at", 12345, run),
                                      ("runs", "updated_at", "2025-02-30", run), ("labels", "created_at", "", label),
                                      ("pairs", "created_at", "soon", pair), ("policies", "created_at", "x", policy)]:
        _edit(s, f"UPDATE {table} SET {column} = :v WHERE id = :id", v=value, id=row)
    _edit(s, "UPDATE metrics SET time = 'then'")
    _edit(s, "UPDATE tasks SET created_at = '2025-01-01T12:00:00+02:00'")  # an offset: read as UTC, as every time
    record = s.get_run(run)
    assert (record.heartbeat, record.created_at, record.updated_at) == (UNREADABLE_TIME,) * 3
    assert jobs.lost(workspace, record)  # no readable heartbeat: its process is gone, as with none
    assert s.get_policy(policy).created_at == UNREADABLE_TIME and s.get_pair(pair).created_at == UNREADABLE_TIME
    assert s.label_history()[0].created_at == UNREADABLE_TIME and s.run_metrics(run).time.tolist() == [UNREADABLE_TIME]
    with s.engine.connect() as conn:
        assert conn.execute(select(S.tasks.c.created_at)).scalar() == datetime(2025, 1, 1, 10)
        assert conn.execute(text("SELECT created_at FROM tasks")).scalar() == "2025-01-01T12:00:00+02:00"  # as left
    for command in ("runs", "policies", "agreement"):
        status, said = _cli(capsys, command, "--workspace", workspace.root)
        assert status == 0, said
    status, said = _cli(capsys, "checkpoints", "--workspace", workspace.root, "--run", run)
    assert status == 0 and [c["return"] for c in said["checkpoints"]] == [1.0]
    status, said = _cli(capsys, "export", "--workspace", workspace.root, "--out", tmp_path / "out")
    assert status == 0 and said["labels"] == 1
    other = Workspace.open(tmp_path / "ws2", shipped=None)
    assert import_bundle(other, tmp_path / "out")["labels"] == 1
    assert other.store.label_history()[0].created_at == UNREADABLE_TIME
    assert import_bundle(workspace, tmp_path / "out")["labels"] == 0  # the same label: not added twice
    other.store.close()


def test_a_time_out_of_pythons_range_is_read_as_long_past(store, tmp_path):
    """PostgreSQL holds times Python cannot (``'infinity'``, ``'-infinity'``, the year 20000); psycopg refused to read
    them ("timestamp too large"), failing every listing of the table before :class:`StoredTime` saw the value. SQLite
    keeps such an edit as text, which StoredTime reads as long past; both stores now read them alike."""
    from prefine_core.store.schema import UNREADABLE_TIME

    policy = store.add_policy("p", tmp_path / "p.safetensors", CHEETAH, "imported")
    run = store.create_run(CHEETAH, policy, "prefine", {})
    for value in ("infinity", "-infinity", "20000-01-01 00:00:00"):
        _edit(store, "UPDATE runs SET heartbeat = :v, created_at = :v WHERE id = :id", v=value, id=run)
        _edit(store, "UPDATE policies SET created_at = :v WHERE id = :id", v=value, id=policy)
        record = store.list_runs()[0]
        assert (record.heartbeat, record.created_at) == (UNREADABLE_TIME, UNREADABLE_TIME), value
        assert [p.created_at for p in store.list_policies()] == [UNREADABLE_TIME]
