"""API shapes for projects."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from backend.core.validation import clean_text
from backend.projects.models import ProjectBase


class ProjectCreate(ProjectBase):
    # SQLModel types its config as its own TypedDict; ConfigDict is what it accepts at run time.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # type: ignore[assignment]

    @field_validator("*")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        return clean_text(value)


class ProjectRead(ProjectBase):
    id: int
    created_at: datetime
    cases: int
    tasks_open: int
    tasks_complete: int


class ProjectPublic(BaseModel):
    """What volunteers see of a project: no quality settings (gold schedule and rate, repeat
    gap, speed limit, thresholds) and no held-out cases, which would teach a cheater the
    checks they face."""

    id: int
    name: str
    description: str
    created_at: datetime
    cases: int
    tasks_open: int
    tasks_complete: int
