"""The preference store (SQLAlchemy): tasks, policies, trajectories, pairs, labels, annotators, runs, metrics.

SQLite file by default, PostgreSQL by URL (DESIGN §2, §6). Opening a store migrates its schema
(Alembic, ``migrations/``) to the newest version. See :class:`Store` for the API.
"""
from prefine_core.store.api import LEASE, MAX_ID, MAX_TEMPERATURE, AlreadyAnswered, NotFound, Store, is_id
from prefine_core.store.records import (
    LABEL_CHOICES, POLICY_KINDS, RETRACT, RUN_STATUSES, LabelRecord, PairRecord, PolicyRecord, RunRecord,
    TrajectoryRecord,
)

__all__ = [
    "Store", "AlreadyAnswered", "NotFound", "LEASE", "MAX_ID", "is_id", "LABEL_CHOICES", "POLICY_KINDS", "RETRACT", "RUN_STATUSES", "LabelRecord", "PairRecord",
    "PolicyRecord", "RunRecord", "TrajectoryRecord",
]
