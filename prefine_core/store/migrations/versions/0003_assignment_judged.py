"""Assignments record judged slots too, so serving a pair reads one small table, not the label history.

An assignment row (pair, annotator) now holds a slot on the pair either while its lease is fresh
(``served_at``) or for good once the annotator judged it (``judged``). Back-fills ``judged`` from
the standing labels (the latest row per pair and annotator, if it is a judgement).

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_STANDING = """
    SELECT l.pair_id, l.annotator_id, l.created_at FROM labels l
    JOIN (SELECT max(id) AS id FROM labels GROUP BY pair_id, annotator_id) latest ON latest.id = l.id
    WHERE l.choice IN ('left', 'right', 'equal', 'cant_tell')
"""


def upgrade() -> None:
    with op.batch_alter_table("assignments") as batch:
        batch.add_column(sa.Column("judged", sa.Boolean, nullable=False, server_default=sa.false()))
    op.execute(f"""
        UPDATE assignments SET judged = true WHERE EXISTS (
            SELECT 1 FROM ({_STANDING}) s WHERE s.pair_id = assignments.pair_id AND s.annotator_id = assignments.annotator_id)
    """)
    op.execute(f"""
        INSERT INTO assignments (pair_id, annotator_id, served_at, judged)
        SELECT s.pair_id, s.annotator_id, s.created_at, true FROM ({_STANDING}) s
        WHERE NOT EXISTS (SELECT 1 FROM assignments a WHERE a.pair_id = s.pair_id AND a.annotator_id = s.annotator_id)
    """)


def downgrade() -> None:
    with op.batch_alter_table("assignments") as batch:
        batch.drop_column("judged")
