"""Pair ids are never handed out twice: SQLite's ``pairs`` table gets AUTOINCREMENT.

Without it SQLite gives the next pair the highest deleted id, so a Label page still showing a deleted pair saved a
choice onto a new pair its annotator never saw. PostgreSQL's sequences never reuse an id: nothing to do there.
SQLite adds AUTOINCREMENT only by rebuilding the table (its "generalized ALTER TABLE" procedure), which the store's
:func:`~prefine_core.store.engine.upgrade` runs with foreign keys off and checked before it commits. An id deleted
before this migration can still come back once; none after it.

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("pairs", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("pairs", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
        pass
