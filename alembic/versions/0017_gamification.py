"""Gamification: the answers' server time and mask digest (the speed rule and copied masks),
the append-only points ledger, each volunteer's maintained totals (kept by a
trigger on the ledger, which also refuses updates and deletes), badges awarded, and reward
profiles (time zone, leaderboard opt-out).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.core.columns import UTCDateTime
from backend.gamification.triggers import statements

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
    )


def _partial(name: str, table: str, columns: list[str], where: str, unique: bool) -> None:
    op.create_index(
        name,
        table,
        columns,
        unique=unique,
        postgresql_where=sa.text(where),
        sqlite_where=sa.text(where),
    )


def upgrade() -> None:
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("server_ms", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("mask_sha256", sa.String(length=16), nullable=True))
        batch_op.create_index("ix_annotations_user_mask", ["user_id", "mask_sha256"])
    op.create_table(
        "points_ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("annotation_id", sa.Integer(), nullable=True),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("badge", sa.String(length=64), nullable=True),
        sa.Column("corrects_id", sa.Integer(), nullable=True),
        sa.Column(
            "reason",
            sa.Enum(
                "gold",
                "confirmed",
                "hard_bonus",
                "badge",
                "correction",
                name="pointreason",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("quality", sa.Float(), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        _user_fk("points_ledger"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_ledger")),
    )
    _partial(
        "uq_points_answer",
        "points_ledger",
        ["reason", "annotation_id"],
        "annotation_id IS NOT NULL",
        True,
    )
    _partial(
        "uq_points_correction", "points_ledger", ["corrects_id"], "corrects_id IS NOT NULL", True
    )
    _partial("uq_points_badge", "points_ledger", ["user_id", "badge"], "badge IS NOT NULL", True)
    op.create_index("ix_points_user_time", "points_ledger", ["user_id", "created_at"])

    op.create_table(
        "point_totals",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("week_points", sa.Integer(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        _user_fk("point_totals"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_point_totals")),
    )
    _partial("ix_point_totals_board", "point_totals", ["total", "user_id"], "NOT hidden", False)
    _partial(
        "ix_point_totals_week_board",
        "point_totals",
        ["week", "week_points", "user_id"],
        "NOT hidden",
        False,
    )

    op.create_table(
        "badge_awards",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("badge", sa.String(length=64), nullable=False),
        sa.Column("awarded_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("seen", sa.Boolean(), nullable=False),
        _user_fk("badge_awards"),
        sa.PrimaryKeyConstraint("user_id", "badge", name=op.f("pk_badge_awards")),
    )

    op.create_table(
        "reward_profiles",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("leaderboard", sa.Boolean(), nullable=False),
        sa.Column("level_seen", sa.Integer(), nullable=False),
        sa.Column("ledger_seen", sa.Integer(), nullable=False),
        sa.Column("zone_changed_at", UTCDateTime(timezone=True), nullable=True),
        _user_fk("reward_profiles"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_reward_profiles")),
    )
    for statement in statements(op.get_bind().dialect.name, up=True):
        op.execute(statement)


def downgrade() -> None:
    for statement in statements(op.get_bind().dialect.name, up=False):
        op.execute(statement)
    op.drop_table("reward_profiles")
    op.drop_table("badge_awards")
    op.drop_index("ix_point_totals_week_board", table_name="point_totals")
    op.drop_index("ix_point_totals_board", table_name="point_totals")
    op.drop_table("point_totals")
    for name in ("ix_points_user_time", "uq_points_badge", "uq_points_correction"):
        op.drop_index(name, table_name="points_ledger")
    op.drop_index("uq_points_answer", table_name="points_ledger")
    op.drop_table("points_ledger")
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.drop_index("ix_annotations_user_mask")
        batch_op.drop_column("mask_sha256")
        batch_op.drop_column("server_ms")
