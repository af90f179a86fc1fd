"""The crowd queue's scrambled order: normal tasks that no model has ranked (priority below 1;
active learning's chosen slices start at 1) get their slice id scrambled as their priority
(``backend.tasks.order.queue_priority``, written out here so this revision never changes),
so the queue no longer walks one case's neighbouring slices in a row, nor the fullest brain
slices first. Downgrade restores the earlier import priority, the slice's brain share.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RANKLESS = (
    "SELECT tasks.id, tasks.slice_id, slices.brain_fraction FROM tasks "
    "JOIN slices ON slices.id = tasks.slice_id "
    "WHERE tasks.kind = 'normal' AND tasks.priority < 1"
)


def _scrambled(slice_id: int) -> float:
    return (slice_id * 2654435761 % (1 << 32)) / (1 << 32) * 0.999


def _reorder(scramble: bool) -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text(RANKLESS)).all()
    values = [
        {"id": id_, "p": _scrambled(slice_id) if scramble else brain}
        for id_, slice_id, brain in rows
    ]
    if values:
        connection.execute(sa.text("UPDATE tasks SET priority = :p WHERE id = :id"), values)


def upgrade() -> None:
    _reorder(scramble=True)


def downgrade() -> None:
    _reorder(scramble=False)
