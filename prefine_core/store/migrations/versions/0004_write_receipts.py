"""Write receipts: a retried write whose first attempt committed (its acknowledgement lost) is not stored twice.

Each write through ``Store._write`` records a random key in the same transaction; a retry that finds its key
returns the recorded result. Receipts older than a day are pruned when a workspace opens.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "write_receipts",
        sa.Column("key", sa.String(36), primary_key=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("write_receipts")
