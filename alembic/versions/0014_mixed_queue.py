"""The crowd queue's spread order: open normal tasks that no model has ranked (priority below
1, active learning's chosen slices start at 1) get ``backend.tasks.order.queue_priority``, so
the queue no longer walks one case's neighbouring slices in a row. Downgrade restores the
earlier import priority, the slice's brain share.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.tasks.order import queue_priority

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RANKLESS = (
    'SELECT tasks.id, slices.brain_fraction, slices."index" FROM tasks '
    "JOIN slices ON slices.id = tasks.slice_id "
    "WHERE tasks.kind = 'normal' AND tasks.priority < 1"
)


def _reorder(spread: bool) -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text(RANKLESS)).all()
    values = [
        {"id": id_, "p": queue_priority(brain, index) if spread else brain}
        for id_, brain, index in rows
    ]
    if values:
        connection.execute(sa.text("UPDATE tasks SET priority = :p WHERE id = :id"), values)


def upgrade() -> None:
    _reorder(spread=True)


def downgrade() -> None:
    _reorder(spread=False)
