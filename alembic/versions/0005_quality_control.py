"""Quality control: frozen gold masks, gold and repeat scores, rater totals and trust, and the
projects' gold schedule, repeat and reliability settings; gold and repeat links on tasks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

Existing projects get the defaults of ``Project``; existing tasks are normal tasks and
existing leases volunteers' leases.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rater_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column(
            "action",
            sa.Enum(
                "suspended", "reinstated", name="rateractionkind", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_user_id"],
            ["users.id"],
            name=op.f("fk_rater_actions_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_rater_actions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_rater_actions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rater_actions")),
    )
    with op.batch_alter_table("rater_actions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rater_actions_project_id"), ["project_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_rater_actions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "rater_stats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("gold", sa.Integer(), nullable=False),
        sa.Column("tp", sa.BigInteger(), nullable=False),
        sa.Column("fp", sa.BigInteger(), nullable=False),
        sa.Column("fn", sa.BigInteger(), nullable=False),
        sa.Column("tn", sa.BigInteger(), nullable=False),
        sa.Column("lesions_reference", sa.Integer(), nullable=False),
        sa.Column("lesions_found", sa.Integer(), nullable=False),
        sa.Column("lesions_predicted", sa.Integer(), nullable=False),
        sa.Column("lesions_true", sa.Integer(), nullable=False),
        sa.Column("gold_with_lesions", sa.Integer(), nullable=False),
        sa.Column("empty_on_lesions", sa.Integer(), nullable=False),
        sa.Column("scribbles", sa.Integer(), nullable=False),
        sa.Column("timed", sa.Integer(), nullable=False),
        sa.Column("fast", sa.Integer(), nullable=False),
        sa.Column("duration_ms_sum", sa.BigInteger(), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.Column("repeat_dice_sum", sa.Float(), nullable=False),
        sa.Column(
            "trust",
            sa.Enum(
                "new",
                "qualified",
                "trusted",
                "suspended",
                name="trustlevel",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("suspended_reason", sa.String(length=1000), nullable=True),
        sa.Column("override", sa.String(length=16), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_rater_stats_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_rater_stats_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rater_stats")),
        sa.UniqueConstraint(
            "user_id", "project_id", name=op.f("uq_rater_stats_user_id_project_id")
        ),
    )
    with op.batch_alter_table("rater_stats", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rater_stats_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rater_stats_trust"), ["trust"], unique=False)
        batch_op.create_index(batch_op.f("ix_rater_stats_user_id"), ["user_id"], unique=False)

    op.create_table(
        "repeat_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("annotation_id", sa.Integer(), nullable=False),
        sa.Column("first_annotation_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("dice", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["annotation_id"],
            ["annotations.id"],
            name=op.f("fk_repeat_scores_annotation_id_annotations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["first_annotation_id"],
            ["annotations.id"],
            name=op.f("fk_repeat_scores_first_annotation_id_annotations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_repeat_scores_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_repeat_scores_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repeat_scores")),
        sa.UniqueConstraint("annotation_id", name=op.f("uq_repeat_scores_annotation_id")),
    )
    with op.batch_alter_table("repeat_scores", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_repeat_scores_project_id"), ["project_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_repeat_scores_user_id"), ["user_id"], unique=False)

    op.create_table(
        "gold_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slice_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "source",
            sa.Enum("reference", "expert", name="goldsource", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("mask_key", sa.String(length=255), nullable=False),
        sa.Column("lesion_pixels", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_gold_versions_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["slice_id"],
            ["slices.id"],
            name=op.f("fk_gold_versions_slice_id_slices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gold_versions")),
        sa.UniqueConstraint("slice_id", "version", name=op.f("uq_gold_versions_slice_id_version")),
    )
    with op.batch_alter_table("gold_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gold_versions_slice_id"), ["slice_id"], unique=False)

    op.create_table(
        "gold_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("annotation_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("gold_version_id", sa.Integer(), nullable=False),
        sa.Column("tp", sa.Integer(), nullable=False),
        sa.Column("fp", sa.Integer(), nullable=False),
        sa.Column("fn", sa.Integer(), nullable=False),
        sa.Column("tn", sa.Integer(), nullable=False),
        sa.Column("dice", sa.Float(), nullable=False),
        sa.Column("lesions_reference", sa.Integer(), nullable=False),
        sa.Column("lesions_found", sa.Integer(), nullable=False),
        sa.Column("lesions_predicted", sa.Integer(), nullable=False),
        sa.Column("false_alarms", sa.Integer(), nullable=False),
        sa.Column("scribble", sa.Boolean(), nullable=False),
        sa.Column("overlay_key", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["annotation_id"],
            ["annotations.id"],
            name=op.f("fk_gold_scores_annotation_id_annotations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["gold_version_id"],
            ["gold_versions.id"],
            name=op.f("fk_gold_scores_gold_version_id_gold_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_gold_scores_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_gold_scores_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gold_scores")),
        sa.UniqueConstraint("annotation_id", name=op.f("uq_gold_scores_annotation_id")),
    )
    with op.batch_alter_table("gold_scores", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gold_scores_gold_version_id"), ["gold_version_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_gold_scores_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_gold_scores_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "gold_schedule",
                sa.JSON(),
                nullable=False,
                server_default=sa.text("'[[10, 0.4], [30, 0.3], [100, 0.2]]'"),
            )
        )
        batch_op.add_column(
            sa.Column("repeat_rate", sa.Float(), nullable=False, server_default=sa.text("'0.05'"))
        )
        batch_op.add_column(
            sa.Column("repeat_gap", sa.Integer(), nullable=False, server_default=sa.text("'20'"))
        )
        batch_op.add_column(
            sa.Column("min_gold", sa.Integer(), nullable=False, server_default=sa.text("'5'"))
        )
        batch_op.add_column(
            sa.Column(
                "min_sensitivity", sa.Float(), nullable=False, server_default=sa.text("'0.3'")
            )
        )
        batch_op.add_column(
            sa.Column("min_lesion_ppv", sa.Float(), nullable=False, server_default=sa.text("'0.3'"))
        )
        batch_op.add_column(
            sa.Column("fast_ms", sa.Integer(), nullable=False, server_default=sa.text("'1500'"))
        )

    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("expert", sa.Boolean(), nullable=False, server_default=sa.false())
        )

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gold_version_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("for_user_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("repeat_of_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("due_after", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_tasks_for_user_id"), ["for_user_id"], unique=False)
        batch_op.create_index(
            "ix_tasks_open_gold",
            ["project_id", "id"],
            unique=False,
            postgresql_where=sa.text("kind = 'gold' AND state = 'open'"),
            sqlite_where=sa.text("kind = 'gold' AND state = 'open'"),
        )
        batch_op.create_index(
            batch_op.f("ix_tasks_gold_version_id"), ["gold_version_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_tasks_gold_version_id_gold_versions"),
            "gold_versions",
            ["gold_version_id"],
            ["id"],
            ondelete="RESTRICT",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_tasks_for_user_id_users"),
            "users",
            ["for_user_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_column("expert")

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_tasks_for_user_id_users"), type_="foreignkey")
        batch_op.drop_constraint(
            batch_op.f("fk_tasks_gold_version_id_gold_versions"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_tasks_gold_version_id"))
        batch_op.drop_index("ix_tasks_open_gold")
        batch_op.drop_index(batch_op.f("ix_tasks_for_user_id"))
        batch_op.drop_column("due_after")
        batch_op.drop_column("repeat_of_id")
        batch_op.drop_column("for_user_id")
        batch_op.drop_column("gold_version_id")

    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("fast_ms")
        batch_op.drop_column("min_lesion_ppv")
        batch_op.drop_column("min_sensitivity")
        batch_op.drop_column("min_gold")
        batch_op.drop_column("repeat_gap")
        batch_op.drop_column("repeat_rate")
        batch_op.drop_column("gold_schedule")

    with op.batch_alter_table("gold_scores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gold_scores_user_id"))
        batch_op.drop_index(batch_op.f("ix_gold_scores_project_id"))
        batch_op.drop_index(batch_op.f("ix_gold_scores_gold_version_id"))

    op.drop_table("gold_scores")
    with op.batch_alter_table("gold_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gold_versions_slice_id"))

    op.drop_table("gold_versions")
    with op.batch_alter_table("repeat_scores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_repeat_scores_user_id"))
        batch_op.drop_index(batch_op.f("ix_repeat_scores_project_id"))

    op.drop_table("repeat_scores")
    with op.batch_alter_table("rater_stats", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rater_stats_user_id"))
        batch_op.drop_index(batch_op.f("ix_rater_stats_trust"))
        batch_op.drop_index(batch_op.f("ix_rater_stats_project_id"))

    op.drop_table("rater_stats")
    with op.batch_alter_table("rater_actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rater_actions_user_id"))
        batch_op.drop_index(batch_op.f("ix_rater_actions_project_id"))

    op.drop_table("rater_actions")
