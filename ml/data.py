"""Training and prediction inputs: 2.5-D multi-contrast stacks and lesion-centred patches.

A case is held as ``CaseArrays``: FLAIR, T1 and T2 on the FLAIR grid (RAS, axes x, y, z, as
``backend.imaging.preprocess`` stores them), each z-scored inside the brain, the brain mask,
and a label volume (soft, 0..1; crowd labels give P(lesion), expert masks 0 or 1) with the
axial slices that carry one. The network sees an axial slice as ``3 * (2k + 1)`` channels:
the three contrasts of the slice and of ``k`` slices either side (the volume's edge repeated
where it ends). Pure numpy: no torch, no storage.

Patches: lesions cover well under 1 % of a slice, so a share of the patches (``lesion_share``)
is centred on a random lesion pixel and the rest on a random brain pixel of a labelled slice:
the class balance the anchor's plain whole-slice training lacked.

Semi-synthetic cases (``plant_lesions``): another patient's expert lesion mask on the same
grid planted into a case's images, with the contrast the case's own lesions show: more lesion
loads, shapes and places to learn from than one or two real cases hold.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

CONTRASTS = ("flair", "t1", "t2")
# z-scores are clipped here: a few extreme voxels must not dominate a batch.
CLIP = 5.0


def normalise(volume: NDArray[np.floating], brain: NDArray[np.bool_]) -> NDArray[np.float32]:
    """Z-score inside the brain, clipped to +-CLIP; 0 outside the brain."""
    values = np.asarray(volume, dtype=np.float64)
    inside = values[brain]
    if inside.size == 0:
        raise ValueError("the brain mask is empty")
    mean, std = float(inside.mean()), float(inside.std())
    scaled = (values - mean) / (std if std > 0 else 1.0)
    return np.where(brain, np.clip(scaled, -CLIP, CLIP), 0.0).astype(np.float32)


@dataclass(frozen=True)
class CaseArrays:
    name: str
    images: NDArray[np.float32]  # [3, X, Y, Z]: normalised FLAIR, T1, T2
    brain: NDArray[np.bool_]  # [X, Y, Z]
    label: NDArray[np.float32]  # [X, Y, Z]: P(lesion), meaningful on labelled slices only
    labelled: NDArray[np.bool_]  # [Z]: which axial slices carry a label

    def __post_init__(self) -> None:
        shape = self.brain.shape
        if self.images.shape != (len(CONTRASTS), *shape) or self.label.shape != shape:
            raise ValueError(
                f"images {self.images.shape}, brain {shape} and label {self.label.shape} "
                "must share one grid"
            )
        if self.labelled.shape != (shape[2],):
            raise ValueError("labelled needs one flag per axial slice")

    @classmethod
    def from_volumes(
        cls,
        name: str,
        volumes: Sequence[NDArray[np.floating]],
        brain: NDArray[np.bool_],
        label: NDArray[np.floating] | None = None,
        labelled: NDArray[np.bool_] | None = None,
    ) -> "CaseArrays":
        """From raw FLAIR, T1, T2 volumes (normalised here) and an optional label; a label
        without ``labelled`` labels every slice."""
        images = np.stack([normalise(v, brain) for v in volumes])
        shape = brain.shape
        return cls(
            name=name,
            images=images,
            brain=brain,
            label=np.zeros(shape, np.float32) if label is None else label.astype(np.float32),
            labelled=(
                np.full(shape[2], label is not None) if labelled is None else labelled.astype(bool)
            ),
        )


def stack(case: CaseArrays, z: int, neighbours: int) -> NDArray[np.float32]:
    """The network input of axial slice ``z``: [3 * (2k + 1), X, Y], contrasts grouped by
    slice from inferior to superior; slices past the volume's edge repeat the edge."""
    depth = case.images.shape[3]
    planes = [
        case.images[:, :, :, min(max(z + dz, 0), depth - 1)]
        for dz in range(-neighbours, neighbours + 1)
    ]
    return np.concatenate(planes, axis=0)


def _crop(array: NDArray[np.floating], x: int, y: int, size: int) -> NDArray[np.float32]:
    """A [..., size, size] window of ``array`` [..., X, Y] centred at (x, y), zero-padded."""
    half = size // 2
    out = np.zeros((*array.shape[:-2], size, size), dtype=np.float32)
    x0, y0 = x - half, y - half
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + size, array.shape[-2]), min(y0 + size, array.shape[-1])
    out[..., sx0 - x0 : sx1 - x0, sy0 - y0 : sy1 - y0] = array[..., sx0:sx1, sy0:sy1]
    return out


class PatchSampler:
    """Draws training patches from ``cases``: the lesion pixels (P >= 0.5) and brain pixels of
    their labelled slices are indexed once, here, not at every step."""

    def __init__(self, cases: Sequence[CaseArrays]) -> None:
        self.cases = list(cases)
        lesion_pixels: list[NDArray[np.int64]] = []
        brain_pixels: list[NDArray[np.int64]] = []
        for n, case in enumerate(self.cases):
            zs = np.flatnonzero(case.labelled)
            for pool, mask in (
                (lesion_pixels, case.label[:, :, zs] >= 0.5),
                (brain_pixels, case.brain[:, :, zs]),
            ):
                xyz = np.argwhere(mask)  # z as an index into zs
                if len(xyz):
                    xyz[:, 2] = zs[xyz[:, 2]]
                    pool.append(np.column_stack([np.full(len(xyz), n), xyz]))
        if not brain_pixels:
            raise ValueError("no labelled slice with brain in it: nothing to train on")
        self.brain = np.concatenate(brain_pixels)
        self.lesions = np.concatenate(lesion_pixels) if lesion_pixels else self.brain[:0]

    def sample(
        self,
        count: int,
        size: int,
        neighbours: int,
        lesion_share: float,
        rng: np.random.Generator,
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """``count`` patches: inputs [count, C, size, size] and soft targets
        [count, 1, size, size], ``lesion_share`` of them centred on lesion pixels, the rest on
        brain pixels (both of labelled slices)."""
        lesions, brain = self.lesions, self.brain
        centred = int(round(count * lesion_share)) if len(lesions) else 0
        picks = np.concatenate(
            [
                lesions[rng.integers(len(lesions), size=centred)] if centred else brain[:0],
                brain[rng.integers(len(brain), size=count - centred)],
            ]
        )
        inputs = np.empty((count, 3 * (2 * neighbours + 1), size, size), dtype=np.float32)
        targets = np.empty((count, 1, size, size), dtype=np.float32)
        for i, (n, x, y, z) in enumerate(picks[rng.permutation(count)]):
            case = self.cases[int(n)]
            inputs[i] = _crop(stack(case, int(z), neighbours), int(x), int(y), size)
            targets[i, 0] = _crop(case.label[:, :, int(z)], int(x), int(y), size)
        return inputs, targets


def sample_patches(
    cases: Sequence[CaseArrays],
    count: int,
    size: int,
    neighbours: int,
    lesion_share: float,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """``count`` training patches from ``cases`` (``PatchSampler``; index once and call its
    ``sample`` when drawing many batches)."""
    return PatchSampler(cases).sample(count, size, neighbours, lesion_share, rng)


def lesion_load(case: CaseArrays) -> float:
    """Lesion voxels (label >= 0.5) per labelled axial slice: a load that partly labelled
    cases and whole masks can be compared by."""
    slices = int(case.labelled.sum())
    return float((case.label[:, :, case.labelled] >= 0.5).sum()) / slices if slices else 0.0


def lightly_loaded(cases: Sequence[CaseArrays], library: Sequence[NDArray[np.bool_]]) -> bool:
    """Whether the training ``cases``' median lesion load (``lesion_load``) is below the
    median of the ``library``'s expert masks (voxels per axial slice): the rule for
    planting library lesions into a training set (``mscrowd-ml train --plant-from``). A case
    whose lesions are few and small teaches a model that lesions are few and small;
    planting the library's larger loads into a case already heavier than the library's
    median adds more of what it has plenty of. Training data and library only: the case to
    be segmented is never looked at."""
    if not cases or not library:
        raise ValueError("the rule needs training cases and library masks")
    typical = float(np.median([mask.sum() / mask.shape[2] for mask in library]))
    return float(np.median([lesion_load(case) for case in cases])) < typical


# Planted lesions' offsets from their surroundings, in brain z-scores, when the case has no
# lesions of its own to measure them on: bright on FLAIR and T2, dark on T1.
DEFAULT_LESION_CONTRAST = (2.5, -1.0, 2.0)


def lesion_contrast(case: CaseArrays) -> tuple[float, float, float]:
    """How far the case's own lesions (label >= 0.5) stand out, per contrast: the median
    z-score inside them minus the median of the brain ring 2 to 4 voxels around them;
    ``DEFAULT_LESION_CONTRAST`` when the case has fewer than 50 lesion voxels."""
    lesion = case.label >= 0.5
    if lesion.sum() < 50:
        return DEFAULT_LESION_CONTRAST
    ring = (
        ndimage.binary_dilation(lesion, iterations=4)
        & ~ndimage.binary_dilation(lesion, iterations=1)
        & case.brain
    )
    offsets = [float(np.median(image[lesion]) - np.median(image[ring])) for image in case.images]
    return offsets[0], offsets[1], offsets[2]


def plant_lesions(
    case: CaseArrays,
    mask: NDArray[np.bool_],
    rng: np.random.Generator,
    contrast: tuple[float, float, float] | None = None,
) -> CaseArrays:
    """A semi-synthetic copy of ``case`` with the lesions of ``mask`` (another patient's
    expert mask on the same grid, e.g. MNI space) added to its images: each contrast is
    offset by ``contrast`` (default: the case's own lesions', ``lesion_contrast``) inside
    them, with soft edges (a Gaussian of 0.7 voxels) and a smooth 15 % variation, over the
    case's own texture. Planted only inside the brain; the label is the union of both."""
    if mask.shape != case.brain.shape:
        raise ValueError(f"the mask {mask.shape} is not on the case's grid {case.brain.shape}")
    planted = mask & case.brain
    weight = ndimage.gaussian_filter(planted.astype(np.float32), 0.7)
    weight = np.clip(weight / max(float(weight.max()), 1e-6), 0.0, 1.0) * case.brain
    variation = (
        1.0
        + 0.15
        * ndimage.gaussian_filter(rng.standard_normal(case.brain.shape).astype(np.float32), 2.0)
        / 0.056
    )  # a 2-voxel Gaussian of 3-D white noise has a standard deviation near 0.056
    offsets = contrast or lesion_contrast(case)
    images = case.images + np.stack([o * weight * variation for o in offsets]).astype(np.float32)
    images = np.where(case.brain, np.clip(images, -CLIP, CLIP), 0.0).astype(np.float32)
    label = np.maximum(case.label, planted.astype(np.float32))
    return CaseArrays(case.name, images, case.brain, label, case.labelled)


def plant_copies(
    cases: Sequence[CaseArrays],
    library: Sequence[NDArray[np.bool_]],
    count: int,
    rng: np.random.Generator,
) -> tuple[list[CaseArrays], list[int]]:
    """``count`` semi-synthetic copies: the k-th of ``cases[k % len(cases)]`` with the lesions
    of one ``library`` mask (chosen by ``rng`` without repeats, in library order) planted
    (``plant_lesions``). Returns the copies and the library indices planted. Whether to plant
    at all is the caller's (``lightly_loaded``)."""
    if count < 0 or count > len(library):
        raise ValueError(f"cannot plant {count} of a library of {len(library)} masks")
    if not count:
        return [], []
    chosen = sorted(int(i) for i in rng.choice(len(library), size=count, replace=False))
    copies = [plant_lesions(cases[k % len(cases)], library[i], rng) for k, i in enumerate(chosen)]
    return copies, chosen
