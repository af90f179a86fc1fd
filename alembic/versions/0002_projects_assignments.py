"""Projects, volumes, assignments (leases) and credentials; cases and tasks join a project.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

The NOT NULL columns added to cases, tasks and annotations have no default: at revision 0001
nothing could write those tables yet, so they are empty wherever this runs.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("redundancy", sa.Integer(), nullable=False),
        sa.Column("gold_rate", sa.Float(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "gold_rate >= 0 AND gold_rate <= 1", name=op.f("ck_projects_gold_rate_fraction")
        ),
        sa.CheckConstraint("redundancy >= 1", name=op.f("ck_projects_redundancy_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_projects_name"), ["name"], unique=True)

    op.create_table(
        "credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("session", "token", name="credentialkind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_credentials_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credentials")),
    )
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_credentials_secret_sha256"), ["secret_sha256"], unique=True
        )
        batch_op.create_index(batch_op.f("ix_credentials_user_id"), ["user_id"], unique=False)

    op.create_table(
        "volumes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column(
            "contrast",
            sa.Enum(
                "flair", "t1", "t2", "reference", name="contrast", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("shape", sa.JSON(), nullable=False),
        sa.Column("spacing", sa.JSON(), nullable=False),
        sa.Column("affine", sa.JSON(), nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column("window", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_volumes_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volumes")),
        sa.UniqueConstraint("case_id", "contrast", name=op.f("uq_volumes_case_id_contrast")),
    )
    with op.batch_alter_table("volumes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_volumes_case_id"), ["case_id"], unique=False)

    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum("active", "submitted", name="assignmentstate", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("leased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_assignments_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_assignments_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
        sa.UniqueConstraint("task_id", "user_id", name=op.f("uq_assignments_task_id_user_id")),
        sa.UniqueConstraint(
            "user_id", "idempotency_key", name=op.f("uq_assignments_user_id_idempotency_key")
        ),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assignments_lease_expires_at"), ["lease_expires_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_assignments_task_id"), ["task_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_assignments_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lesion_pixels", sa.Integer(), nullable=False))

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project_id", sa.Integer(), nullable=False))
        batch_op.add_column(sa.Column("source_sha256", sa.String(length=64), nullable=False))
        batch_op.add_column(sa.Column("reference_voxels", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_cases_project_id"), ["project_id"], unique=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_cases_project_id_source_sha256"), ["project_id", "source_sha256"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_cases_project_id_projects"),
            "projects",
            ["project_id"],
            ["id"],
            ondelete="CASCADE",
        )

    with op.batch_alter_table("slices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reference_key", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("reference_pixels", sa.Integer(), nullable=True))

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project_id", sa.Integer(), nullable=False))
        batch_op.add_column(sa.Column("priority", sa.Float(), nullable=False))
        batch_op.create_index(batch_op.f("ix_tasks_project_id"), ["project_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_tasks_project_id_projects"),
            "projects",
            ["project_id"],
            ["id"],
            ondelete="CASCADE",
        )
    # The queue order of GET /api/tasks/next over open tasks (see backend/tasks/models.py).
    op.create_index(
        "ix_tasks_open_queue",
        "tasks",
        ["priority", "id"],
        postgresql_where=sa.text("state = 'open'"),
        sqlite_where=sa.text("state = 'open'"),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_open_queue", table_name="tasks")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_tasks_project_id_projects"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_tasks_project_id"))
        batch_op.drop_column("priority")
        batch_op.drop_column("project_id")

    with op.batch_alter_table("slices", schema=None) as batch_op:
        batch_op.drop_column("reference_pixels")
        batch_op.drop_column("reference_key")

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_cases_project_id_projects"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_cases_project_id_source_sha256"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_cases_project_id"))
        batch_op.drop_column("reference_voxels")
        batch_op.drop_column("source_sha256")
        batch_op.drop_column("project_id")

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("locked_until")
        batch_op.drop_column("failed_logins")

    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.drop_column("lesion_pixels")

    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assignments_user_id"))
        batch_op.drop_index(batch_op.f("ix_assignments_task_id"))
        batch_op.drop_index(batch_op.f("ix_assignments_lease_expires_at"))

    op.drop_table("assignments")
    with op.batch_alter_table("volumes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_volumes_case_id"))

    op.drop_table("volumes")
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credentials_user_id"))
        batch_op.drop_index(batch_op.f("ix_credentials_secret_sha256"))

    op.drop_table("credentials")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_projects_name"))

    op.drop_table("projects")
