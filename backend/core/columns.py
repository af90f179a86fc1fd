"""Column types shared by the table models, so every domain stores them the same way."""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from backend.core.timeutil import as_utc, utcnow


def enum_type(enum: type[StrEnum]) -> sa.Enum:
    """A string enum stored as VARCHAR on every dialect (new values need no ALTER TYPE)."""
    return sa.Enum(enum, native_enum=False, length=16)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """``TIMESTAMP WITH TIME ZONE`` that always reads back aware UTC (SQLite returns naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return as_utc(value) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return as_utc(value) if value is not None else None


def created_at_field() -> Any:
    """A timezone-aware creation timestamp, filled in UTC."""
    return Field(default_factory=utcnow, sa_type=UTCDateTime)


def timestamp_field(*, nullable: bool = False, index: bool = False) -> Any:
    """A timezone-aware timestamp column (required unless ``nullable``)."""
    if nullable:
        return Field(default=None, sa_type=UTCDateTime, index=index)
    return Field(sa_type=UTCDateTime, index=index)
