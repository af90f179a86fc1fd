"""The volunteer studio: optional emails (pseudonym-only accounts), stored consent, and
volunteers' problem reports on slices.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REASONS = ("bad_image", "artefact", "unsure", "other")


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("email", existing_type=sa.String(length=254), nullable=True)
        batch_op.add_column(sa.Column("consent_version", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("consent_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "task_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("slice_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "reason",
            sa.Enum(*REASONS, name="reportreason", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["slice_id"],
            ["slices.id"],
            name=op.f("fk_task_reports_slice_id_slices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_task_reports_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_task_reports_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_reports")),
    )
    with op.batch_alter_table("task_reports", schema=None) as batch_op:
        for column in ("slice_id", "task_id", "user_id"):
            batch_op.create_index(batch_op.f(f"ix_task_reports_{column}"), [column], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("task_reports", schema=None) as batch_op:
        for column in ("slice_id", "task_id", "user_id"):
            batch_op.drop_index(batch_op.f(f"ix_task_reports_{column}"))
    op.drop_table("task_reports")
    # Pseudonym-only accounts have no email to restore the NOT NULL with: they are removed.
    op.execute("DELETE FROM users WHERE email IS NULL")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("consent_at")
        batch_op.drop_column("consent_version")
        batch_op.alter_column("email", existing_type=sa.String(length=254), nullable=False)
