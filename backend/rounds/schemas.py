"""API shapes of active-learning rounds."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.core.validation import MAX_DB_ID
from ml.config import CONFIGS
from ml.selection import STRATEGIES


class RoundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    project_id: int = Field(ge=1, le=MAX_DB_ID)
    strategy: str = Field(default="bald_diverse", max_length=32)
    budget: int = Field(default=50, ge=1, le=100_000, description="Slices to label this round")
    config: str | None = Field(
        default=None, description="Training config (tiny, cpu, gpu); default by device"
    )
    minutes: float | None = Field(default=None, gt=0, le=24 * 60)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        if value not in STRATEGIES:
            raise ValueError(f"unknown strategy; known: {', '.join(sorted(STRATEGIES))}")
        return value

    @field_validator("config")
    @classmethod
    def _known_config(cls, value: str | None) -> str | None:
        if value is not None and value not in CONFIGS:
            raise ValueError(f"unknown config; known: {', '.join(sorted(CONFIGS))}")
        return value


class RoundModel(BaseModel):
    """The model a round trained, with its held-out figures."""

    id: int
    status: str
    dice: float | None
    lesion_f1: float | None
    device: str
    steps: int | None
    seconds: float | None


class RoundRead(BaseModel):
    id: int
    project_id: int
    number: int
    status: str
    strategy: str
    selected_by: str | None
    budget: int
    config: str | None
    minutes: float | None
    selected: int  # slices chosen for labelling
    labelled: int  # of them, those whose crowd task is done
    labels_used: int | None
    scored_slices: int | None
    progress: float  # percent of the running stage
    eta_seconds: float | None
    detail: str
    error: str | None
    model: RoundModel | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class CurvePointRead(BaseModel):
    round: int
    labels_used: int
    dice: float | None
    lesion_f1: float | None
    model_version_id: int
