"""Writing and reading the audit log. ``record`` adds an entry in the caller's transaction, so
an action and its entry commit or roll back together; ``page`` reads it for admins.

Rater actions (suspensions, flags, reinstatements) are recorded from wherever the quality and
tutorial modules add a ``RaterAction``: a flush hook (``install``) adds the matching entry in
the same flush, so no code path can act on a rater without leaving its trace.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col
from sqlmodel import select as sqlmodel_select

from backend.audit.models import AuditAction, AuditEntry
from backend.auth.models import User, UserRole
from backend.core.timeutil import utcnow
from backend.quality.models import RaterAction, RaterActionKind

RATER_ACTIONS = {
    RaterActionKind.suspended: AuditAction.suspension,
    RaterActionKind.flagged: AuditAction.suspension,
    RaterActionKind.reinstated: AuditAction.reinstatement,
    RaterActionKind.cleared: AuditAction.reinstatement,
    RaterActionKind.requalify: AuditAction.reinstatement,
}
PRIVILEGED = {UserRole.expert, UserRole.engineer, UserRole.admin}


def record(
    session: Session,
    action: AuditAction,
    *,
    object_type: str,
    object_id: str | int,
    actor: User | None = None,
    detail: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEntry:
    """Add an entry to the caller's transaction."""
    entry = AuditEntry(
        created_at=now or utcnow(),
        actor_id=None if actor is None else actor.id,
        actor_role=None if actor is None else getattr(actor.role, "value", actor.role),
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        detail=detail or {},
    )
    session.add(entry)
    return entry


def _rater_actions(session: OrmSession, _context: object, _instances: object) -> None:
    for instance in list(session.new):
        if isinstance(instance, RaterAction):
            action = RATER_ACTIONS.get(RaterActionKind(instance.action))
            if action is None:
                continue  # passing the qualification test is the rater's own doing
            session.add(
                AuditEntry(
                    created_at=instance.created_at or utcnow(),
                    actor_id=instance.by_user_id,
                    action=action,
                    object_type="rater",
                    object_id=str(instance.user_id),
                    detail={
                        "project_id": instance.project_id,
                        "kind": str(getattr(instance.action, "value", instance.action)),
                        "reason": instance.reason[:300],
                        "by": "expert" if instance.by_user_id is not None else "rules",
                    },
                )
            )


def install() -> None:
    """Record rater actions from every session of this process (idempotent)."""
    if not event.contains(OrmSession, "before_flush", _rater_actions):
        event.listen(OrmSession, "before_flush", _rater_actions)


@dataclass(frozen=True)
class Page:
    total: int
    rows: list[AuditEntry]


def page(
    session: Session,
    *,
    action: AuditAction | None = None,
    actor_id: int | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int = 50,
) -> Page:
    """Entries newest first, filtered; the total that match."""
    where = []
    if action is not None:
        where.append(col(AuditEntry.action) == action)
    if actor_id is not None:
        where.append(col(AuditEntry.actor_id) == actor_id)
    if object_type is not None:
        where.append(col(AuditEntry.object_type) == object_type)
    if object_id is not None:
        where.append(col(AuditEntry.object_id) == object_id)
    if since is not None:
        where.append(col(AuditEntry.created_at) >= since)
    if until is not None:
        where.append(col(AuditEntry.created_at) < until)
    total = session.execute(select(func.count()).select_from(AuditEntry).where(*where)).scalar_one()
    rows = session.exec(
        sqlmodel_select(AuditEntry)
        .where(*where)
        .order_by(col(AuditEntry.created_at).desc(), col(AuditEntry.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return Page(total=int(total), rows=list(rows))
