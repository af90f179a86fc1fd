"""Fusion results, versioned: each fusion of a slice is a new version; old ones stay for
provenance and releases."""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.core.columns import created_at_field, enum_type, timestamp_field


class FusionScope(StrEnum):
    project = "project"  # rates estimated jointly over every slice of the project
    task = "task"  # one slice fused with the rates of the project's latest run


class FusionRun(SQLModel, table=True):
    """One fusion: of a whole project (rates fitted) or of one task (rates reused)."""

    __tablename__ = "fusion_runs"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", ondelete="CASCADE", index=True)
    scope: FusionScope = Field(sa_type=enum_type(FusionScope))
    method: str = Field(max_length=32)  # "crowd_staple/<outline rule>"
    prior: float
    iterations: int
    converged: bool
    slices: int
    # {user id: [sensitivity, specificity]} used for every slice of the run.
    rater_rates: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    # Raters left out (suspended when the run started).
    excluded: list[int] = Field(default_factory=list, sa_type=sa.JSON)
    # Project runs: each outline rule's mean Dice against the gold slices it was chosen on
    # ({} when the project had too few: the default rule).
    outline_scores: dict[str, float] = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = created_at_field()
    finished_at: datetime | None = timestamp_field(nullable=True)


class FusionResult(SQLModel, table=True):
    """A slice's fused label, one version per fusion."""

    __tablename__ = "fusion_results"
    __table_args__ = (sa.UniqueConstraint("task_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="fusion_runs.id", ondelete="CASCADE", index=True)
    task_id: int = Field(foreign_key="tasks.id", ondelete="CASCADE", index=True)
    slice_id: int = Field(foreign_key="slices.id", ondelete="CASCADE", index=True)
    version: int = Field(ge=1)
    # Storage key of the soft label: an 8-bit PNG of round(255 * P(lesion)).
    soft_key: str = Field(max_length=255)
    hard_pixels: int = Field(ge=0)  # pixels with P(lesion) >= 0.5
    # The answers fused (annotation ids) and their raters, in the same order.
    annotation_ids: list[int] = Field(default_factory=list, sa_type=sa.JSON)
    raters: list[int] = Field(default_factory=list, sa_type=sa.JSON)
    uncertainty: float  # bits: the least certain lesion candidate (redundancy.uncertainty)
    # The adaptive-redundancy decision this version led to (``redundancy.Decision``): only
    # versions fused once the task was complete decide; None for the others.
    decision: str | None = Field(default=None, max_length=16)
    created_at: datetime = created_at_field()
