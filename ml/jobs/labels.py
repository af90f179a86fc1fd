"""A project's cases and labels, read from the database and storage for training, scoring
and evaluating.

Labels:
- ``reference``: the imported expert masks, every axial slice labelled;
- ``fused``: the newest fused soft label of every complete crowd task (``training_labels``:
  never a task still collecting answers or in the experts' review queue, never a withdrawn
  version), P(lesion) mapped from the slice's display geometry back onto the volume, plus the
  current gold masks; only those slices are labelled.
"""

import gzip
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func
from sqlmodel import Session, col, select

from backend.core.errors import InvalidInput
from backend.core.storage import Storage
from backend.fusion.labels import read_soft
from backend.fusion.models import FusionResult
from backend.imaging.models import Case, Contrast, Slice, Volume
from backend.imaging.preprocess import FloatArray, brain_mask, from_display
from backend.quality.gold import read_mask
from backend.quality.models import GoldVersion
from backend.rounds.models import LabelSource
from backend.tasks.models import Task, TaskKind, TaskState
from ml.data import CONTRASTS, CaseArrays


def arrays_from_volumes(
    name: str,
    volumes: dict[Contrast, FloatArray],
    label: NDArray[np.floating] | None = None,
    labelled: NDArray[np.bool_] | None = None,
) -> CaseArrays:
    """``CaseArrays`` from volumes on one grid; a missing T1 or T2 is all zeros."""
    flair = volumes[Contrast.flair]
    ordered = [volumes.get(Contrast(c), np.zeros_like(flair)) for c in CONTRASTS]
    return CaseArrays.from_volumes(name, ordered, brain_mask(volumes), label, labelled)


def decode_nifti(data: bytes) -> FloatArray:
    """A gzipped NIfTI file's voxels as float32."""
    image = nib.Nifti1Image.from_bytes(gzip.decompress(data))
    return np.asarray(image.dataobj, dtype=np.float32)


def _read_nifti(storage: Storage, key: str) -> FloatArray:
    return decode_nifti(storage.get(key))


@dataclass(frozen=True)
class FusedLabel:
    """A fused version training may use: its id, case and slice, and its soft label's key."""

    result_id: int
    case_id: int
    slice_: Slice
    soft_key: str


def training_labels(session: Session, project_id: int) -> list[FusedLabel]:
    """The fused labels of a project that training may use, in result id order: the newest
    version of each complete crowd task (not open, not in review, not retired), unless that
    version is withdrawn (an older version may carry an excluded rater: never used)."""
    newest = (
        select(FusionResult.task_id, func.max(FusionResult.version).label("version"))
        .group_by(col(FusionResult.task_id))
        .subquery()
    )
    rows = session.exec(
        select(FusionResult, Slice)
        .join(
            newest,
            (col(FusionResult.task_id) == newest.c.task_id)
            & (col(FusionResult.version) == newest.c.version),
        )
        .join(Task, col(Task.id) == col(FusionResult.task_id))
        .join(Slice, col(Slice.id) == col(FusionResult.slice_id))
        .where(Task.project_id == project_id, Task.kind == TaskKind.normal)
        .where(Task.state == TaskState.complete, col(FusionResult.withdrawn).is_(False))
        .order_by(col(FusionResult.id))
    ).all()
    return [
        FusedLabel(result.id or 0, slice_.case_id, slice_, result.soft_key)
        for result, slice_ in rows
        if result.soft_key is not None
    ]


def _fused_labels(
    session: Session,
    storage: Storage,
    case: Case,
    shape: tuple[int, ...],
    fused: Sequence[FusedLabel],
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """The case's ``fused`` soft labels and current gold masks on its volume grid."""
    label = np.zeros(shape, dtype=np.float32)
    labelled = np.zeros(shape[2], dtype=bool)
    gold = session.exec(
        select(GoldVersion, Slice)
        .join(Slice, col(Slice.id) == col(GoldVersion.slice_id))
        .where(Slice.case_id == case.id, col(GoldVersion.retired_at).is_(None))
    ).all()
    planes: list[tuple[Slice, NDArray[np.float64]]] = [
        (f.slice_, read_soft(storage, f.soft_key)) for f in fused if f.case_id == case.id
    ]
    # Gold after the crowd: an expert's mask wins on a slice that has both.
    planes += [(slice_, read_mask(storage, g.mask_key).astype(np.float64)) for g, slice_ in gold]
    for slice_, plane in planes:
        label[slice_.crop_x0 : slice_.crop_x1, slice_.crop_y0 : slice_.crop_y1, slice_.index] = (
            from_display(plane)
        )
        labelled[slice_.index] = True
    return label, labelled


def load_cases(
    session: Session,
    storage: Storage,
    project_id: int,
    labels: LabelSource | None,
    *,
    only: Collection[str] | None = None,
    skip: Collection[str] = (),
    fused: Sequence[FusedLabel] | None = None,
) -> dict[str, CaseArrays]:
    """The project's cases by public id, with ``labels`` (reference: cases that have one;
    fused: ``fused``, by default ``training_labels``; None: images only, no label read);
    ``only`` these public ids when given, never those in ``skip`` (their volumes are not read
    at all). Labels are read only from cases whose consent allows research use
    (``Case.consent_research_sharing``): a model never learns from, or is judged on, the rest."""
    found: dict[str, CaseArrays] = {}
    if labels is LabelSource.fused and fused is None:
        fused = training_labels(session, project_id)
    query = select(Case).where(Case.project_id == project_id).order_by(col(Case.id))
    if labels is not None:
        query = query.where(col(Case.consent_research_sharing).is_(True))
    if only is not None:
        query = query.where(col(Case.public_id).in_(list(only)))
    if skip:
        query = query.where(col(Case.public_id).not_in(list(skip)))
    for case in session.exec(query):
        rows = {
            v.contrast: v for v in session.exec(select(Volume).where(Volume.case_id == case.id))
        }
        if Contrast.flair not in rows:
            continue
        volumes: dict[Contrast, FloatArray] = {
            c: _read_nifti(storage, v.storage_key)
            for c, v in rows.items()
            if c is not Contrast.reference
        }
        shape = volumes[Contrast.flair].shape
        if labels is LabelSource.reference:
            if Contrast.reference not in rows:
                continue
            label = (_read_nifti(storage, rows[Contrast.reference].storage_key) > 0).astype(
                np.float32
            )
            found[case.public_id] = arrays_from_volumes(case.public_id, volumes, label)
        elif labels is None:
            found[case.public_id] = arrays_from_volumes(case.public_id, volumes)
        else:
            label, labelled = _fused_labels(session, storage, case, shape, fused or [])
            found[case.public_id] = arrays_from_volumes(case.public_id, volumes, label, labelled)
    return found


def load_holdout(
    session: Session, storage: Storage, project_id: int, public_ids: Sequence[str]
) -> list[CaseArrays]:
    """Held-out cases with their expert masks (required: they are what is evaluated)."""
    cases = load_cases(session, storage, project_id, LabelSource.reference, only=public_ids)
    missing = [p for p in public_ids if p not in cases]
    if missing:
        raise InvalidInput(
            f"Held-out case(s) {', '.join(missing)} are not cases of this project with an "
            "expert mask"
        )
    return [cases[p] for p in public_ids]
