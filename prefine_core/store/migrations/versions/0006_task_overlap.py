"""Each task says how many people judge each of its pairs (``tasks.overlap``, 1 until a lead raises it).

The Label page hands a pair to that many annotators, so that agreement (Cohen's κ, Krippendorff's α) can come from
labelling in the app, not only from imports.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("overlap", sa.Integer, nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("overlap")
