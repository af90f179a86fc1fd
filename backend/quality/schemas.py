"""API shapes of quality control: gold samples and the rater table."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from backend.annotations.masks import MaskIn
from backend.core.validation import MAX_DB_ID, InputModel
from backend.quality.models import GoldSource
from backend.quality.reliability import TrustLevel


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
    """A frozen gold mask of a slice."""

    id: int
    slice_id: int
    version: int
    source: GoldSource
    lesion_pixels: int
    created_by: int | None
    created_at: datetime
    mask_url: str


class Interval(BaseModel):
    """A posterior mean with its central 95 % credible interval."""

    mean: float
    low: float
    high: float


class RaterRead(BaseModel):
    """A rater's reliability in a project (posteriors from gold; consistency from repeats)."""

    user_id: int
    display_name: str
    trust: TrustLevel
    suspended_reason: str | None
    # Held out of fusion by the consistency check until an expert clears it.
    flagged_reason: str | None
    answered: int
    last_active: datetime  # their latest answer (or an expert's decision about them)
    gold: int
    sensitivity: Interval  # pixel-wise, inside the brain
    specificity: Interval
    lesion_sensitivity: Interval  # lesion-wise (MSSEG rule)
    lesion_ppv: Interval
    lesion_f1: float  # from the two posterior means
    quality: float  # expected Dice-like quality (ranks the raters)
    consistency: float | None  # mean intra-rater Dice of repeats
    repeats: int
    mean_seconds: float | None  # mean time on a task, as the server measured it
    fast_share: float | None  # share of answers faster than the project's plausible minimum


class GoldScoreRead(BaseModel):
    """One gold answer of a rater: a point of their history chart."""

    annotation_id: int
    gold_version_id: int
    created_at: datetime
    dice: float
    lesions_reference: int
    lesions_found: int
    false_alarms: int


class RaterDecision(InputModel):
    """An expert's suspension or reinstatement, with the reason shown to the rater."""

    project_id: int = Field(ge=1, le=MAX_DB_ID)
    reason: str = Field(min_length=3, max_length=1000)


class RaterActionRead(BaseModel):
    action: str
    reason: str
    by_user_id: int | None  # None: the automatic rules
    created_at: datetime


class ExpertAnswerRead(BaseModel):
    """An expert's answer to a crowd task: a gold candidate."""

    annotation_id: int
    slice_id: int
    expert: str
    lesion_pixels: int
    created_at: datetime
    is_gold_slice: bool  # the slice has a current gold version (this answer or another)
    mask_url: str
    flair_url: str


class ReviewItemRead(BaseModel):
    """A slice the volunteers disagree on, with their answers' masks to compare."""

    task_id: int
    slice_id: int
    mean_dice: float  # mean pairwise Dice of the answers
    min_dice: float
    max_dice: float
    # Fusion found the slice still uncertain after the project's max_labels.
    escalated: bool
    flair_url: str
    mask_urls: list[str]


class GoldSliceRead(GoldVersionRead):
    """A gold slice of a project with its current version."""

    case: str
    index: int
    flair_url: str
