"""The audit log: an append-only record of who did what to which object, and when.

Rows are never updated or deleted (database triggers refuse it, ``backend.audit.triggers``);
they hold no image data and no identifier of a patient: the object is named by the
project's own ids (a case's random public id, a user's id), and the detail holds counts and
settings only (an import's de-identification report, a suspension's reason).
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.core.columns import created_at_field, enum_type


class AuditAction(StrEnum):
    case_import = "case_import"  # a case imported (with its de-identification report)
    release = "release"  # a label release built
    download = "download"  # a release downloaded
    withdrawal = "withdrawal"  # a case or a volunteer's contributions withdrawn
    role_change = "role_change"  # an account given a role (created as expert, admin, ...)
    suspension = "suspension"  # a rater suspended or flagged in a project
    reinstatement = "reinstatement"  # a rater reinstated or allowed to requalify
    consent_change = "consent_change"  # consent given, or a case's consent changed
    login = "login"  # a sign-in of a privileged account (expert, engineer, admin)


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (
        sa.Index("ix_audit_log_time", "created_at"),
        sa.Index("ix_audit_log_action_time", "action", "created_at"),
        sa.Index("ix_audit_log_object", "object_type", "object_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = created_at_field()
    # The actor as plain ids (no foreign key: an entry outlives an erased account); None for
    # the system or the command line.
    actor_id: int | None = None
    actor_role: str | None = Field(default=None, max_length=16)
    action: AuditAction = Field(sa_type=enum_type(AuditAction))
    object_type: str = Field(max_length=32)
    object_id: str = Field(max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
