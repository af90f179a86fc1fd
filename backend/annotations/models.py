"""Annotations: one rater's lesion mask for one task."""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.core.columns import created_at_field


class Annotation(SQLModel, table=True):
    __tablename__ = "annotations"
    # A rater labels a task at most once; repeats are separate tasks.
    __table_args__ = (sa.UniqueConstraint("task_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="tasks.id", ondelete="CASCADE", index=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    # Storage key of the binary mask: an 8-bit PNG (0 or 255) at the cropped slice size.
    mask_key: str = Field(max_length=255)
    # Painted pixels; 0 is a valid answer ("no lesion on this slice").
    lesion_pixels: int = Field(ge=0)
    duration_ms: int | None = Field(default=None, ge=0)
    client_info: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = created_at_field()
