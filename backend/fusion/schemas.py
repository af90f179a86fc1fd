"""API shapes of fused labels."""

from datetime import datetime

from pydantic import BaseModel


class RaterRates(BaseModel):
    user_id: int
    sensitivity: float
    specificity: float


class FusionResultRead(BaseModel):
    """A version of a task's fused label, with how it was made; a withdrawn version has no
    label (its raters were excluded and too few usable answers remained)."""

    task_id: int
    slice_id: int
    version: int
    versions: list[int]  # every version of this task's label, newest first
    run_id: int
    method: str
    prior: float
    raters: list[RaterRates]  # the raters fused and the rates used for each
    excluded: list[int]  # raters whose answers were left out (suspended, flagged)
    withdrawn: bool  # no label: nothing to serve, train on or export
    hard_pixels: int
    # Bits: the least certain lesion candidate (redundancy.uncertainty); None: withdrawn.
    uncertainty: float | None
    # What adaptive redundancy decided from this version: retire, extend, escalate or wait
    # (None: fused while the task was still collecting labels).
    decision: str | None
    created_at: datetime
    soft_url: str | None  # 8-bit PNG: round(255 * P(lesion)) (None: withdrawn)
    hard_url: str | None  # 8-bit PNG: 255 where P(lesion) >= 0.5 (None: withdrawn)
    answer_mask_urls: list[str] | None  # experts and admins: each rater's mask, same order


class RedundancyRead(BaseModel):
    """A project's adaptive redundancy: its settings and where its crowd tasks stand."""

    project_id: int
    min_labels: int
    max_labels: int
    max_uncertainty: float  # bits: a fused label at most this uncertain retires its task
    retired: int
    labels_per_retired: float | None  # mean labels per retired task
    open: int
    asking_for_more: int  # reopened because the fused label was uncertain
    in_review: int  # uncertain after max_labels: in the experts' review queue
