"""Projects group cases and set how many labels each task needs and how often gold is shown."""

import math
import re
from datetime import datetime

import sqlalchemy as sa
from pydantic import field_validator, model_validator
from sqlmodel import Field, SQLModel

from backend.core.columns import created_at_field

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class ProjectBase(SQLModel):
    # Used in URLs and on the command line: letters, digits, '_', '.', '-'.
    name: str = Field(max_length=64, min_length=1)
    description: str = Field(default="", max_length=2000)
    # Adaptive redundancy (``fusion.redundancy``): every crowd task gets ``min_labels``
    # independent labels; while its fused label stays uncertain (a lesion candidate whose
    # P(lesion) has more than ``max_uncertainty`` bits of entropy) it asks for one more, up
    # to ``max_labels``, and then goes to the experts' review queue.
    min_labels: int = Field(default=3, ge=1, le=50)
    max_labels: int = Field(default=7, ge=1, le=50)
    max_uncertainty: float = Field(default=0.5, gt=0, le=1)
    # Share of tasks served to a volunteer that are gold samples (scored against an expert).
    gold_rate: float = Field(default=0.1, ge=0, le=1)
    # Gold rates while a volunteer is new: [answers so far below which, rate], ascending;
    # after the last step the project's gold_rate applies.
    gold_schedule: list[list[float]] = Field(
        default_factory=lambda: [[10, 0.4], [30, 0.3], [100, 0.2]], sa_type=sa.JSON
    )
    # Share of a volunteer's answers that come back to them as repeats, and the answers in
    # between.
    repeat_rate: float = Field(default=0.05, ge=0, le=1)
    repeat_gap: int = Field(default=20, ge=1, le=10_000)
    # Reliability thresholds (``quality.reliability.Thresholds``).
    min_gold: int = Field(default=5, ge=1, le=1000)
    min_sensitivity: float = Field(default=0.3, ge=0, le=1)
    min_lesion_ppv: float = Field(default=0.3, ge=0, le=1)
    fast_ms: int = Field(default=1500, ge=0, le=600_000)
    # A gold slice is retired (and the pool refilled from candidates) once this many
    # volunteers have seen its feedback: feedback teaches, but must not become an answer key.
    gold_reveals: int = Field(default=30, ge=1, le=100_000)
    # Consistency check (``quality.consistency``): a rater whose gold Dice exceeds their Dice
    # against the fused consensus of normal tasks by more than this is flagged for review.
    consensus_gap: float = Field(default=0.35, gt=0, le=1)
    # Cases (public ids) held out for evaluating models: never trained on, never gold.
    holdout_cases: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    # The qualification gate (``tutorials.qualification``): until a volunteer passes this
    # project's short test (``qualification_items`` tutorial slices: lesion, empty and mimic
    # slices) they get no task of it. Passing needs lesion-wise F1 and Dice over the lesion
    # slices at least the minimums, and no false lesion on ``qualification_min_clean`` of the
    # empty and mimic slices; a failed attempt waits ``qualification_cooldown_minutes``, and
    # at most ``qualification_attempts_per_day`` start in 24 hours.
    qualification_required: bool = True
    qualification_items: int = Field(default=10, ge=4, le=40)
    qualification_min_f1: float = Field(default=0.4, ge=0, le=1)
    qualification_min_dice: float = Field(default=0.4, ge=0, le=1)
    qualification_min_clean: float = Field(default=0.6, ge=0, le=1)
    qualification_cooldown_minutes: int = Field(default=10, ge=0, le=10_080)
    qualification_attempts_per_day: int = Field(default=3, ge=1, le=100)

    @field_validator("gold_schedule")
    @classmethod
    def _ascending_steps(cls, value: list[list[float]]) -> list[list[float]]:
        if len(value) > 20 or any(len(step) != 2 for step in value):
            raise ValueError("up to 20 steps, each [answers, rate]")
        for n, rate in value:
            if not (math.isfinite(n) and n == int(n) and 1 <= n <= 1e9 and 0 <= rate <= 1):
                raise ValueError("each step is [whole number of answers >= 1, rate from 0 to 1]")
        steps = [[int(n), float(rate)] for n, rate in value]
        if [n for n, _ in steps] != sorted({n for n, _ in steps}):
            raise ValueError("steps must be in strictly ascending order of answers")
        return steps

    @model_validator(mode="after")
    def _label_range(self) -> "ProjectBase":
        if self.max_labels < self.min_labels:
            raise ValueError("max_labels must be at least min_labels")
        return self

    @field_validator("holdout_cases")
    @classmethod
    def _case_ids(cls, value: list[str]) -> list[str]:
        if len(value) > 1000 or any(not 1 <= len(v) <= 32 for v in value):
            raise ValueError("up to 1000 case public ids of 1 to 32 characters")
        if len(set(value)) != len(value):
            raise ValueError("a case is named twice")
        return value

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value):  # (match with $ lets a final newline through)
            raise ValueError(
                "use letters, digits, '_', '.' and '-' only, starting with a letter or digit"
            )
        return value


class Project(ProjectBase, table=True):
    __tablename__ = "projects"
    __table_args__ = (
        sa.CheckConstraint("min_labels >= 1", name="min_labels_positive"),
        sa.CheckConstraint("max_labels >= min_labels", name="max_labels_at_least_min"),
        sa.CheckConstraint("gold_rate >= 0 AND gold_rate <= 1", name="gold_rate_fraction"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True, index=True)
    created_at: datetime = created_at_field()
