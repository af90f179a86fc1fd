"""API shapes of the audit log."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class AuditEntryRead(BaseModel):
    id: int
    created_at: datetime
    actor_id: int | None
    actor_role: str | None
    action: str
    object_type: str
    object_id: str
    detail: dict[str, Any]


class AuditPageRead(BaseModel):
    total: int
    offset: int
    rows: list[AuditEntryRead]
