"""API shapes of quality control: gold samples."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from backend.annotations.masks import MaskIn
from backend.core.validation import InputModel
from backend.quality.models import GoldSource


class GoldCandidateRead(BaseModel):
    """A slice with an imported reference mask that is not gold yet, with preview URLs."""

    slice_id: int
    case: str
    index: int
    reference_pixels: int | None
    flair_url: str
    reference_url: str


class GoldCreate(InputModel):
    """Make a slice gold: approve its imported reference mask, or send your own mask."""

    source: Literal["reference", "expert"]
    mask: MaskIn | None = None


class GoldVersionRead(BaseModel):
    id: int
    slice_id: int
    version: int
    source: GoldSource
    lesion_pixels: int
    created_by: int | None
    created_at: datetime
    mask_url: str
