"""Fusion: versioned fused labels of crowd tasks and the runs that made them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fusion_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column(
            "scope",
            sa.Enum("project", "task", name="fusionscope", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("prior", sa.Float(), nullable=False),
        sa.Column("iterations", sa.Integer(), nullable=False),
        sa.Column("converged", sa.Boolean(), nullable=False),
        sa.Column("slices", sa.Integer(), nullable=False),
        sa.Column("rater_rates", sa.JSON(), nullable=False),
        sa.Column("excluded", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_fusion_runs_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fusion_runs")),
    )
    with op.batch_alter_table("fusion_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fusion_runs_project_id"), ["project_id"], unique=False)

    op.create_table(
        "fusion_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("slice_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("soft_key", sa.String(length=255), nullable=False),
        sa.Column("hard_pixels", sa.Integer(), nullable=False),
        sa.Column("annotation_ids", sa.JSON(), nullable=False),
        sa.Column("raters", sa.JSON(), nullable=False),
        sa.Column("uncertainty", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["fusion_runs.id"],
            name=op.f("fk_fusion_results_run_id_fusion_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["slice_id"],
            ["slices.id"],
            name=op.f("fk_fusion_results_slice_id_slices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_fusion_results_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fusion_results")),
        sa.UniqueConstraint("task_id", "version", name=op.f("uq_fusion_results_task_id_version")),
    )
    with op.batch_alter_table("fusion_results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fusion_results_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_fusion_results_slice_id"), ["slice_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_fusion_results_task_id"), ["task_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("fusion_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fusion_results_task_id"))
        batch_op.drop_index(batch_op.f("ix_fusion_results_slice_id"))
        batch_op.drop_index(batch_op.f("ix_fusion_results_run_id"))

    op.drop_table("fusion_results")
    with op.batch_alter_table("fusion_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fusion_runs_project_id"))

    op.drop_table("fusion_runs")
