"""Planting expert lesion masks into lightly loaded training cases (``mscrowd-ml train
--plant-from``): the library read from a folder, and the planted copies."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from backend.core.errors import InvalidInput
from ml.data import CaseArrays, lightly_loaded, plant_copies

# Semi-synthetic copies planted from a library when the training cases are lightly loaded.
PLANT_COPIES = 4


@dataclass(frozen=True)
class Library:
    """Expert lesion masks to plant into training cases (``mscrowd-ml train --plant-from``)."""

    folder: str
    names: list[str]
    masks: list[NDArray[np.bool_]]


def read_library(folder: Path) -> Library:
    """Every NIfTI mask of ``folder`` (voxels > 0.5), made RAS as the import makes images."""
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder of lesion masks")
    files = sorted(p for p in folder.iterdir() if p.name.endswith((".nii", ".nii.gz")))
    if not files:
        raise InvalidInput(f"{folder} holds no .nii or .nii.gz lesion mask")
    masks = []
    for path in files:
        try:
            data = np.asarray(nib.as_closest_canonical(nib.load(path)).dataobj)
        except Exception as exc:
            raise InvalidInput(f"{path.name} is not a readable NIfTI mask: {exc}") from exc
        if data.ndim != 3:
            raise InvalidInput(f"{path.name} is not a 3-D mask (shape {data.shape})")
        masks.append(data > 0.5)
    names = [p.name.removesuffix(".gz").removesuffix(".nii") for p in files]
    return Library(str(folder), names, masks)


def planted_copies(
    training: Sequence[CaseArrays], library: Library, count: int, seed: int
) -> tuple[list[CaseArrays], dict[str, Any]]:
    """``count`` copies of the training cases with library lesions planted
    (``ml.data.plant_copies``, seeded by ``seed``) when they are lightly loaded
    (``ml.data.lightly_loaded``), else none; and what the version's snapshot records of it:
    the library, whether the rule planted, which masks."""
    grids = {c.brain.shape for c in training}
    wrong = [n for n, m in zip(library.names, library.masks, strict=True) if {m.shape} != grids]
    if wrong:
        raise InvalidInput(
            f"Library mask(s) {', '.join(wrong[:5])} are not on the training cases' grid "
            f"{', '.join(str(g) for g in sorted(grids))}: planting needs masks in the cases' "
            "space (e.g. MNI for cross_sectional_mni)"
        )
    if count > len(library.masks):
        raise InvalidInput(f"cannot plant {count} of a library of {len(library.masks)} masks")
    light = lightly_loaded(training, library.masks)
    rng = np.random.default_rng(seed)
    copies, chosen = plant_copies(training, library.masks, count, rng) if light else ([], [])
    return copies, {
        "library": library.folder,
        "rule": "planted only when the training cases' median lesion load is below the "
        "library's median",
        "lightly_loaded": light,
        "masks": [library.names[i] for i in chosen],
    }
