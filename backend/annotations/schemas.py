"""API shapes for submitting and reading annotations."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backend.annotations.masks import MaskIn


class AnnotationCreate(BaseModel):
    """A rater's answer: a binary mask at the cropped slice size (see the mask encodings)."""

    model_config = ConfigDict(extra="forbid")

    mask: MaskIn
    duration_ms: int | None = Field(default=None, ge=0, le=24 * 3600 * 1000)
    # Free-form client facts (device, viewport, tool); kept for quality analysis.
    client_info: dict[str, Any] = Field(default_factory=dict, max_length=32)


class AnnotationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    task_id: int
    lesion_pixels: int
    duration_ms: int | None
    created_at: datetime
