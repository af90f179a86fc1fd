"""Active-learning rounds and the model registry.

A round moves ``open -> labelling -> fusing -> training -> scoring -> closed``:

- ``open``: just created; its slices are being chosen (``rounds.service.start_round``);
- ``labelling``: its chosen slices' tasks are at the front of the volunteers' queue;
- ``fusing``: an engineer closed the labelling; the project is fused (``rounds.fuse_round``);
- ``training``: the ML worker trains a model version on the fused labels (``ml.train_round``);
- ``scoring``: the ML worker scores the unlabelled pool by Monte-Carlo dropout
  (``ml.score_pool``); the next round selects from these scores;
- ``closed``: done; its model's held-out Dice and the labels it used are a point of the
  learning curve.

Every trained model is a ``ModelVersion`` with its data snapshot, config, metrics, weights'
storage key and status.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.core.columns import created_at_field, enum_type, timestamp_field


class LabelSource(StrEnum):
    fused = "fused"  # the crowd's fused soft labels (plus gold)
    reference = "reference"  # the imported expert masks (for comparison)


class ModelStatus(StrEnum):
    training = "training"  # registered, weights not written yet
    ready = "ready"  # trained and evaluated, not promoted (it regressed, or not compared)
    promoted = "promoted"  # the project's current model: no regression on held-out cases
    failed = "failed"  # training stopped with an error, or its worker died (kept for the record)


class RoundStatus(StrEnum):
    open = "open"
    labelling = "labelling"
    fusing = "fusing"
    training = "training"
    scoring = "scoring"
    closed = "closed"


# The stages a worker job runs, in order (the others wait for people).
JOB_STAGES = (RoundStatus.fusing, RoundStatus.training, RoundStatus.scoring)


class Round(SQLModel, table=True):
    __tablename__ = "rounds"
    __table_args__ = (
        sa.UniqueConstraint("project_id", "number"),
        sa.CheckConstraint("budget >= 1", name="budget_positive"),
        sa.CheckConstraint("progress >= 0 AND progress <= 100", name="progress_percent"),
    )

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", ondelete="CASCADE", index=True)
    number: int = Field(ge=1)  # 1, 2, ... within the project
    status: RoundStatus = Field(default=RoundStatus.open, sa_type=enum_type(RoundStatus))
    # How the round's slices are chosen (``rounds.selection``), how many, and the strategy that
    # actually ran (``cold_start`` when there were no scores yet).
    strategy: str = Field(max_length=32)
    selected_by: str | None = Field(default=None, max_length=32)
    budget: int
    seed: int = 0
    # Training: a config name (None: gpu on CUDA, else cpu) and an optional time budget.
    config: str | None = Field(default=None, max_length=16)
    minutes: float | None = None
    # The slice ids chosen for labelling, most wanted first.
    selected: list[int] = Field(default_factory=list, sa_type=sa.JSON)
    # Labelled slices the round's model learned from (the learning curve's x); the model
    # itself is the round's ready or promoted ``ModelVersion`` (``ModelVersion.round_id``).
    labels_used: int | None = None
    # Pool scores written by ml.score_pool (npz in storage), and how many slices they cover.
    scores_key: str | None = Field(default=None, max_length=255)
    scored_slices: int | None = None
    # The running stage's progress; a job holds the round while its heartbeat is fresh.
    progress: float = 0.0
    eta_seconds: float | None = None
    detail: str = Field(default="", max_length=300)
    job_token: str | None = Field(default=None, max_length=64)
    heartbeat_at: datetime | None = timestamp_field(nullable=True)
    # The last stage failure (the stage can be resumed); cleared when it is.
    error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()
    closed_at: datetime | None = timestamp_field(nullable=True)


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_versions"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", ondelete="CASCADE", index=True)
    # The round that trained it (None: mscrowd-ml train).
    round_id: int | None = Field(
        default=None, foreign_key="rounds.id", ondelete="SET NULL", index=True
    )
    labels: LabelSource = Field(sa_type=enum_type(LabelSource))
    status: ModelStatus = Field(default=ModelStatus.training, sa_type=enum_type(ModelStatus))
    # The training configuration (``ml.config.TrainConfig`` as a dict) and the device used.
    config: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    device: str = Field(default="cpu", max_length=16)
    # What it learned from: case public ids with their labelled slice counts, and the
    # held-out cases it was evaluated on (never trained on).
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    # Held-out figures: per case and overall Dice and lesion-wise F1; steps, seconds.
    metrics: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    weights_key: str | None = Field(default=None, max_length=255)
    # Cases it learned from or was evaluated on that were withdrawn since (public ids): a
    # flag for whoever serves or publishes it.
    withdrawn_cases: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = created_at_field()
    finished_at: datetime | None = timestamp_field(nullable=True)
