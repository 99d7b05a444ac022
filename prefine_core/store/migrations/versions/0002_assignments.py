"""Assignments: which pair was handed to which annotator, so overlap k holds while people label.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assignments",
        sa.Column("pair_id", sa.Integer, sa.ForeignKey("pairs.id"), primary_key=True),
        sa.Column("annotator_id", sa.Integer, sa.ForeignKey("annotators.id"), primary_key=True),
        sa.Column("served_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("assignments")
