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

import nibabel as nib
import numpy as np
from numpy.typing import NDArray
from sqlmodel import Session, col, select

from backend.core.errors import InvalidInput
from backend.core.storage import Storage
from backend.fusion.volumes import FusedLabel, on_grid, usable_labels
from backend.imaging.models import Case, Contrast, Volume
from backend.imaging.preprocess import FloatArray, brain_mask
from backend.rounds.models import LabelSource
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


def training_labels(session: Session, project_id: int) -> list[FusedLabel]:
    """The fused labels of a project that training may use (``fusion.volumes.usable_labels``)."""
    return usable_labels(session, project_id)


def _fused_labels(
    session: Session,
    storage: Storage,
    case: Case,
    shape: tuple[int, ...],
    fused: Sequence[FusedLabel],
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """The case's ``fused`` soft labels and current gold masks on its volume grid."""
    return on_grid(session, storage, case, shape, fused)


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
