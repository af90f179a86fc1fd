"""Segmenting a case folder with a registered model version, and the arrays a prepared case
gives the model (as training saw its cases)."""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from numpy.typing import NDArray

from backend.core.errors import InvalidInput
from backend.core.storage import Storage
from backend.imaging.models import Contrast
from backend.imaging.preprocess import PreparedCase, encode_nifti, prepare_case
from backend.imaging.service import load_case
from backend.rounds.models import ModelVersion
from ml.data import CaseArrays
from ml.jobs.labels import arrays_from_volumes, decode_nifti
from ml.jobs.versions import load_weights
from ml.train import clean, predict_case


def arrays_for_prediction(name: str, prepared: PreparedCase) -> CaseArrays:
    """A prepared case as the model saw its training cases: through the same int16 NIfTI
    encoding the import stores volumes in. Float volumes keep interpolation residue outside a
    skull-stripped brain that int16 rounds to 0; that grew the brain mask by a fifth and
    shifted the z-scores (patient19: Dice 0.43 instead of the held-out 0.55)."""
    stored = {
        contrast: decode_nifti(encode_nifti(data, prepared.affine))
        for contrast, data in prepared.volumes.items()
    }
    return arrays_from_volumes(name, stored)


def arrays_with_reference(name: str, prepared: PreparedCase) -> CaseArrays:
    """``arrays_for_prediction`` labelled on every axial slice with the case's reference mask
    (benchmarks and tests: a case as an expert-labelled training or held-out case)."""
    if prepared.reference is None:
        raise ValueError(f"case {name} has no reference mask")
    arrays = arrays_for_prediction(name, prepared)
    return replace(
        arrays,
        label=prepared.reference.astype(np.float32),
        labelled=np.ones(prepared.shape[2], dtype=bool),
    )


def to_own_grid(
    data: NDArray[np.generic], image: Any, grid: NDArray[np.float64] | None = None
) -> NDArray[np.generic]:
    """``data`` on the case grid (the affine ``grid``: the import's reorientation of the
    FLAIR, ``preprocess.canonical``; RAS when not given), moved back onto the image's own
    voxel grid (the inverse of the reorientation the import applies)."""
    own = nib.orientations.io_orientation(image.affine)
    if grid is None:
        stored = nib.orientations.axcodes2ornt(("R", "A", "S"))
    else:
        stored = nib.orientations.io_orientation(grid)
    restored = np.asarray(
        nib.orientations.apply_orientation(data, nib.orientations.ornt_transform(stored, own))
    )
    if restored.shape != tuple(image.shape[:3]):
        raise InvalidInput(f"the mask's grid {restored.shape} is not the FLAIR's {image.shape}")
    return restored


def predict_folder(
    *,
    storage: Storage,
    version: ModelVersion,
    folder: Path,
    out: Path,
    device: torch.device,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Segment a case folder (import layout) and write a binary mask on the case's own FLAIR
    grid (same shape and affine as its FLAIR.nii.gz); the lesion voxel count."""
    assert version.weights_key is not None
    model, config = load_weights(storage.get(version.weights_key), device)
    source = load_case(folder)
    prepared = prepare_case(source)
    case = arrays_for_prediction(folder.name, prepared)
    probability = predict_case(model, case, config, device, progress=progress)
    mask = clean(probability, config.min_lesion_pixels).astype(np.uint8)
    original = source.images[Contrast.flair]
    restored = to_own_grid(mask, original, prepared.affine)
    image = nib.Nifti1Image(restored.astype(np.uint8), original.affine)
    image.set_data_dtype(np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, out)
    return int(restored.sum())
