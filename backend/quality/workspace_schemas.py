"""API shapes of the expert workspace (``quality.workspace``): paged lists that carry all
their rows need (with one thumbnail sprite per page), and one slice in detail with every mask
an expert compares on it."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field

from backend.core.text import normalise_text
from backend.core.validation import InputModel
from backend.quality.gold_pool import Stratum
from backend.quality.models import GoldSource, RejectionKind
from backend.quality.reliability import TrustLevel


class EmptyFilter(StrEnum):
    """Candidates by whether their reference has a lesion ('empty': strata empty and mimic)."""

    include = "include"
    exclude = "exclude"
    only = "only"


class ReviewSort(StrEnum):
    uncertainty = "uncertainty"  # fused posterior entropy, highest first
    disagreement = "disagreement"  # mean pairwise Dice of the answers, lowest first


class SpriteRead(BaseModel):
    """One PNG holding a page's thumbnails: item ``n`` is the tile at column ``n % columns``,
    row ``n // columns``, each ``tile`` pixels square."""

    url: str
    tile: int
    columns: int


class Facet(BaseModel):
    """A filter value and how many items it keeps."""

    value: str
    count: int


class SliceItem(BaseModel):
    """What every list row shows of its slice."""

    slice_id: int
    case: str
    index: int


class CandidateItem(SliceItem):
    stratum: Stratum
    reference_pixels: int | None


class CandidatePage(BaseModel):
    """A page of gold candidates in the pool's spread order, with the filters' counts."""

    total: int
    offset: int
    limit: int
    items: list[CandidateItem]
    sprite: SpriteRead | None
    cases: list[Facet]  # cases with candidates (before the case filter)
    strata: list[Facet]  # candidates per stratum (before the stratum and empty filters)


class GoldItem(SliceItem):
    version_id: int
    version: int
    source: GoldSource
    lesion_pixels: int
    created_at: datetime


class GoldPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[GoldItem]
    sprite: SpriteRead | None


class AnswerItem(SliceItem):
    """An expert's answer to a crowd task: it can become its slice's gold."""

    annotation_id: int
    expert: str  # their pseudonym
    lesion_pixels: int
    is_gold_slice: bool  # the slice has a current gold version (this answer or another)
    created_at: datetime


class AnswerPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[AnswerItem]
    sprite: SpriteRead | None


class RaterName(BaseModel):
    """A volunteer as experts see them: their pseudonym, never an email."""

    user_id: int
    pseudonym: str


class ReviewEntry(SliceItem):
    task_id: int
    escalated: bool  # still uncertain after the project's max_labels
    raters: list[RaterName]  # whose answers, in answer order
    mean_dice: float
    min_dice: float
    max_dice: float
    # Mean binary entropy (bits) of the fused soft label over the pixels any rater marked;
    # None when the task has no fused label yet.
    entropy: float | None
    fused_version: int | None


class ReviewPage(BaseModel):
    total: int
    offset: int
    limit: int
    sort: ReviewSort
    items: list[ReviewEntry]
    sprite: SpriteRead | None


class MaskRead(BaseModel):
    """A binary mask at the slice size as run lengths (row-major, background first)."""

    width: int
    height: int
    counts: list[int]


OverlayKind = Literal["reference", "gold", "fused", "volunteer", "expert"]


class OverlayRead(BaseModel):
    """One mask to overlay on the slice."""

    key: str  # stable within the slice: "reference", "gold", "fused", "answer-<id>"
    kind: OverlayKind
    label: str  # what the toggle says: "Reference", a volunteer's pseudonym, ...
    pixels: int
    mask: MaskRead
    annotation_id: int | None = None
    user_id: int | None = None
    trust: TrustLevel | None = None  # volunteers: their trust in the project
    excluded: bool = False  # volunteers: suspended or flagged, left out of fusion
    dice: float | None = None  # against the gold (else the reference), when there is one


class NeighbourRead(BaseModel):
    offset: int
    images: dict[str, str]


class RejectionRead(BaseModel):
    id: int
    slice_id: int
    kind: RejectionKind
    reason: str
    by_user_id: int | None
    created_at: datetime


class SliceDetailRead(SliceItem):
    """A slice as the detail pane shows it: images, neighbours and every mask on it."""

    width: int
    height: int
    stratum: Stratum | None
    images: dict[str, str]  # contrast -> URL
    neighbours: list[NeighbourRead]
    task_id: int | None  # the slice's crowd task, if any
    gold_version_id: int | None  # its current gold version, if any
    candidate: bool  # in the gold pool's candidates
    fused_version: int | None
    entropy: float | None
    overlays: list[OverlayRead]
    rejections: list[RejectionRead]


def _normalised(value: Any) -> Any:
    return normalise_text(value).strip() if isinstance(value, str) else value


class RejectCreate(InputModel):
    """Set a slice aside: a gold candidate, a gold slice (retired) or a review item."""

    kind: RejectionKind
    # Normalised (NFC, no invisible or direction-changing characters, trimmed) before its
    # length is checked, like a report's note: "   " is no reason.
    reason: Annotated[str, BeforeValidator(_normalised)] = Field(min_length=3, max_length=1000)
