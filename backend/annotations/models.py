"""Annotations: one rater's lesion mask for one task."""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.core.columns import created_at_field


class Annotation(SQLModel, table=True):
    __tablename__ = "annotations"
    # A rater labels a task at most once; repeats are separate tasks.
    __table_args__ = (
        sa.UniqueConstraint("task_id", "user_id"),
        # The same mask sent to many slices (gamification.confirm.duplicated).
        sa.Index("ix_annotations_user_mask", "user_id", "mask_sha256"),
    )

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="tasks.id", ondelete="CASCADE", index=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    # Storage key of the binary mask: an 8-bit PNG (0 or 255) at the cropped slice size.
    mask_key: str = Field(max_length=255)
    # Painted pixels; 0 is a valid answer ("no lesion on this slice").
    lesion_pixels: int = Field(ge=0)
    duration_ms: int | None = Field(default=None, ge=0)
    # The time on the task as the server saw it (the speed rule's clock; the client's own
    # ``duration_ms`` is kept as information only).
    server_ms: int | None = Field(default=None, ge=0)
    # The mask's digest (the first 16 hex digits of SHA-256 over its pixels): one mask sent
    # to many slices is copying.
    mask_sha256: str | None = Field(default=None, max_length=16)
    client_info: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = created_at_field()
