"""Column types shared by the table models, so every domain stores them the same way."""

from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from backend.core.timeutil import utcnow


def enum_type(enum: type[StrEnum]) -> sa.Enum:
    """A string enum stored as VARCHAR on every dialect (new values need no ALTER TYPE)."""
    return sa.Enum(enum, native_enum=False, length=16)


def created_at_field() -> Any:
    """A timezone-aware creation timestamp, filled in UTC."""
    return Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
