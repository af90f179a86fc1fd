"""API shapes for submitting and reading annotations."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from backend.annotations.masks import MaskIn
from backend.core.validation import InputModel
from backend.gamification.schemas import RewardRead

Side = Annotated[int, Field(ge=0, le=100_000)]


class ClientInfo(InputModel):
    """Facts about the labelling client, kept for quality analysis; every field optional."""

    ui: str | None = Field(default=None, max_length=40, description="Client name")
    version: str | None = Field(default=None, max_length=40)
    viewport: tuple[Side, Side] | None = Field(
        default=None, description="Window width and height in CSS pixels"
    )
    device_pixel_ratio: float | None = Field(default=None, gt=0, le=16)
    pointer: Literal["mouse", "pen", "touch"] | None = None
    zoom: float | None = Field(default=None, gt=0, le=1000)


class AnnotationCreate(InputModel):
    """A rater's answer: a binary mask at the cropped slice size (see the mask encodings)."""

    mask: MaskIn
    duration_ms: int | None = Field(default=None, ge=0, le=24 * 3600 * 1000)
    client_info: ClientInfo = Field(default_factory=ClientInfo)


class FeedbackRead(BaseModel):
    """How a gold answer compared with the expert's mask (lesions by the MSSEG rule)."""

    dice: float
    lesions_reference: int
    lesions_found: int
    lesions_missed: int
    false_alarms: int
    # Your mask over the expert's: hits, misses and false alarms in distinct colours. The
    # expert's mask alone is never served to volunteers (it would be a reusable answer key).
    overlay_url: str
    # The same overlay inline (``data:image/png;base64,...``) in the answer to the submission
    # itself, so the studio shows it without another request; null on a replay.
    overlay_png: str | None = None


class AnnotationRead(BaseModel):
    id: int
    # The task's id as your client knows it: the lease id from POST /api/tasks/next.
    task_id: int
    lesion_pixels: int
    duration_ms: int | None
    created_at: datetime
    # Present after a check task: how your answer compared with an expert's.
    feedback: FeedbackRead | None = None
    # Your points for it: at once after a check task, "pending" until enough volunteers
    # labelled the slice otherwise (the same words whichever it was, before the feedback).
    reward: RewardRead | None = None
