"""Simulated raters for quality tests, drawn from real expert lesion masks.

A rater has a profile of the errors volunteers make:

- ``miss``: chance of leaving out each lesion (connected component) of the slice;
- ``boundary``: pixels grown (> 0) or shrunk (< 0) at every lesion edge (binary dilation or
  erosion with the 4-neighbour cross);
- ``blobs``: mean number (Poisson) of false lesions of 2-4 px radius painted somewhere in the
  brain;
- ``empty``: always answers "no lesions" (a spammer); ``scribble``: random strokes.

The rater's true quality is their pooled Dice over many slices they did not answer as gold.
"""

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

CROSS = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class Profile:
    miss: float = 0.0
    boundary: int = 0
    blobs: float = 0.0
    empty: bool = False
    scribble: bool = False


# A spread of qualities: from careful to careless, plus the two spammers.
PROFILES = {
    "expert-like": Profile(miss=0.02, boundary=0, blobs=0.05),
    "slightly generous": Profile(miss=0.05, boundary=1, blobs=0.1),
    "slightly tight": Profile(miss=0.1, boundary=-1, blobs=0.1),
    "misses some": Profile(miss=0.3, boundary=0, blobs=0.2),
    "generous": Profile(miss=0.1, boundary=2, blobs=0.3),
    "misses many": Profile(miss=0.5, boundary=0, blobs=0.3),
    "sloppy": Profile(miss=0.4, boundary=2, blobs=0.6),
    "very generous": Profile(miss=0.2, boundary=3, blobs=0.8),
    "careless": Profile(miss=0.65, boundary=-1, blobs=1.0),
    "poor": Profile(miss=0.8, boundary=2, blobs=1.5),
}
SPAMMERS = {"always empty": Profile(empty=True), "scribbler": Profile(scribble=True)}


def answer(
    reference: NDArray[np.bool_],
    brain: NDArray[np.bool_],
    profile: Profile,
    rng: np.random.Generator,
) -> NDArray[np.bool_]:
    """A simulated answer [H, W] to a gold slice."""
    shape = reference.shape
    if profile.empty:
        return np.zeros(shape, dtype=bool)
    if profile.scribble:
        mask = np.zeros(shape, dtype=bool)
        for _ in range(int(rng.integers(3, 7))):
            y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
            for _ in range(25):  # a random walk with a 3-px brush
                y = int(np.clip(y + rng.integers(-3, 4), 1, shape[0] - 2))
                x = int(np.clip(x + rng.integers(-3, 4), 1, shape[1] - 2))
                mask[y - 1 : y + 2, x - 1 : x + 2] = True
        return mask
    labels, n = ndimage.label(reference, structure=ndimage.generate_binary_structure(2, 2))
    kept = np.flatnonzero(rng.random(n) >= profile.miss) + 1
    mask = np.isin(labels, kept)
    if profile.boundary > 0 and mask.any():
        mask = ndimage.binary_dilation(mask, CROSS, iterations=profile.boundary)
    elif profile.boundary < 0:
        mask = ndimage.binary_erosion(mask, CROSS, iterations=-profile.boundary)
    inside = np.argwhere(brain)
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    for _ in range(rng.poisson(profile.blobs)):
        cy, cx = inside[rng.integers(len(inside))]
        r = rng.integers(2, 5)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return mask & brain


def gold_slices(root: Path, count: int, seed: int) -> list[NDArray[np.bool_]]:
    """``count`` axial slices with lesions from the real masks (lesion_masks_mni), cropped to
    the brain's box in MNI space, drawn at random across patients."""
    rng = np.random.default_rng(seed)
    files = sorted((root / "lesion_masks_mni").glob("patient*.nii.gz"))
    slices: list[NDArray[np.bool_]] = []
    for path in files:
        volume = np.asarray(nib.load(path).dataobj) > 0.5
        per_slice = volume.sum(axis=(0, 1))
        candidates = np.flatnonzero(per_slice >= 15)
        for z in rng.choice(candidates, size=min(4, len(candidates)), replace=False):
            slices.append(volume[10:172, 12:206, z])
    order = rng.permutation(len(slices))
    return [slices[i] for i in order[:count]]


def brain_of(slice_: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """An elliptic brain region filling the cropped MNI slice."""
    h, w = slice_.shape
    yy, xx = np.ogrid[:h, :w]
    return ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2 <= 1.0
