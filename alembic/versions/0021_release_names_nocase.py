"""Release names unique without regard to case (``DEMO-R1`` beside ``demo-r1`` unpacked to
two folders that collide on case-insensitive file systems, and read as the same release).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("uq_releases_name_nocase", "releases", [sa.text("lower(name)")], unique=True)


def downgrade() -> None:
    op.drop_index("uq_releases_name_nocase", table_name="releases")
