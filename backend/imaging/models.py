"""Imaging: pseudonymous cases, their volumes and the 2-D slices volunteers label."""

from datetime import datetime
from enum import StrEnum
from typing import Protocol

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


class Contrast(StrEnum):
    """MRI contrasts shown to raters, plus the expert reference mask (never shown to them)."""

    flair = "flair"
    t1 = "t1"
    t2 = "t2"
    reference = "reference"


class Case(SQLModel, table=True):
    __tablename__ = "cases"
    __table_args__ = (sa.UniqueConstraint("project_id", "source_sha256"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", ondelete="CASCADE", index=True)
    # Random pseudonym; the source's own identifiers (folder names, patient ids) are never stored.
    public_id: str = Field(max_length=32, unique=True, index=True)
    # Fingerprint of the source files: importing the same case twice is a no-op.
    source_sha256: str = Field(max_length=64)
    source: str = Field(max_length=200)
    licence: str = Field(max_length=64)
    consent_scope: ConsentScope = Field(default=ConsentScope.open, sa_type=enum_type(ConsentScope))
    # Voxels of the expert reference lesion mask, or None when the case has no reference.
    reference_voxels: int | None = Field(default=None, ge=0)
    # Teaching material (``tutorials.material``): its slices illustrate lessons and make up
    # practice and qualification items; never crowd tasks, gold or held out.
    tutorial: bool = Field(default=False, index=True)
    created_at: datetime = created_at_field()


class Volume(SQLModel, table=True):
    """One 3-D image of a case on the case grid (RAS, resampled to the FLAIR grid)."""

    __tablename__ = "volumes"
    __table_args__ = (sa.UniqueConstraint("case_id", "contrast"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", ondelete="CASCADE", index=True)
    contrast: Contrast = Field(sa_type=enum_type(Contrast))
    shape: list[int] = Field(sa_type=sa.JSON)
    spacing: list[float] = Field(sa_type=sa.JSON)
    # 4x4 voxel-to-world (RAS, mm) matrix, row major.
    affine: list[list[float]] = Field(sa_type=sa.JSON)
    storage_key: str = Field(max_length=255)
    # Intensity window used to render 8-bit slices (robust percentiles inside the brain).
    window: list[float] | None = Field(default=None, sa_type=sa.JSON)


class HasCrop(Protocol):
    @property
    def crop_x0(self) -> int: ...
    @property
    def crop_y0(self) -> int: ...
    @property
    def crop_x1(self) -> int: ...
    @property
    def crop_y1(self) -> int: ...


class CropSize:
    """``width`` and ``height`` of a slice image from its crop box (a mixin)."""

    __slots__ = ()

    @property
    def width(self: HasCrop) -> int:
        """Width in pixels of the cropped slice image (volume x extent)."""
        return self.crop_x1 - self.crop_x0

    @property
    def height(self: HasCrop) -> int:
        """Height in pixels of the cropped slice image (volume y extent)."""
        return self.crop_y1 - self.crop_y0


class Slice(CropSize, SQLModel, table=True):
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
    # Storage key of the rendered PNG for each shown contrast, e.g. {"flair": "...", "t1": "..."}.
    image_keys: dict[str, str] = Field(default_factory=dict, sa_type=sa.JSON)
    # Storage key of the expert reference mask PNG; served to experts and scoring only.
    reference_key: str | None = Field(default=None, max_length=255)
    reference_pixels: int | None = Field(default=None, ge=0)
    brain_fraction: float
    # Share of the slice's brain pixels that are FLAIR-hyperintense (lesion candidates,
    # ``preprocess.HYPERINTENSE_Z``): what the ``random_fg`` selection weighs by. None for
    # slices imported before it was measured.
    candidate_fraction: float | None = None
