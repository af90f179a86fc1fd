"""API shapes for leased tasks."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from backend.core.text import normalise_text
from backend.core.validation import InputModel
from backend.tasks.models import ReportReason


class SpriteRead(BaseModel):
    """Everything the studio shows at first in one PNG: frames of the slice's size stacked top
    to bottom, in the order of ``frames`` (``"offset/contrast"``: the slice's contrasts, then
    each neighbour's FLAIR). Valid for this lease, like the single images."""

    url: str
    frames: list[str]


class SliceRead(BaseModel):
    """The slice to label. Nothing here tells one task from another beyond the images: gold,
    repeat and normal tasks look alike until answered (issue 19)."""

    axis: str
    width: int
    height: int
    # URL of each contrast's PNG (FLAIR always; T1 and T2 when imported), valid for this lease.
    images: dict[str, str]
    sprite: SpriteRead


class NeighbourRead(BaseModel):
    """A nearby slice of the same case, for scrolling context (read-only)."""

    offset: int
    images: dict[str, str]


class TaskRead(BaseModel):
    # The lease's id: submit to POST /api/tasks/{id}/annotations. A new id for every lease,
    # so ids say nothing about which slice or what kind of task it is.
    id: int
    project_id: int
    slice: SliceRead
    neighbours: list[NeighbourRead]
    lease_expires_at: datetime
    # How to send the mask back: see POST /api/tasks/{id}/annotations.
    mask_encodings: list[str] = ["png", "rle"]


def _normalised(value: Any) -> Any:
    return normalise_text(value) if isinstance(value, str) else value


class ReportIn(InputModel):
    """ "Report a problem" with the leased slice; the lease is released with it."""

    reason: ReportReason
    # Normalised before its length is checked: NFC, no direction-changing or invisible
    # characters (backend.core.text).
    note: Annotated[str, BeforeValidator(_normalised)] = Field(default="", max_length=500)


class ReportRead(BaseModel):
    id: int
    reason: ReportReason
    note: str
    created_at: datetime


class ReportListRead(ReportRead):
    """A problem report as experts see it: which slice, and who reported it (pseudonym)."""

    task_id: int
    slice_id: int
    project_id: int
    case_public_id: str
    slice_index: int
    axis: str
    reporter: str
    resolved_at: datetime | None


class ProgressRead(BaseModel):
    """Your own counters: answers (a skip or a report is never one) and slices given back."""

    answers: int
    answers_today: int
    # Leases given back without an answer (skips and reports), in all and today.
    skipped: int
    skipped_today: int
    reported: int
