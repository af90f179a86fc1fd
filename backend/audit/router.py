"""``/api/audit``: the audit log, for admins: newest first, filtered by action, actor,
object and time. Read-only: no route edits or deletes an entry (the database refuses it too)."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from backend.audit import service
from backend.audit.models import AuditAction
from backend.audit.schemas import AuditEntryRead, AuditPageRead
from backend.auth.deps import AdminUser
from backend.core.deps import SessionDep
from backend.core.errors import InvalidInput, error_responses

# Object types and ids as the app writes them: names, numbers, hex ids.
ID = r"^[A-Za-z0-9_.:-]+$"

router = APIRouter(prefix="/audit", tags=["audit"], responses=error_responses(401, 403))


@router.get("", response_model=AuditPageRead, responses=error_responses(422))
def audit_log(
    _admin: AdminUser,
    session: SessionDep,
    action: AuditAction | None = None,
    actor_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    object_type: Annotated[str | None, Query(min_length=1, max_length=32, pattern=ID)] = None,
    object_id: Annotated[str | None, Query(min_length=1, max_length=64, pattern=ID)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AuditPageRead:
    """Entries newest first; ``since``/``until`` (ISO 8601 with a time zone) bound the time."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} needs a time zone (e.g. 2026-12-07T10:00:00Z)")
    if since is not None and until is not None and since >= until:
        raise InvalidInput("since must be before until")
    found = service.page(
        session,
        action=action,
        actor_id=actor_id,
        object_type=object_type,
        object_id=object_id,
        since=since,
        until=until,
        offset=offset,
        limit=limit,
    )
    return AuditPageRead(
        total=found.total,
        offset=offset,
        rows=[AuditEntryRead.model_validate(row, from_attributes=True) for row in found.rows],
    )
