"""Consent scopes per case (replacing the single consent_scope column), withdrawn cases,
erased accounts and model versions flagged for withdrawn cases.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.core.columns import UTCDateTime

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPES = ("crowd_viewing", "research_sharing", "public_images", "public_labels")
DEFAULT = {"crowd_viewing", "research_sharing"}
# What each old value allowed: open (an openly licensed dataset) everything, crowd labelling
# and label release, restricted nothing (experts only).
OLD = {
    "open": set(SCOPES),
    "crowd": {"crowd_viewing", "research_sharing", "public_labels"},
    "restricted": set(),
}


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        for scope in SCOPES:
            # Defaults as the model's: labelling and research, nothing public.
            default = sa.true() if scope in DEFAULT else sa.false()
            batch_op.add_column(
                sa.Column(f"consent_{scope}", sa.Boolean(), nullable=False, server_default=default)
            )
    cases = sa.table(
        "cases",
        sa.column("consent_scope", sa.String),
        *(sa.column(f"consent_{scope}", sa.Boolean) for scope in SCOPES),
    )
    for old, allowed in OLD.items():
        op.execute(
            cases.update()
            .where(cases.c.consent_scope == old)
            .values({f"consent_{scope}": scope in allowed for scope in SCOPES})
        )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("consent_scope")
    # Plain ADD COLUMN (no table copy on SQLite: the ledger's triggers name users).
    op.add_column("users", sa.Column("erased_at", UTCDateTime(timezone=True), nullable=True))
    op.add_column(
        "model_versions",
        sa.Column("withdrawn_cases", sa.JSON(), nullable=False, server_default="[]"),
    )
    op.create_table(
        "withdrawn_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("by_user_id", sa.Integer(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("withdrawn_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_withdrawn_cases_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withdrawn_cases")),
        sa.UniqueConstraint("public_id", name=op.f("uq_withdrawn_cases_public_id")),
        sa.UniqueConstraint(
            "project_id", "source_sha256", name=op.f("uq_withdrawn_cases_project_id_source_sha256")
        ),
    )
    op.create_index(
        op.f("ix_withdrawn_cases_project_id"), "withdrawn_cases", ["project_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_withdrawn_cases_project_id"), table_name="withdrawn_cases")
    op.drop_table("withdrawn_cases")
    op.drop_column("model_versions", "withdrawn_cases")
    op.drop_column("users", "erased_at")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "consent_scope",
                sa.Enum(
                    "open", "crowd", "restricted", name="consentscope", native_enum=False, length=16
                ),
                nullable=False,
                server_default="restricted",
            )
        )
    cases = sa.table(
        "cases",
        sa.column("consent_scope", sa.String),
        *(sa.column(f"consent_{scope}", sa.Boolean) for scope in SCOPES),
    )
    op.execute(
        cases.update()
        .where(cases.c.consent_crowd_viewing, cases.c.consent_public_images)
        .values(consent_scope="open")
    )
    op.execute(
        cases.update()
        .where(cases.c.consent_crowd_viewing, sa.not_(cases.c.consent_public_images))
        .values(consent_scope="crowd")
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        for scope in SCOPES:
            batch_op.drop_column(f"consent_{scope}")
