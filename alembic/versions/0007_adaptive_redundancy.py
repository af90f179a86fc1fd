"""Adaptive redundancy and the job outbox.

Projects' ``redundancy`` becomes ``min_labels``, beside ``max_labels`` and ``max_uncertainty``;
fused results record the redundancy decision they led to and project runs the gold scores
of the outline rules; ``job_outbox`` holds jobs to send
once their transaction has committed. Existing projects keep their redundancy as
``min_labels`` and get ``max_labels`` = max(7, min_labels).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_outbox")),
    )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_projects_redundancy_positive"), type_="check")
        batch_op.alter_column("redundancy", new_column_name="min_labels")
        batch_op.add_column(
            sa.Column("max_labels", sa.Integer(), nullable=False, server_default=sa.text("7"))
        )
        batch_op.add_column(
            sa.Column("max_uncertainty", sa.Float(), nullable=False, server_default=sa.text("0.5"))
        )
    op.execute("UPDATE projects SET max_labels = min_labels WHERE min_labels > max_labels")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_check_constraint(op.f("ck_projects_min_labels_positive"), "min_labels >= 1")
        batch_op.create_check_constraint(
            op.f("ck_projects_max_labels_at_least_min"), "max_labels >= min_labels"
        )
    with op.batch_alter_table("fusion_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decision", sa.String(length=16), nullable=True))
    with op.batch_alter_table("fusion_runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("outline_scores", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("fusion_runs", schema=None) as batch_op:
        batch_op.drop_column("outline_scores")
    with op.batch_alter_table("fusion_results", schema=None) as batch_op:
        batch_op.drop_column("decision")
    op.execute("UPDATE tasks SET state = 'complete' WHERE state = 'review'")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_projects_max_labels_at_least_min"), type_="check")
        batch_op.drop_constraint(op.f("ck_projects_min_labels_positive"), type_="check")
        batch_op.drop_column("max_uncertainty")
        batch_op.drop_column("max_labels")
        batch_op.alter_column("min_labels", new_column_name="redundancy")
        batch_op.create_check_constraint(op.f("ck_projects_redundancy_positive"), "redundancy >= 1")
    op.drop_table("job_outbox")
