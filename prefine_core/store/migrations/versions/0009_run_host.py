"""Each run says which machine its process runs on (``runs.host``).

Several app instances may share one PostgreSQL store. A run's ``pid`` means something only on the machine that
started it: without the host, every other instance found no such process on its own machine and marked the run
failed ("stopped without reporting") while it ran on. Rows from before stay NULL and are read as this machine's,
as they were.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("host", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("host")
