"""Active-learning rounds: the ``rounds`` table, the round that trained a model version,
the held-out cases of a project and the FLAIR-hyperintense share of each slice.

Existing slices get no candidate share (NULL: the selection treats them as average).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("open", "labelling", "fusing", "training", "scoring", "closed")


def upgrade() -> None:
    op.create_table(
        "rounds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(*STATUSES, name="roundstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("selected_by", sa.String(length=32), nullable=True),
        sa.Column("budget", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("config", sa.String(length=16), nullable=True),
        sa.Column("minutes", sa.Float(), nullable=True),
        sa.Column("selected", sa.JSON(), nullable=False),
        sa.Column("labels_used", sa.Integer(), nullable=True),
        sa.Column("scores_key", sa.String(length=255), nullable=True),
        sa.Column("scored_slices", sa.Integer(), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("eta_seconds", sa.Float(), nullable=True),
        sa.Column("detail", sa.String(length=300), nullable=False),
        sa.Column("job_token", sa.String(length=64), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("budget >= 1", name=op.f("ck_rounds_budget_positive")),
        sa.CheckConstraint(
            "progress >= 0 AND progress <= 100", name=op.f("ck_rounds_progress_percent")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_rounds_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rounds")),
        sa.UniqueConstraint("project_id", "number", name=op.f("uq_rounds_project_id_number")),
    )
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rounds_project_id"), ["project_id"], unique=False)
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("round_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_model_versions_round_id"), ["round_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_model_versions_round_id_rounds"),
            "rounds",
            ["round_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("holdout_cases", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
    with op.batch_alter_table("slices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("candidate_fraction", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("slices", schema=None) as batch_op:
        batch_op.drop_column("candidate_fraction")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("holdout_cases")
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_model_versions_round_id_rounds"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_model_versions_round_id"))
        batch_op.drop_column("round_id")
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rounds_project_id"))
    op.drop_table("rounds")
