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
