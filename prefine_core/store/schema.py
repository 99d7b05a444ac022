"""The preference store's tables (SQLAlchemy Core), at the newest schema version.

The Alembic migrations in ``migrations/versions`` build exactly this schema step by step; a test
compares the two. Times are UTC, read by :class:`StoredTime`. JSON columns hold plain dicts (provenance, run config).
"""
from __future__ import annotations

import math
from datetime import datetime, timezone

from sqlalchemy import (
    JSON, Boolean, CheckConstraint, Column, DateTime, Float, ForeignKey, Index, Integer, MetaData, String,
    Table, Text, TypeDecorator, UniqueConstraint, false,
)

metadata = MetaData()


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


#: What a stored time that is no time is read as (:class:`StoredTime`): long before any store was made.
UNREADABLE_TIME = datetime(1970, 1, 1)


class StoredTime(TypeDecorator):
    """A DateTime column (the same DDL), read safely. SQLite keeps a time as text, which a hand edit or another tool
    can make into something that is no time ('yesterday-ish', a number): SQLAlchemy's parser then failed every
    listing of the table, naming neither table nor row. Such a value reads as :data:`UNREADABLE_TIME`, which every
    caller copes with where None would not (a run's age, an export's ISO time): long past, so it sorts first and a
    run's heartbeat reads as stale. A time given with an offset reads as UTC without one, as every time here is (an
    aware time cannot be compared with the others)."""
    impl = DateTime
    cache_ok = True

    def result_processor(self, dialect, coltype):
        parse = super().result_processor(dialect, coltype)  # SQLite's parser of its text; None where the driver parses
        if parse is None:
            return None

        def read(value):
            try:
                moment = parse(value)
            except (TypeError, ValueError, OverflowError):
                return UNREADABLE_TIME
            if moment is not None and moment.tzinfo is not None:
                moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
            return moment

        return read


class StoredNumber(TypeDecorator):
    """A Float column (the same DDL), read safely. SQLite keeps whatever a hand edit writes into a number column
    ('lots'), and one such text failed every mean over the table (``pairs --task``: "agg function failed"). It reads
    as :attr:`unreadable`: NaN in a column that may not be empty (a clip's return and cost, a pair's score), which
    tables show as such and means pass over."""
    impl = Float
    cache_ok = True
    unreadable: float | None = math.nan

    def process_result_value(self, value, dialect):
        if value is None or isinstance(value, float):
            return value
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError):
            return self.unreadable


class StoredOptionalNumber(StoredNumber):
    """A :class:`StoredNumber` of a column that may be empty (a label's seconds, a clip's temperature): a value that
    is no number reads as None, as if unrecorded."""
    cache_ok = True
    unreadable = None


class StoredWhole(TypeDecorator):
    """An Integer column (the same DDL), read safely as :class:`StoredNumber` reads a float: a value that is no whole
    number (a hand edit's 'ten', 4.5) reads as None, which a clip's readers take as not recorded (a clip without a
    seed is not replayed; one without a start or length is said to have none)."""
    impl = Integer
    cache_ok = True

    def process_result_value(self, value, dialect):
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        try:
            whole = float(value)
        except (TypeError, ValueError, OverflowError):
            return None
        return int(whole) if math.isfinite(whole) and whole.is_integer() else None


tasks = Table(
    "tasks", metadata,
    Column("id", String(128), primary_key=True),
    Column("created_at", StoredTime, nullable=False, default=utcnow),
    # 0006: how many annotators the Label page hands each of the task's pairs to (agreement needs ≥ 2)
    Column("overlap", Integer, nullable=False, server_default="1"),
)

policies = Table(
    "policies", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("path", Text, nullable=False),
    Column("task_id", String(128), ForeignKey("tasks.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("parent_id", Integer, ForeignKey("policies.id"), nullable=True),
    Column("provenance", JSON, nullable=False),
    Column("created_at", StoredTime, nullable=False, default=utcnow),
    UniqueConstraint("task_id", "path", name="uq_policies_task_path"),
    sqlite_autoincrement=True,  # 0008: a deleted policy's id is never handed to a new one (links and choices name it)
)

trajectories = Table(
    "trajectories", metadata,
    Column("id", Integer, primary_key=True),
    Column("task_id", String(128), ForeignKey("tasks.id"), nullable=False),
    Column("policy_id", Integer, ForeignKey("policies.id"), nullable=True),
    Column("source", String(200), nullable=False),
    Column("path", Text, nullable=False),
    Column("seed", StoredWhole, nullable=True),
    Column("start", StoredWhole, nullable=False),
    Column("length", StoredWhole, nullable=False),
    Column("total_return", StoredNumber, nullable=False),
    Column("total_cost", StoredNumber, nullable=False),
    Column("fell", Boolean, nullable=False),
    Column("terminated", Boolean, nullable=False),
    Column("truncated", Boolean, nullable=False),
    Column("temperature", StoredOptionalNumber, nullable=True),
    Column("video_path", Text, nullable=True),
    Column("created_at", StoredTime, nullable=False, default=utcnow),
    Index("ix_trajectories_task_source", "task_id", "source"),
)

pairs = Table(
    "pairs", metadata,
    Column("id", Integer, primary_key=True),
    Column("task_id", String(128), ForeignKey("tasks.id"), nullable=False),
    Column("left_id", Integer, ForeignKey("trajectories.id"), nullable=False),
    Column("right_id", Integer, ForeignKey("trajectories.id"), nullable=False),
    Column("strategy", String(64), nullable=False),
    Column("score", StoredNumber, nullable=False),
    Column("reason", Text, nullable=False),
    Column("video_path", Text, nullable=True),
    Column("created_at", StoredTime, nullable=False, default=utcnow),
    CheckConstraint("left_id <> right_id", name="ck_pairs_distinct"),
    Index("ix_pairs_task", "task_id"),
    sqlite_autoincrement=True,  # 0005: a deleted pair's id is never handed to a new pair (a page may still show it)
)

# 0007: a pair a person deleted, by the two clips it showed (the clips stay), so that an import of an export made
# before the deletion does not bring it back (nor its labels); an import asked to restore deleted pairs removes the row.
deleted_pairs = Table(
    "deleted_pairs", metadata,
    Column("left_id", Integer, ForeignKey("trajectories.id"), primary_key=True),
    Column("right_id", Integer, ForeignKey("trajectories.id"), primary_key=True),
    Column("task_id", String(128), ForeignKey("tasks.id"), nullable=False),
    Column("pair_id", Integer, nullable=False),  # the id it had here: no foreign key, that row is gone
    Column("deleted_at", StoredTime, nullable=False, default=utcnow),
)

annotators = Table(
    "annotators", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("created_at", StoredTime, nullable=False, default=utcnow),
)

labels = Table(
    "labels", metadata,
    Column("id", Integer, primary_key=True),
    Column("pair_id", Integer, ForeignKey("pairs.id"), nullable=False),
    Column("annotator_id", Integer, ForeignKey("annotators.id"), nullable=False),
    Column("choice", String(16), nullable=False),
    Column("seconds", StoredOptionalNumber, nullable=True),
    Column("supersedes_id", Integer, ForeignKey("labels.id"), nullable=True),
    Column("created_at", StoredTime, nullable=False, default=utcnow),
    Index("ix_labels_pair_annotator", "pair_id", "annotator_id"),
    Index("ix_labels_annotator", "annotator_id"),
)

# Added in schema version 0002: which pair was handed to which annotator, and when, so that with
# overlap k a pair is not handed to more than k people at once; 0003 added ``judged``. A row holds
# a slot on its pair while ``served_at`` is within the lease, or for good once ``judged``.
assignments = Table(
    "assignments", metadata,
    Column("pair_id", Integer, ForeignKey("pairs.id"), primary_key=True),
    Column("annotator_id", Integer, ForeignKey("annotators.id"), primary_key=True),
    Column("served_at", StoredTime, nullable=False, default=utcnow),
    Column("judged", Boolean, nullable=False, default=False, server_default=false()),
)

runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("task_id", String(128), ForeignKey("tasks.id"), nullable=False),
    Column("policy_id", Integer, ForeignKey("policies.id"), nullable=True),
    Column("kind", String(64), nullable=False),
    Column("config", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("pid", Integer, nullable=True),
    Column("host", String(255), nullable=True),  # the machine of ``pid`` (migration 0009)
    Column("error", Text, nullable=True),
    Column("output_policy_id", Integer, ForeignKey("policies.id"), nullable=True),
    Column("log_path", Text, nullable=True),
    Column("heartbeat", StoredTime, nullable=True),
    Column("created_at", StoredTime, nullable=False, default=utcnow),
    Column("updated_at", StoredTime, nullable=False, default=utcnow),
)

metrics = Table(
    "metrics", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("step", Integer, nullable=False),
    Column("name", String(128), nullable=False),
    Column("value", Float, nullable=False),
    Column("time", StoredTime, nullable=False, default=utcnow),
    Index("ix_metrics_run", "run_id", "step"),
)

write_receipts = Table(
    "write_receipts", metadata,
    # One row per acknowledged-or-not write: a retry whose first attempt did commit (its acknowledgement lost)
    # finds its key here and returns the first attempt's result instead of writing the rows a second time.
    Column("key", String(36), primary_key=True),
    Column("result", JSON, nullable=True),
    Column("created_at", StoredTime, nullable=False, default=utcnow),
)
