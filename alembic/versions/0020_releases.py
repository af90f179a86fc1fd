"""Label releases and their files.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.core.columns import UTCDateTime

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "building",
                "ready",
                "failed",
                "superseded",
                name="releasestatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),  # fmt: skip
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("cases", sa.JSON(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("eta_seconds", sa.Float(), nullable=True),
        sa.Column("message", sa.String(length=200), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_releases_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_releases")),
        sa.UniqueConstraint("name", name=op.f("uq_releases_name")),
    )
    op.create_index(op.f("ix_releases_project_id"), "releases", ["project_id"], unique=False)
    op.create_index(op.f("ix_releases_status"), "releases", ["status"], unique=False)
    op.create_table(
        "release_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_release_files_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release_files")),
        sa.UniqueConstraint("release_id", "path", name=op.f("uq_release_files_release_id_path")),
    )
    op.create_index(
        op.f("ix_release_files_release_id"), "release_files", ["release_id"], unique=False
    )
    # The reserved scope "releases" is now "releases:read".
    op.execute(
        "UPDATE credentials SET scopes = REPLACE(scopes, 'releases', 'releases:read') "
        "WHERE scopes LIKE '%releases%'"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE credentials SET scopes = REPLACE(scopes, 'releases:read', 'releases') "
        "WHERE scopes LIKE '%releases:read%'"
    )
    op.drop_index(op.f("ix_release_files_release_id"), table_name="release_files")
    op.drop_table("release_files")
    op.drop_index(op.f("ix_releases_status"), table_name="releases")
    op.drop_index(op.f("ix_releases_project_id"), table_name="releases")
    op.drop_table("releases")
