"""Projects group cases and set how many labels each task needs and how often gold is shown."""

import re
from datetime import datetime

import sqlalchemy as sa
from pydantic import field_validator
from sqlmodel import Field, SQLModel

from backend.core.columns import created_at_field

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ProjectBase(SQLModel):
    # Used in URLs and on the command line: letters, digits, '_', '.', '-'.
    name: str = Field(max_length=64, min_length=1)
    description: str = Field(default="", max_length=2000)
    # Independent labels collected per normal task before it is complete.
    redundancy: int = Field(default=3, ge=1, le=50)
    # Share of tasks served to a volunteer that are gold samples (scored against an expert).
    gold_rate: float = Field(default=0.1, ge=0, le=1)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(
                "use letters, digits, '_', '.' and '-' only, starting with a letter or digit"
            )
        return value


class Project(ProjectBase, table=True):
    __tablename__ = "projects"
    __table_args__ = (
        sa.CheckConstraint("redundancy >= 1", name="redundancy_positive"),
        sa.CheckConstraint("gold_rate >= 0 AND gold_rate <= 1", name="gold_rate_fraction"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True, index=True)
    created_at: datetime = created_at_field()
