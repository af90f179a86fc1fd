"""Brain masks written beside raw clinical studies (``mscrowd-ml brain-mask FOLDER``), so that
``mscrowd import`` shows and stores brain only (``backend.imaging.clinical``): for each
prefixed study without ``PREFIX_brain_mask.nii.gz``, deepbet's mask of its FLAIR."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from backend.imaging.clinical import StudyFiles, studies_in
from backend.imaging.models import Contrast
from backend.imaging.preprocess import InvalidCase
from ml import brain


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
        voxel_ml = float(np.prod(image.header.get_zooms()[:3])) / 1000.0
        written.append(Written(study.name, out, float(mask.sum()) * voxel_ml))
        if progress is not None:
            progress(n + 1)
    return written
