"""Tutorials and the qualification gate: cases set aside as teaching material, their slices'
catalogue, lesson completions, practice and qualification items, qualification attempts, the
projects' gate settings and when a rater passed.

Raters whose gold already earned them ``qualified`` or ``trusted`` count as qualified: the
gate is for volunteers the evidence has not judged yet.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.core.columns import UTCDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROJECT_COLUMNS: list[tuple[str, sa.types.TypeEngine[object], str]] = [
    ("qualification_required", sa.Boolean(), "true"),
    ("qualification_items", sa.Integer(), "'10'"),
    ("qualification_min_f1", sa.Float(), "'0.4'"),
    ("qualification_min_dice", sa.Float(), "'0.4'"),
    ("qualification_min_clean", sa.Float(), "'0.6'"),
    ("qualification_cooldown_minutes", sa.Integer(), "'10'"),
    ("qualification_attempts_per_day", sa.Integer(), "'3'"),
]


def _fk(table: str, column: str, target: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=16)


def _indexes(table: str, *columns: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in columns:
            batch_op.create_index(batch_op.f(f"ix_{table}_{column}"), [column], unique=False)


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tutorial", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index(batch_op.f("ix_cases_tutorial"), ["tutorial"], unique=False)
    with op.batch_alter_table("projects", schema=None) as batch_op:
        for name, type_, default in PROJECT_COLUMNS:
            batch_op.add_column(
                sa.Column(name, type_, nullable=False, server_default=sa.text(default))
            )
    with op.batch_alter_table("rater_stats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("qualified_at", UTCDateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE rater_stats SET qualified_at = updated_at WHERE trust IN ('qualified', 'trusted')"
    )

    op.create_table(
        "tutorial_slices",
        sa.Column("slice_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", _enum("materialkind", "lesion", "empty", "mimic"), nullable=False),
        sa.Column("load", _enum("lesionload", "small", "medium", "large"), nullable=True),
        sa.Column("mimic", sa.String(length=32), nullable=True),
        sa.Column("lesions", sa.Integer(), nullable=False),
        sa.Column("reference_pixels", sa.Integer(), nullable=False),
        _fk("tutorial_slices", "slice_id", "slices"),
        _fk("tutorial_slices", "case_id", "cases"),
        sa.PrimaryKeyConstraint("slice_id", name=op.f("pk_tutorial_slices")),
    )
    _indexes("tutorial_slices", "case_id")

    op.create_table(
        "lesson_completions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("lesson_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("completed_at", UTCDateTime(timezone=True), nullable=False),
        _fk("lesson_completions", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lesson_completions")),
        sa.UniqueConstraint(
            "user_id",
            "lesson_id",
            "version",
            name=op.f("uq_lesson_completions_user_id_lesson_id_version"),
        ),
    )
    _indexes("lesson_completions", "user_id")

    op.create_table(
        "qualification_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        _fk("qualification_attempts", "user_id", "users"),
        _fk("qualification_attempts", "project_id", "projects"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qualification_attempts")),
    )
    _indexes("qualification_attempts", "user_id", "project_id")
    op.create_index(
        "uq_qualification_attempts_open",
        "qualification_attempts",
        ["user_id", "project_id"],
        unique=True,
        postgresql_where=sa.text("finished_at IS NULL"),
        sqlite_where=sa.text("finished_at IS NULL"),
    )

    op.create_table(
        "tutorial_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("slice_id", sa.Integer(), nullable=False),
        sa.Column("purpose", _enum("itempurpose", "practice", "qualification"), nullable=False),
        sa.Column("lesson_id", sa.String(length=64), nullable=True),
        sa.Column("lesson_version", sa.Integer(), nullable=True),
        sa.Column("exercise_id", sa.String(length=64), nullable=True),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("answered_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("mask_counts", sa.JSON(), nullable=True),
        sa.Column("painted", sa.Integer(), nullable=True),
        sa.Column("dice", sa.Float(), nullable=True),
        sa.Column("lesion_f1", sa.Float(), nullable=True),
        sa.Column("lesions_reference", sa.Integer(), nullable=True),
        sa.Column("lesions_found", sa.Integer(), nullable=True),
        sa.Column("false_alarms", sa.Integer(), nullable=True),
        sa.Column("tp", sa.Integer(), nullable=True),
        sa.Column("fp", sa.Integer(), nullable=True),
        sa.Column("fn", sa.Integer(), nullable=True),
        _fk("tutorial_items", "user_id", "users"),
        _fk("tutorial_items", "slice_id", "slices"),
        _fk("tutorial_items", "attempt_id", "qualification_attempts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tutorial_items")),
        sa.UniqueConstraint(
            "attempt_id", "position", name=op.f("uq_tutorial_items_attempt_id_position")
        ),
    )
    _indexes("tutorial_items", "user_id", "slice_id", "attempt_id")


def downgrade() -> None:
    for table, columns in (
        ("tutorial_items", ("attempt_id", "slice_id", "user_id")),
        ("qualification_attempts", ("project_id", "user_id")),
        ("lesson_completions", ("user_id",)),
        ("tutorial_slices", ("case_id",)),
    ):
        if table == "qualification_attempts":
            op.drop_index("uq_qualification_attempts_open", table_name=table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.drop_index(batch_op.f(f"ix_{table}_{column}"))
        op.drop_table(table)
    with op.batch_alter_table("rater_stats", schema=None) as batch_op:
        batch_op.drop_column("qualified_at")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        for name, _type, _default in reversed(PROJECT_COLUMNS):
            batch_op.drop_column(name)
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_tutorial"))
        batch_op.drop_column("tutorial")
