"""Request and response bodies of the release routes."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class ReleaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: str = Field(min_length=1, max_length=100)
    name: str | None = Field(default=None, min_length=1, max_length=64)
    min_labels: int = Field(default=1, ge=1, le=100)
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    # Account ids of raters whose slices are left out (admins only: an engineer could
    # otherwise learn who rated what); each must have answered in the project.
    exclude_raters: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(
        default_factory=list, max_length=1000
    )
    per_rater: bool = False


class ReleaseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    project_id: int
    status: str
    created_at: datetime
    finished_at: datetime | None
    progress: float
    eta_seconds: float | None
    message: str
    filters: dict[str, Any]
    stats: dict[str, Any]
    provenance: dict[str, Any]
    cases: list[str]
    size_bytes: int
    file_count: int
    # Why it failed or was superseded (None otherwise).
    error: str | None


class ReleaseFileRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    path: str
    size: int
    sha256: str
