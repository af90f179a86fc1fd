"""Brain masks written beside raw clinical studies (``mscrowd-ml brain-mask FOLDER``), so that
``mscrowd import`` shows and stores brain only (``backend.imaging.clinical``): for each
prefixed study without ``PREFIX_brain_mask.nii.gz``, deepbet's mask of its FLAIR."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from backend.core.storage import BlobNotFound
from backend.imaging.clinical import StudyFiles, studies_in
from backend.imaging.models import Contrast
from backend.imaging.preprocess import InvalidCase
from ml import brain

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Written:
    study: str
    path: Path
    millilitres: float


def _folders(root: Path) -> list[Path]:
    return [root, *sorted(p for p in root.iterdir() if p.is_dir())]


def pending(root: Path, *, force: bool = False) -> list[StudyFiles]:
    """The studies under ``root`` (and its subfolders) that need a mask."""
    if not root.is_dir():
        raise InvalidCase(f"{root} is not a folder")
    found = [s for folder in _folders(root) for s in studies_in(folder)]
    return [s for s in found if force or s.brain is None]


def write_masks(
    studies: list[StudyFiles],
    *,
    gpu: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[Written]:
    """Compute and write each study's mask (``PREFIX_brain_mask.nii.gz`` on its FLAIR grid)."""
    written = []
    for n, study in enumerate(studies):
        flair_path = study.images[Contrast.flair]
        try:
            image: nib.Nifti1Image = nib.load(flair_path)  # type: ignore[assignment]
        except Exception as exc:  # nibabel raises many kinds on corrupt input
            raise InvalidCase(f"{study.name}: {flair_path.name} is not a readable NIfTI") from exc
        mask = brain.brain_mask(image, gpu=gpu)
        out = study.folder / f"{study.prefix}_brain_mask.nii.gz"
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), image.affine), out)
        written.append(Written(study.name, out, float(mask.sum()) * _voxel_ml(image)))
        if progress is not None:
            progress(n + 1)
    return written


def import_staged(token: str) -> dict[str, Any]:
    """``ml.brain_mask``: compute the brain mask of a case the import staged (it shows skull
    and came without one; ``backend.imaging.staging``), import the case with it in one
    transaction and delete the staged files. A case that cannot be imported is reported in
    the result and its staged files are deleted too (nothing half-imported stays)."""
    import torch

    from backend.imaging import service as imaging
    from backend.imaging import staging
    from backend.worker import job_resources

    engine, storage, _relay = job_resources()
    prefix = f"{staging.STAGING}/{token}"
    began = time.monotonic()
    try:
        flair = staging.staged_flair(storage, token)
        mask = brain.brain_mask(flair, gpu=torch.cuda.is_available())
        image = nib.Nifti1Image(mask.astype(np.uint8), flair.affine)
        source, staged = staging.load(storage, token, image)
        outcome = imaging.import_one(
            engine=engine,
            storage=storage,
            project_name=staged.project,
            load=lambda: source,
            meta=imaging.CaseMeta(staged.source, staged.licence, staged.consent),
            stage_raw=False,
        )
    except (InvalidCase, BlobNotFound) as exc:
        log.warning("staged case %s not imported: %s", token, exc)
        storage.delete_prefix(prefix)
        return {"status": "failed", "message": str(exc)}
    storage.delete_prefix(prefix)
    seconds = round(time.monotonic() - began, 1)
    log.info("staged case %s: %s in %.1f s", token, outcome.status, seconds)
    return {
        "status": outcome.status,
        "case": outcome.case_public_id,
        "slices": outcome.slices,
        "brain_ml": round(float(mask.sum()) * _voxel_ml(flair), 1),
        "seconds": seconds,
        "message": outcome.message,
    }


def _voxel_ml(image: nib.spatialimages.SpatialImage) -> float:
    return float(np.prod(image.header.get_zooms()[:3])) / 1000.0
