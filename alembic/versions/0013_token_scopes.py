"""Bearer token scopes, and one problem report per task and volunteer.

Tokens issued before scopes existed get what a token created without scopes gets now:
``tasks read``. Duplicate reports (the same volunteer on the same task) are merged into the
first before the unique constraint is added.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scopes", sa.String(length=100), nullable=True))
    op.execute("UPDATE credentials SET scopes = 'tasks read' WHERE kind = 'token'")
    op.execute(
        "DELETE FROM task_reports WHERE id NOT IN "
        "(SELECT MIN(id) FROM task_reports GROUP BY task_id, user_id)"
    )
    with op.batch_alter_table("task_reports", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            batch_op.f("uq_task_reports_task_id_user_id"), ["task_id", "user_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("task_reports", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_task_reports_task_id_user_id"), type_="unique")
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.drop_column("scopes")
