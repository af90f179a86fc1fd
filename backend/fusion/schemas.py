"""API shapes of fused labels."""

from datetime import datetime

from pydantic import BaseModel


class RaterRates(BaseModel):
    user_id: int
    sensitivity: float
    specificity: float


class FusionResultRead(BaseModel):
    """A version of a task's fused label, with how it was made."""

    task_id: int
    slice_id: int
    version: int
    versions: list[int]  # every version of this task's label, newest first
    run_id: int
    method: str
    prior: float
    raters: list[RaterRates]  # the raters fused and the rates used for each
    hard_pixels: int
    uncertainty: float  # mean entropy (bits) over pixels any rater marked
    created_at: datetime
    soft_url: str  # 8-bit PNG: round(255 * P(lesion))
    hard_url: str  # 8-bit PNG: 255 where P(lesion) >= 0.5
    answer_mask_urls: list[str] | None  # experts and admins: each rater's mask, same order
