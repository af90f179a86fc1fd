"""The model registry: every trained model is a version with its data snapshot, config,
metrics, weights' storage key and status."""

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
    failed = "failed"  # training stopped with an error (kept for the record)


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_versions"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", ondelete="CASCADE", index=True)
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
    error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = created_at_field()
    finished_at: datetime | None = timestamp_field(nullable=True)
