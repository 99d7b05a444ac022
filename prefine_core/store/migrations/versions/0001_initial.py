"""Initial schema: tasks, policies, trajectories, pairs, annotators, labels, runs, metrics.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("task_id", sa.String(128), sa.ForeignKey("tasks.id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("policies.id"), nullable=True),
        sa.Column("provenance", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("task_id", "path", name="uq_policies_task_path"),
    )
    op.create_table(
        "trajectories",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_id", sa.String(128), sa.ForeignKey("tasks.id"), nullable=False),
        sa.Column("policy_id", sa.Integer, sa.ForeignKey("policies.id"), nullable=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("seed", sa.Integer, nullable=True),
        sa.Column("start", sa.Integer, nullable=False),
        sa.Column("length", sa.Integer, nullable=False),
        sa.Column("total_return", sa.Float, nullable=False),
        sa.Column("total_cost", sa.Float, nullable=False),
        sa.Column("fell", sa.Boolean, nullable=False),
        sa.Column("terminated", sa.Boolean, nullable=False),
        sa.Column("truncated", sa.Boolean, nullable=False),
        sa.Column("temperature", sa.Float, nullable=True),
        sa.Column("video_path", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_trajectories_task_source", "trajectories", ["task_id", "source"])
    op.create_table(
        "pairs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_id", sa.String(128), sa.ForeignKey("tasks.id"), nullable=False),
        sa.Column("left_id", sa.Integer, sa.ForeignKey("trajectories.id"), nullable=False),
        sa.Column("right_id", sa.Integer, sa.ForeignKey("trajectories.id"), nullable=False),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("video_path", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.CheckConstraint("left_id <> right_id", name="ck_pairs_distinct"),
    )
    op.create_index("ix_pairs_task", "pairs", ["task_id"])
    op.create_table(
        "annotators",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("pair_id", sa.Integer, sa.ForeignKey("pairs.id"), nullable=False),
        sa.Column("annotator_id", sa.Integer, sa.ForeignKey("annotators.id"), nullable=False),
        sa.Column("choice", sa.String(16), nullable=False),
        sa.Column("seconds", sa.Float, nullable=True),
        sa.Column("supersedes_id", sa.Integer, sa.ForeignKey("labels.id"), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_labels_pair_annotator", "labels", ["pair_id", "annotator_id"])
    op.create_index("ix_labels_annotator", "labels", ["annotator_id"])
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_id", sa.String(128), sa.ForeignKey("tasks.id"), nullable=False),
        sa.Column("policy_id", sa.Integer, sa.ForeignKey("policies.id"), nullable=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("output_policy_id", sa.Integer, sa.ForeignKey("policies.id"), nullable=True),
        sa.Column("log_path", sa.Text, nullable=True),
        sa.Column("heartbeat", sa.DateTime, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("time", sa.DateTime, nullable=False),
    )
    op.create_index("ix_metrics_run", "metrics", ["run_id", "step"])


def downgrade() -> None:
    for table in ("metrics", "runs", "labels", "annotators", "pairs", "trajectories", "policies", "tasks"):
        op.drop_table(table)
