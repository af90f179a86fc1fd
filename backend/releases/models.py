"""Releases: immutable, named snapshots of a project's fused labels (with images where consent
allows), in the layouts nnU-Net v2 and MONAI read, written to the project's storage.

A release is built once (``status`` building, then ready or failed); its files never change.
Withdrawing a case it holds supersedes it: it is served no more and its files, but for the
manifest that says why, are deleted.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.core.columns import created_at_field, enum_type, timestamp_field


class ReleaseStatus(StrEnum):
    building = "building"
    ready = "ready"
    failed = "failed"  # nothing of it is served; its files are deleted
    superseded = "superseded"  # a case in it was withdrawn: served no more


class Release(SQLModel, table=True):
    __tablename__ = "releases"
    # Names differ in more than case: ``DEMO-R1`` beside ``demo-r1`` would unpack to folders
    # that collide on case-insensitive file systems, and read as the same release.
    __table_args__ = (sa.Index("uq_releases_name_nocase", sa.text("lower(name)"), unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="projects.id", ondelete="CASCADE", index=True)
    # Unique across projects: ``mscrowd export --release NAME`` needs nothing else.
    name: str = Field(max_length=64, unique=True)
    status: ReleaseStatus = Field(
        default=ReleaseStatus.building, sa_type=enum_type(ReleaseStatus), index=True
    )
    # Who asked for it (a plain id: a release outlives an erased account; None: the CLI).
    created_by: int | None = None
    created_at: datetime = created_at_field()
    # When a worker took the build on (None: queued): a second job for it does nothing.
    started_at: datetime | None = timestamp_field(nullable=True)
    finished_at: datetime | None = timestamp_field(nullable=True)
    # What it was asked for: minimum labels per slice, minimum fused confidence, raters left
    # out, per-rater masks or not.
    filters: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    # What it draws on (fusion runs and versions, rounds, model versions) and what it holds
    # (cases, slices, lesion voxels, label statistics); filled when built.
    provenance: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    stats: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    # Case public ids in it (withdrawal supersedes the releases holding a case).
    cases: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    # Building: percent done, seconds left (None: not known yet), what it is doing.
    progress: float = 0.0
    eta_seconds: float | None = None
    message: str = Field(default="", max_length=200)
    # Built: its files' total size and count; a failure's or supersession's reason.
    size_bytes: int = Field(default=0, sa_type=sa.BigInteger)
    file_count: int = 0
    error: str | None = Field(default=None, max_length=1000)


class ReleaseFile(SQLModel, table=True):
    """One file of a release: where it lies in the release, its size and checksum (the ETag
    downloads carry) and its order in the release's archive."""

    __tablename__ = "release_files"
    __table_args__ = (sa.UniqueConstraint("release_id", "path"),)

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="releases.id", ondelete="CASCADE", index=True)
    path: str = Field(max_length=200)
    size: int = Field(sa_type=sa.BigInteger)
    sha256: str = Field(max_length=64)
