"""Importing cases: find them on disk, prepare them, store images and rows in one atomic step."""

import functools
import gzip
import hashlib
import json
import re
import secrets
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import nibabel as nib
import numpy as np
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend.audit import service as audit
from backend.audit.models import AuditAction
from backend.core.config import get_settings
from backend.core.db import refresh_statistics
from backend.core.errors import NotFound
from backend.core.outbox import Relay, celery_sender, defer, take_deferred
from backend.core.storage import Storage
from backend.imaging import BRAIN_MASK, clinical, sprite, staging
from backend.imaging.crowd import add_crowd_tasks
from backend.imaging.models import (
    DEFAULT_CONSENT,
    Case,
    ConsentScope,
    Contrast,
    Slice,
    Volume,
)
from backend.imaging.preprocess import (
    CaseSource,
    InvalidCase,
    PreparedCase,
    encode_nifti,
    prepare_case,
)
from backend.privacy.models import WithdrawnCase
from backend.projects import service as projects
from backend.projects.models import Project

# Longest first, so "a.nii.gz" is not read as "a.nii" + ".gz".
NIFTI_SUFFIXES = (".nii.gz", ".nii")
# File name stems (case-insensitive) recognised for each role in a case folder.
ROLE_PATTERNS: dict[Contrast, re.Pattern[str]] = {
    Contrast.flair: re.compile(r"^(flair|t2[_-]?flair)$"),
    Contrast.t1: re.compile(r"^(t1|t1w|mprage)$"),
    Contrast.t2: re.compile(r"^(t2|t2w)$"),
    Contrast.reference: re.compile(r"^(lesion[_-]?mask|mask|consensus|lesions?|seg)$"),
}


def slice_and_case(session: Session, slice_id: int) -> tuple[Slice, Case]:
    """A slice and its case; ``NotFound`` for a slice that does not exist."""
    slice_ = session.get(Slice, slice_id)
    if slice_ is None:
        raise NotFound(f"Slice {slice_id} does not exist")
    case = session.get(Case, slice_.case_id)
    assert case is not None
    return slice_, case


def _stem(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def case_files(folder: Path) -> dict[Contrast, Path]:
    """The NIfTI file of each role in a case folder; ``InvalidCase`` on duplicates."""
    found: dict[Contrast, Path] = {}
    for path in sorted(folder.iterdir()):
        stem = _stem(path)
        if stem is None or not path.is_file():
            continue
        for role, pattern in ROLE_PATTERNS.items():
            if pattern.match(stem):
                if role in found:
                    raise InvalidCase(
                        f"{folder.name}: both {found[role].name} and {path.name} look like "
                        f"the {role.value} image"
                    )
                found[role] = path
    return found


def discover_cases(path: Path) -> list[Path]:
    """Case folders under ``path`` (or ``path`` itself when it is one case)."""
    if not path.is_dir():
        raise InvalidCase(f"{path} is not a folder")
    if Contrast.flair in case_files(path):
        return [path]
    cases = [p for p in sorted(path.iterdir()) if p.is_dir() and case_files(p)]
    if not cases:
        raise InvalidCase(
            f"No cases found in {path}: expected one subfolder per case holding "
            "FLAIR.nii.gz (required), T1.nii.gz, T2.nii.gz and optionally lesion_mask.nii.gz"
        )
    return cases


def case_fingerprint(files: dict[Contrast, Path]) -> str:
    """SHA-256 over a case's files and their roles: the same files import once per project."""
    digest = hashlib.sha256()
    for role in sorted(files):
        digest.update(role.value.encode() + b"\0" + files[role].read_bytes())
    return digest.hexdigest()


def load_case(folder: Path, fingerprint: str | None = None) -> CaseSource:
    """Read and decode a case folder's NIfTI files (``fingerprint``: when already computed)."""
    files = case_files(folder)
    if Contrast.flair not in files:
        raise InvalidCase(f"{folder.name}: no FLAIR image (looked for FLAIR.nii[.gz])")
    images: dict[Contrast, nib.spatialimages.SpatialImage] = {}
    for role in sorted(files):
        path = files[role]
        raw = _gunzip(path.read_bytes(), path)
        try:
            image = nib.Nifti1Image.from_bytes(raw)
            # Read the voxels now: a truncated file must fail here, with its name.
            image = nib.Nifti1Image(np.asanyarray(image.dataobj), image.affine, image.header)
        except Exception as exc:  # nibabel raises many kinds on corrupt input
            raise InvalidCase(
                f"{folder.name}/{path.name} is not a readable NIfTI file: {exc}"
            ) from exc
        images[role] = image
    reference = images.pop(Contrast.reference, None)
    return CaseSource(
        name=folder.name,
        images=images,
        reference=reference,
        fingerprint=fingerprint or case_fingerprint(files),
    )


def _gunzip(data: bytes, path: Path) -> bytes:
    if not path.name.lower().endswith(".gz"):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidCase(f"{path.name} is not a valid gzip file ({exc})") from exc


@dataclass(frozen=True)
class CaseMeta:
    """What is recorded about where imported cases come from and who may see them."""

    source: str  # provenance text, e.g. the dataset and its citation; never a patient id
    licence: str
    consent: frozenset[ConsentScope] = DEFAULT_CONSENT


@dataclass(frozen=True)
class ImportOutcome:
    name: str
    status: Literal["imported", "skipped", "failed", "queued"]
    message: str
    case_public_id: str | None = None
    slices: int = 0  # one task is opened per slice
    report: dict[str, Any] | None = None  # a DICOM study's de-identification report
    staged: str | None = None  # queued: its staging token (``imaging.staging``)


def _store(
    *,
    session: Session,
    storage: Storage,
    project: Project,
    prepared: PreparedCase,
    source: CaseSource,
    public_id: str,
    meta: CaseMeta,
) -> int:
    prefix = f"cases/{public_id}"
    assert project.id is not None
    case = Case(
        project_id=project.id,
        public_id=public_id,
        source_sha256=source.fingerprint,
        source=meta.source,
        licence=meta.licence,
        reference_voxels=int(prepared.reference.sum()) if prepared.reference is not None else None,
    )
    case.allow(meta.consent)
    session.add(case)
    session.flush()
    assert case.id is not None
    geometry = {
        "shape": list(prepared.shape),
        "spacing": list(prepared.spacing),
        "affine": prepared.affine.tolist(),
    }
    stored = dict(prepared.volumes)
    for contrast, data in stored.items():
        key = f"{prefix}/volumes/{contrast.value}.nii.gz"
        storage.put(key, encode_nifti(data, prepared.affine))
        window = list(prepared.windows[contrast])
        session.add(
            Volume(case_id=case.id, contrast=contrast, storage_key=key, window=window, **geometry)
        )
    if prepared.reference is not None:
        key = f"{prefix}/reference/lesion_mask.nii.gz"
        storage.put(key, encode_nifti(prepared.reference, prepared.affine))
        session.add(
            Volume(case_id=case.id, contrast=Contrast.reference, storage_key=key, **geometry)
        )
    x0, y0, x1, y1 = prepared.crop
    slices: list[Slice] = []
    for render in prepared.slices:
        image_keys: dict[str, str] = {}
        for contrast, png in render.pngs.items():
            key = f"{prefix}/axial/{render.index:04d}/{contrast.value}.png"
            storage.put(key, png)
            image_keys[contrast.value] = key
        reference_key = None
        if render.reference_png is not None:
            reference_key = f"{prefix}/reference/axial/{render.index:04d}.png"
            storage.put(reference_key, render.reference_png)
        slices.append(
            Slice(
                case_id=case.id,
                axis=prepared.axis,
                index=render.index,
                crop_x0=x0,
                crop_y0=y0,
                crop_x1=x1,
                crop_y1=y1,
                image_keys=image_keys,
                reference_key=reference_key,
                reference_pixels=render.reference_pixels,
                brain_fraction=render.brain_fraction,
                candidate_fraction=render.candidate_fraction,
            )
        )
    session.add_all(slices)
    session.flush()
    sprite.store_all(storage, prepared, slices)
    add_crowd_tasks(session, project, case, slices)
    session.flush()
    return len(slices)


def import_source(
    *,
    session: Session,
    storage: Storage,
    project: Project,
    source: CaseSource,
    meta: CaseMeta,
    stage_raw: bool = True,
) -> ImportOutcome:
    """Import one case inside the caller's transaction; commit is the caller's.

    A case that shows skull and came without a brain mask is staged for the ML worker
    (``staging``; ``queued``) unless ``stage_raw`` is off (then it is refused).

    Skips a case already in the project (same fingerprint). On any failure the stored files are
    removed and the error propagates, so the caller's rollback leaves nothing behind.
    """
    existing = session.exec(
        select(Case).where(Case.project_id == project.id, Case.source_sha256 == source.fingerprint)
    ).first()
    if existing is not None:
        return ImportOutcome(
            source.name, "skipped", "already imported", case_public_id=existing.public_id
        )
    # Withdrawn from any project: its owner took it back, not just from one project.
    withdrawn = session.exec(
        select(WithdrawnCase.withdrawn_at).where(WithdrawnCase.source_sha256 == source.fingerprint)
    ).first()
    if withdrawn is not None:
        return ImportOutcome(
            source.name,
            "skipped",
            f"withdrawn by its data owner on {withdrawn:%Y-%m-%d}: never imported again",
        )
    if stage_raw and staging.needs_brain_mask(source):
        token = staging.stage(
            storage,
            source,
            project=project.name,
            provenance=meta.source,
            licence=meta.licence,
            consent=meta.consent,
        )
        defer(session, BRAIN_MASK, token)
        return ImportOutcome(
            source.name,
            "queued",
            f"shows skull and came without a brain mask: staged as {token} for brain "
            "extraction on the ML worker, which imports it when the mask is made",
            report=source.report,
            staged=token,
        )
    prepared = prepare_case(source)
    public_id = secrets.token_hex(8)
    try:
        slice_count = _store(
            session=session,
            storage=storage,
            project=project,
            prepared=prepared,
            source=source,
            public_id=public_id,
            meta=meta,
        )
        if source.report is not None:
            report = json.dumps(source.report, sort_keys=True).encode()
            storage.put(f"cases/{public_id}/deid_report.json", report)
        audit.record(
            session,
            AuditAction.case_import,
            object_type="case",
            object_id=public_id,
            detail={
                "project": project.name,
                "slices": slice_count,
                "licence": meta.licence,
                "consent": sorted(meta.consent),
                "deidentification": source.report,
            },
        )
    except BaseException:
        storage.delete_prefix(f"cases/{public_id}")
        raise
    return ImportOutcome(
        source.name,
        "imported",
        f"{slice_count} axial slices",
        case_public_id=public_id,
        slices=slice_count,
        report=source.report,
    )


@dataclass(frozen=True)
class CaseLoader:
    """A case to import: its name for messages, its fingerprint when known before loading (so a
    case already imported is skipped without reading it), and how to load it."""

    name: str
    load: Callable[[], CaseSource]
    fingerprint: str | None = None


def folder_loaders(path: Path) -> list[CaseLoader]:
    """One loader per case folder under ``path``, and per raw clinical study (files named by
    a study prefix, ``imaging.clinical``) in it or its subfolders; fingerprinted without
    decoding anything, so a case already imported is skipped at the cost of hashing it."""
    loaders = []
    if path.is_dir():
        for folder in [path, *sorted(p for p in path.iterdir() if p.is_dir())]:
            for study in clinical.studies_in(folder):
                name, load, digest = clinical.loader(study)
                loaders.append(CaseLoader(name, load, fingerprint=digest))
    try:
        folders = discover_cases(path)
    except InvalidCase:
        if loaders:
            return loaders
        raise
    for folder in folders:
        fingerprint = case_fingerprint(case_files(folder))
        load = functools.partial(load_case, folder, fingerprint)
        loaders.append(CaseLoader(folder.name, load, fingerprint=fingerprint))
    return loaders


def import_cases(
    *,
    engine: Engine,
    storage: Storage,
    project_name: str,
    loaders: Iterable[CaseLoader],
    meta: CaseMeta,
    min_labels: int | None = None,
    max_labels: int | None = None,
    gold_rate: float | None = None,
) -> list[ImportOutcome]:
    """Import cases one transaction each: a bad case is reported and leaves nothing behind."""
    with Session(engine) as session:
        projects.get_or_create(
            session=session,
            name=project_name,
            min_labels=min_labels,
            max_labels=max_labels,
            gold_rate=gold_rate,
        )
        session.commit()
    outcomes = []
    for loader in loaders:
        name = loader.name
        existing = (
            imported_case(engine, project_name, loader.fingerprint) if loader.fingerprint else None
        )
        if existing is not None:
            outcomes.append(
                ImportOutcome(name, "skipped", "already imported", case_public_id=existing)
            )
            continue
        try:
            outcomes.append(
                import_one(
                    engine=engine,
                    storage=storage,
                    project_name=project_name,
                    load=loader.load,
                    meta=meta,
                )
            )
        except InvalidCase as exc:
            outcomes.append(ImportOutcome(name, "failed", exc.message))
        except IntegrityError:
            # A concurrent import of the same case won the race; ours was rolled back.
            outcomes.append(ImportOutcome(name, "skipped", "imported concurrently"))
    if any(outcome.status == "imported" for outcome in outcomes):
        refresh_statistics(engine, "slices", "tasks")
    return outcomes


def imported_case(engine: Engine, project_name: str, fingerprint: str) -> str | None:
    """The public id of the project's case with this fingerprint, or None."""
    with Session(engine) as session:
        query = (
            select(Case.public_id)
            .join(Project, col(Project.id) == Case.project_id)
            .where(Project.name == project_name, Case.source_sha256 == fingerprint)
        )
        return session.exec(query).first()


def import_one(
    *,
    engine: Engine,
    storage: Storage,
    project_name: str,
    load: Callable[[], CaseSource],
    meta: CaseMeta,
    stage_raw: bool = True,
) -> ImportOutcome:
    """Load and import one case in its own transaction; what it stored is removed when the
    commit fails, and the jobs it deferred are sent after it."""
    source = load()
    with Session(engine, expire_on_commit=False) as session:
        project = session.exec(select(Project).where(Project.name == project_name)).first()
        if project is None:
            raise InvalidCase(f"Project {project_name!r} does not exist")
        outcome = import_source(
            session=session,
            storage=storage,
            project=project,
            source=source,
            meta=meta,
            stage_raw=stage_raw,
        )
        try:
            session.commit()
        except BaseException:
            if outcome.status == "imported":
                storage.delete_prefix(f"cases/{outcome.case_public_id}")
            if outcome.status == "queued":
                storage.delete_prefix(f"{staging.STAGING}/{outcome.staged}")
            raise
        jobs = take_deferred(session)
    if jobs:  # the brain-mask job: sent now (the outbox relay sends it if this fails)
        Relay(engine, celery_sender(get_settings()))(jobs)
    return outcome
