"""Policy ids are never handed out twice: SQLite's ``policies`` table gets AUTOINCREMENT (as ``pairs`` did in 0005).

Without it SQLite gave the next policy the highest deleted id, so a kept choice or a shared link (``?policy_b=14``),
and the Fine-tune page's "Step 3000 is policy 14", named a policy other than the one meant. PostgreSQL's sequences
never reuse an id: nothing to do there. The rebuild runs with foreign keys off and checked before it commits
(:func:`~prefine_core.store.engine.upgrade`); the table's references to itself and from clips and runs stay.

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("policies", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("policies", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
        pass
