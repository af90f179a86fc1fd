"""Imaging: pseudonymous cases and the 2-D slices volunteers label."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.core.columns import created_at_field, enum_type


class ConsentScope(StrEnum):
    """What the data owner allowed: who may see the images and whether labels may be released."""

    open = "open"  # openly licensed: volunteers label it, labels and images may be released
    crowd = "crowd"  # volunteers label it; labels may be released, images may not
    restricted = "restricted"  # experts only; nothing leaves the platform


class SliceAxis(StrEnum):
    axial = "axial"
    coronal = "coronal"
    sagittal = "sagittal"


class Case(SQLModel, table=True):
    __tablename__ = "cases"

    id: int | None = Field(default=None, primary_key=True)
    # Random pseudonym; the source's own identifiers are never stored here.
    public_id: str = Field(max_length=32, unique=True, index=True)
    source: str = Field(max_length=200)
    licence: str = Field(max_length=64)
    consent_scope: ConsentScope = Field(default=ConsentScope.open, sa_type=enum_type(ConsentScope))
    created_at: datetime = created_at_field()


class Slice(SQLModel, table=True):
    __tablename__ = "slices"
    __table_args__ = (
        sa.UniqueConstraint("case_id", "axis", "index"),
        sa.CheckConstraint("crop_x1 > crop_x0 AND crop_y1 > crop_y0", name="crop_box_nonempty"),
        sa.CheckConstraint("brain_fraction >= 0 AND brain_fraction <= 1", name="brain_fraction"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", ondelete="CASCADE", index=True)
    axis: SliceAxis = Field(default=SliceAxis.axial, sa_type=enum_type(SliceAxis))
    index: int = Field(ge=0)
    # Crop box in voxel coordinates of the volume grid, half-open: [x0, x1) x [y0, y1).
    crop_x0: int
    crop_y0: int
    crop_x1: int
    crop_y1: int
    # Storage key of the rendered PNG for each contrast, e.g. {"flair": "...", "t1": "..."}.
    image_keys: dict[str, str] = Field(default_factory=dict, sa_type=sa.JSON)
    brain_fraction: float
