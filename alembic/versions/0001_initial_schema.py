"""Initial schema: users, cases, slices, tasks, annotations.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, *values: str) -> sa.Enum:
    # Stored as VARCHAR on every dialect: adding a value later needs no ALTER TYPE.
    return sa.Enum(*values, name=name, native_enum=False, length=16)


def _created_at() -> sa.Column[sa.DateTime]:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("display_name", sa.String(length=40), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column(
            "role", _enum("userrole", "volunteer", "expert", "engineer", "admin"), nullable=False
        ),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("display_name", name=op.f("uq_users_display_name")),
    )
    op.create_index(op.f("ix_users_email"), "users", ["email"], unique=True)

    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("licence", sa.String(length=64), nullable=False),
        sa.Column(
            "consent_scope", _enum("consentscope", "open", "crowd", "restricted"), nullable=False
        ),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
    )
    op.create_index(op.f("ix_cases_public_id"), "cases", ["public_id"], unique=True)

    op.create_table(
        "slices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("axis", _enum("sliceaxis", "axial", "coronal", "sagittal"), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("crop_x0", sa.Integer(), nullable=False),
        sa.Column("crop_y0", sa.Integer(), nullable=False),
        sa.Column("crop_x1", sa.Integer(), nullable=False),
        sa.Column("crop_y1", sa.Integer(), nullable=False),
        sa.Column("image_keys", sa.JSON(), nullable=False),
        sa.Column("brain_fraction", sa.Float(), nullable=False),
        sa.CheckConstraint(
            "brain_fraction >= 0 AND brain_fraction <= 1", name=op.f("ck_slices_brain_fraction")
        ),
        sa.CheckConstraint(
            "crop_x1 > crop_x0 AND crop_y1 > crop_y0", name=op.f("ck_slices_crop_box_nonempty")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_slices_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slices")),
        sa.UniqueConstraint("case_id", "axis", "index", name=op.f("uq_slices_case_id_axis_index")),
    )
    op.create_index(op.f("ix_slices_case_id"), "slices", ["case_id"])

    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slice_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind", _enum("taskkind", "normal", "gold", "repeat", "practice"), nullable=False
        ),
        sa.Column("required_labels", sa.Integer(), nullable=False),
        sa.Column("state", _enum("taskstate", "open", "complete", "retired"), nullable=False),
        _created_at(),
        sa.CheckConstraint("required_labels >= 1", name=op.f("ck_tasks_required_labels_positive")),
        sa.ForeignKeyConstraint(
            ["slice_id"], ["slices.id"], name=op.f("fk_tasks_slice_id_slices"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    op.create_index(op.f("ix_tasks_slice_id"), "tasks", ["slice_id"])
    op.create_index(op.f("ix_tasks_state"), "tasks", ["state"])

    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("mask_key", sa.String(length=255), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("client_info", sa.JSON(), nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_annotations_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_annotations_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
        sa.UniqueConstraint("task_id", "user_id", name=op.f("uq_annotations_task_id_user_id")),
    )
    op.create_index(op.f("ix_annotations_task_id"), "annotations", ["task_id"])
    op.create_index(op.f("ix_annotations_user_id"), "annotations", ["user_id"])


def downgrade() -> None:
    # Dropping a table drops its indexes and constraints with it.
    for table in ("annotations", "tasks", "slices", "cases", "users"):
        op.drop_table(table)
