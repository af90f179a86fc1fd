"""Imaging: pseudonymous cases, their volumes and the 2-D slices volunteers label."""

from datetime import datetime
from enum import StrEnum
from typing import Protocol

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.core.columns import created_at_field, enum_type


class ConsentScope(StrEnum):
    """One use of a case its data owner allowed (a case holds any set of them; none: experts
    only, nothing leaves the platform)."""

    crowd_viewing = "crowd_viewing"  # volunteers see its slices and label them (crowd tasks)
    research_sharing = "research_sharing"  # fused labels train models and go into releases
    public_images = "public_images"  # its images may be published (in releases, cacheable)
    public_labels = "public_labels"  # its labels may be published


# Named sets of scopes for imports: ``open`` is an openly licensed dataset (CC-BY), ``crowd``
# may be labelled and its labels shared but not its images, ``restricted`` stays with experts.
CONSENT_PRESETS: dict[str, frozenset[ConsentScope]] = {
    "open": frozenset(ConsentScope),
    "crowd": frozenset(
        {ConsentScope.crowd_viewing, ConsentScope.research_sharing, ConsentScope.public_labels}
    ),
    "research": frozenset({ConsentScope.crowd_viewing, ConsentScope.research_sharing}),
    "restricted": frozenset(),
}
# What an import allows unless told otherwise: labelling and research, nothing public.
DEFAULT_CONSENT = CONSENT_PRESETS["research"]


def parse_consent(text: str) -> frozenset[ConsentScope]:
    """Scopes from ``open``/``crowd``/``research``/``restricted`` or a comma-separated list of
    scope names; ValueError naming what is unknown."""
    text = text.strip()
    if text in CONSENT_PRESETS:
        return CONSENT_PRESETS[text]
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in ConsentScope.__members__]
    if unknown or not names:
        known = ", ".join([*CONSENT_PRESETS, *ConsentScope.__members__])
        raise ValueError(f"unknown consent {', '.join(unknown) or text!r}; use one of {known}")
    return frozenset(ConsentScope(name) for name in names)


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
    # The data owner's consent, one column per ``ConsentScope`` (``consent_<scope>``), so the
    # queue, fusion, training and releases filter on it in SQL.
    consent_crowd_viewing: bool = True
    consent_research_sharing: bool = True
    consent_public_images: bool = False
    consent_public_labels: bool = False
    # Voxels of the expert reference lesion mask, or None when the case has no reference.
    reference_voxels: int | None = Field(default=None, ge=0)
    # Teaching material (``tutorials.material``): its slices illustrate lessons and make up
    # practice and qualification items; never crowd tasks, gold or held out.
    tutorial: bool = Field(default=False, index=True)
    created_at: datetime = created_at_field()

    @property
    def scopes(self) -> frozenset[ConsentScope]:
        """The scopes the case's consent allows."""
        return frozenset(scope for scope in ConsentScope if getattr(self, f"consent_{scope}"))

    def allow(self, scopes: frozenset[ConsentScope]) -> None:
        """Set the consent columns to exactly ``scopes``."""
        for scope in ConsentScope:
            setattr(self, f"consent_{scope}", scope in scopes)


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
