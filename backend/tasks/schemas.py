"""API shapes for leased tasks."""

from datetime import datetime

from pydantic import BaseModel

from backend.tasks.models import TaskKind


class CropBox(BaseModel):
    """The slice image's place in the volume grid, half-open voxel ranges [x0, x1) x [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int


class SliceRead(BaseModel):
    id: int
    case: str  # the case's random public id
    axis: str
    index: int
    width: int
    height: int
    crop: CropBox
    # URL of each contrast's PNG (FLAIR always; T1 and T2 when imported).
    images: dict[str, str]


class NeighbourRead(BaseModel):
    """A nearby slice of the same case, for scrolling context."""

    offset: int
    index: int
    images: dict[str, str]


class TaskRead(BaseModel):
    id: int
    project_id: int
    kind: TaskKind
    required_labels: int
    slice: SliceRead
    neighbours: list[NeighbourRead]
    lease_expires_at: datetime
    # How to send the mask back: see POST /api/tasks/{id}/annotations.
    mask_encodings: list[str] = ["png", "rle"]
