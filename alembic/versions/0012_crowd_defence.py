"""Quality control against a determined crowd: agreement with the fused consensus, a flag
that holds a rater's labels out of fusion, the rules' evidence window after a reinstatement,
and gold retired after enough reveals.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.core.columns import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(column: str, table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{table}.id"],
        name=op.f(f"fk_consensus_scores_{column}_{table}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "consensus_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("annotation_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("dice", sa.Float(), nullable=False),
        sa.Column("consensus_lesion", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        _fk("annotation_id", "annotations"),
        _fk("project_id", "projects"),
        _fk("task_id", "tasks"),
        _fk("user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consensus_scores")),
        sa.UniqueConstraint("annotation_id", name=op.f("uq_consensus_scores_annotation_id")),
    )
    with op.batch_alter_table("consensus_scores", schema=None) as batch_op:
        for column in ("project_id", "task_id", "user_id"):
            batch_op.create_index(
                batch_op.f(f"ix_consensus_scores_{column}"), [column], unique=False
            )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("gold_reveals", sa.Integer(), nullable=False, server_default="30")
        )
        batch_op.add_column(
            sa.Column("consensus_gap", sa.Float(), nullable=False, server_default="0.35")
        )
    with op.batch_alter_table("rater_stats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rule_base", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("flagged_reason", sa.String(length=1000), nullable=True))
    _lease_ids(never_reused=True)


def _lease_ids(*, never_reused: bool) -> None:
    """SQLite reuses a deleted top rowid unless the table is AUTOINCREMENT; a renewed lease
    must never get its old id back. (PostgreSQL's sequence never reuses ids.)"""
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "assignments",
        recreate="always",
        table_kwargs={"sqlite_autoincrement": never_reused},
    ):
        pass


def downgrade() -> None:
    _lease_ids(never_reused=False)
    with op.batch_alter_table("rater_stats", schema=None) as batch_op:
        batch_op.drop_column("flagged_reason")
        batch_op.drop_column("rule_base")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("consensus_gap")
        batch_op.drop_column("gold_reveals")
    with op.batch_alter_table("consensus_scores", schema=None) as batch_op:
        for column in ("project_id", "task_id", "user_id"):
            batch_op.drop_index(batch_op.f(f"ix_consensus_scores_{column}"))
    op.drop_table("consensus_scores")
    # Actions of the kinds this revision added have no meaning below it.
    op.execute("DELETE FROM rater_actions WHERE action IN ('flagged', 'cleared')")
