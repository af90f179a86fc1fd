"""API shapes for projects."""

from datetime import datetime

from pydantic import ConfigDict

from backend.projects.models import ProjectBase


class ProjectCreate(ProjectBase):
    # SQLModel types its config as its own TypedDict; ConfigDict is what it accepts at run time.
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]


class ProjectRead(ProjectBase):
    id: int
    created_at: datetime
    cases: int
    tasks_open: int
    tasks_complete: int
