"""What remains of a withdrawn case: its random id, its project, the fingerprint that keeps it
from being imported again, who withdrew it and what was removed (counts only, no image data
and no identifier of the patient)."""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.core.columns import created_at_field


class WithdrawnCase(SQLModel, table=True):
    __tablename__ = "withdrawn_cases"
    __table_args__ = (sa.UniqueConstraint("project_id", "source_sha256"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", ondelete="CASCADE", index=True)
    public_id: str = Field(max_length=32, unique=True)
    # The import fingerprint (a hash of the source files, no identifier): the same files are
    # refused if someone imports them again.
    source_sha256: str = Field(max_length=64)
    reason: str = Field(default="", max_length=300)
    # The admin who withdrew it, as a plain id (None: the command line).
    by_user_id: int | None = None
    # What was removed: counts per kind (slices, tasks, answers, leases, files, ...).
    report: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    withdrawn_at: datetime = created_at_field()
