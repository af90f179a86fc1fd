"""Withdrawn fused labels: a fused version may say the task has no label any more (its raters
were excluded and too few usable answers remain), with no soft label and no uncertainty.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = (
    "(withdrawn AND soft_key IS NULL AND uncertainty IS NULL) OR "
    "(NOT withdrawn AND soft_key IS NOT NULL AND uncertainty IS NOT NULL)"
)


def upgrade() -> None:
    with op.batch_alter_table("fusion_results", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("withdrawn", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.alter_column("soft_key", existing_type=sa.String(length=255), nullable=True)
        batch_op.alter_column("uncertainty", existing_type=sa.Float(), nullable=True)
    with op.batch_alter_table("fusion_results", schema=None) as batch_op:
        batch_op.create_check_constraint(op.f("ck_fusion_results_withdrawn_has_no_label"), CHECK)


def downgrade() -> None:
    # Withdrawn versions have no label to keep: they go, and the version before each becomes
    # the newest again (as it was before withdrawals existed).
    op.execute("DELETE FROM fusion_results WHERE withdrawn")
    with op.batch_alter_table("fusion_results", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_fusion_results_withdrawn_has_no_label"), type_="check")
        batch_op.alter_column("uncertainty", existing_type=sa.Float(), nullable=False)
        batch_op.alter_column("soft_key", existing_type=sa.String(length=255), nullable=False)
        batch_op.drop_column("withdrawn")
