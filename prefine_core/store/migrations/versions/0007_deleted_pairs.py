"""The store remembers which pairs a person deleted (``deleted_pairs``, by their two clips, which stay).

Without it an import of a colleague's export made before the deletion added the pair again, with its labels: a pair
thrown out as badly chosen or broken came back into the next fine-tune.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deleted_pairs",
        sa.Column("left_id", sa.Integer, sa.ForeignKey("trajectories.id"), primary_key=True),
        sa.Column("right_id", sa.Integer, sa.ForeignKey("trajectories.id"), primary_key=True),
        sa.Column("task_id", sa.String(128), sa.ForeignKey("tasks.id"), nullable=False),
        sa.Column("pair_id", sa.Integer, nullable=False),
        sa.Column("deleted_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deleted_pairs")
