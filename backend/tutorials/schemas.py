"""API shapes for tutorials: practice and qualification items, answers with their feedback,
qualification attempts and the caller's standing."""

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, Field

from backend.annotations.masks import PngMask, RleMask
from backend.core.validation import InputModel
from backend.tasks.schemas import NeighbourRead, SliceRead
from backend.tutorials.models import TutorialSlice


class ItemRead(BaseModel):
    """A practice or qualification item, shown in the studio like a task (its images are
    scoped to the item, as a task's are to its lease)."""

    id: int
    purpose: str  # "practice" or "qualification"
    slice: SliceRead
    neighbours: list[NeighbourRead]
    # Practice: the lesson and exercise, and what to do.
    lesson_id: str | None = None
    exercise_id: str | None = None
    prompt: str | None = None
    # Qualification: the attempt, this item's place in it (1-based) and how many it has.
    attempt_id: int | None = None
    position: int | None = None
    total: int | None = None


class ItemAnswer(InputModel):
    """A mask for an item, in either encoding the studio's submissions use."""

    mask: PngMask | RleMask
    duration_ms: int | None = None


class ItemFeedbackRead(BaseModel):
    """How an answer compared with the expected one (practice at once; qualification items
    once the attempt is finished)."""

    dice: float
    lesion_f1: float
    lesions_reference: int
    lesions_found: int
    lesions_missed: int
    false_alarms: int
    # Hits, misses and false alarms in the gold feedback's colours.
    overlay_url: str
    overlay_png: str | None = None  # the same, inline, in the answer itself
    explanation: str | None = None  # practice: written for this example
    mimic: str | None = None  # the look-alike on this slice, if any


class ResultRead(BaseModel):
    """A finished attempt's verdict and what to work on (counts; never a slice or mask)."""

    passed: bool
    lesion_f1: float
    dice: float
    clean: int
    clean_total: int
    lesions_reference: int
    lesions_found: int
    false_alarms: int
    mimics_fooled: list[str]
    empty_painted: int
    overpainted: bool
    missed_small: int
    reasons: list[str]
    lessons: list[str]
    notes: list[str]


class AttemptRead(BaseModel):
    id: int
    project: str
    started_at: datetime
    finished_at: datetime | None
    passed: bool | None
    total: int
    answered: int
    result: ResultRead | None = None


class AttemptItemRead(BaseModel):
    id: int
    position: int  # 1-based
    answered: bool
    revealed: bool  # its feedback may be read (the attempt is finished)


class ItemAnswerRead(BaseModel):
    """The answer to an item: practice feedback at once; for a qualification item the
    attempt's progress, and its verdict with the last item."""

    item_id: int
    feedback: ItemFeedbackRead | None = None
    attempt: AttemptRead | None = None


class QualificationRead(BaseModel):
    """Where the caller stands with a project's qualification."""

    project: str
    required: bool  # the project asks for it (experts and admins never need it)
    ready: bool  # tutorial material exists to draw a test from
    qualified: bool
    qualified_at: datetime | None
    suspended: bool
    may_requalify: bool  # suspended, and an expert allowed a new attempt
    items: int
    thresholds: dict[str, float]
    open_attempt: AttemptRead | None
    last_attempt: AttemptRead | None
    attempts_today: int
    attempts_per_day: int
    # When the next attempt may start (cool-down or the daily limit); null: now.
    next_attempt_at: datetime | None


class TutorialCaseIn(InputModel):
    """Set a case aside as tutorial material, or give it back to the crowd."""

    project: str = Field(min_length=1, max_length=64)
    case: str = Field(min_length=1, max_length=32, description="The case's public id")
    tutorial: bool = True


class TutorialCaseRead(BaseModel):
    project: str
    case: str
    tutorial: bool
    # Catalogued slices by what they show ("lesion", "empty", "mimic").
    slices: dict[str, int]

    @classmethod
    def of(cls, project: str, case: str, rows: Sequence[TutorialSlice]) -> "TutorialCaseRead":
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.kind.value] = counts.get(row.kind.value, 0) + 1
        return cls(project=project, case=case, tutorial=bool(rows), slices=counts)


class FigureRead(BaseModel):
    id: str
    caption: str
    # The rendered figure; null when this site holds no slice for it (the lesson says so).
    url: str | None


class ExerciseRead(BaseModel):
    id: str
    prompt: str
    available: bool  # false: no example on this site yet; skipped
    done: bool  # answered at least once


class LessonSummaryRead(BaseModel):
    id: str
    title: str
    order: int
    version: int
    language: str
    minutes: int
    exercises: int
    exercises_done: int
    # The version you completed (null: not yet); a lower one than ``version`` means the
    # lesson changed since and is worth a second look.
    completed_version: int | None
    complete_material: bool  # every figure and exercise has its example on this site


class LessonListRead(BaseModel):
    language: str
    languages: list[str]
    lessons: list[LessonSummaryRead]


class LessonRead(LessonSummaryRead):
    body: str  # Markdown; figures are placed with ![caption](figure:ID)
    figures: list[FigureRead]
    exercise_list: list[ExerciseRead]


class FieldGuideEntryRead(BaseModel):
    id: str
    kind: str  # "lesion" or "mimic"
    title: str
    tell: str
    body: str
    keywords: list[str]
    looks_like: str | None
    action: str | None
    image_url: str | None


class FieldGuideRead(BaseModel):
    language: str
    version: int
    entries: list[FieldGuideEntryRead]


class LessonStatsRead(BaseModel):
    id: str
    title: str
    version: int
    completed_current: int  # volunteers who completed the current version
    completed_any: int


class ExerciseStatsRead(BaseModel):
    lesson: str
    exercise: str
    kind: str
    mimic: str | None
    answers: int
    mean_dice: float | None  # lesion exercises
    missed_share: float | None  # lesions missed, of those shown
    false_alarm_share: float | None  # answers that painted a lesion that is none


class MimicStatsRead(BaseModel):
    mimic: str
    answers: int
    fooled_share: float | None  # answers that painted it as a lesion


class QualificationStatsRead(BaseModel):
    project: str
    attempts: int
    passed: int
    pass_rate: float | None
    volunteers_passed: int
    first_attempt_pass_rate: float | None


class TutorialStatsRead(BaseModel):
    lessons: list[LessonStatsRead]
    exercises: list[ExerciseStatsRead]
    mimics: list[MimicStatsRead]  # most fooling first
    qualification: list[QualificationStatsRead]
