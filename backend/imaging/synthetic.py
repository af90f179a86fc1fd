"""Synthetic multi-contrast MS cases from the MNI152 template that ships with nilearn (offline).

Each case: the MNI152 tissue maps (grey matter, white matter, CSF) warped by a random smooth
deformation; white-matter lesions of realistic sizes placed where MS puts them
(periventricular, juxtacortical, deep white matter, infratentorial); FLAIR, T1 and T2 built
from tissue intensities with partial volume; a multiplicative bias field and Rician noise;
skull-stripped like the open MS data. The lesion mask is the known truth. On request
(``mimics=True``) a case also holds the lesion mimics of ``backend.imaging.mimics``, left out of
the lesion mask and recorded in ``mimic_labels``.
"""

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

import nibabel as nib
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from backend.imaging.mimics import KINDS, Mimic, MimicKind, MimicLayers, code, plant_mimics
from backend.imaging.models import Contrast
from backend.imaging.preprocess import CaseSource

FloatArray = npt.NDArray[np.float32]


class LesionSite(StrEnum):
    periventricular = "periventricular"
    juxtacortical = "juxtacortical"
    deep_white_matter = "deep_white_matter"
    infratentorial = "infratentorial"


# Relative signal of each tissue (WM, GM, CSF, lesion) per contrast, as seen on 3 T MS protocols:
# lesions are bright on FLAIR and T2, dark on T1; CSF is dark on FLAIR (fluid attenuated).
TISSUE_SIGNAL: dict[Contrast, tuple[float, float, float, float]] = {
    Contrast.flair: (0.55, 0.70, 0.10, 1.15),
    Contrast.t1: (0.90, 0.60, 0.15, 0.45),
    Contrast.t2: (0.40, 0.60, 1.00, 0.85),
}


@dataclass(frozen=True)
class Lesion:
    site: LesionSite
    centre: tuple[int, int, int]
    radii_mm: tuple[float, float, float]
    voxels: int


@dataclass(frozen=True)
class SyntheticCase:
    source: CaseSource
    lesions: list[Lesion]
    lesion_mask: npt.NDArray[np.uint8]
    # 0 = none, else 1 + the kind's index in MimicKind (``mimics.code``); all zeros without mimics.
    mimic_labels: npt.NDArray[np.uint8]
    mimics: list[Mimic] = field(default_factory=list)


@dataclass(frozen=True)
class _Atlas:
    affine: npt.NDArray[np.float64]
    gm: FloatArray
    wm: FloatArray
    csf: FloatArray


@lru_cache(maxsize=1)
def _atlas() -> _Atlas:
    # Imported here: nilearn is heavy and only the demo needs it.
    from nilearn import datasets

    template = datasets.load_mni152_template(resolution=1)
    gm = np.asarray(datasets.load_mni152_gm_template(resolution=1).dataobj, dtype=np.float32)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=1).dataobj, dtype=np.float32)
    brain = np.asarray(datasets.load_mni152_brain_mask(resolution=1).dataobj) > 0
    csf = np.clip(brain.astype(np.float32) - gm - wm, 0.0, 1.0)
    # Crop to the brain (plus a margin) so every later step touches fewer voxels.
    idx = np.argwhere(brain)
    lo = np.maximum(idx.min(axis=0) - 6, 0)
    hi = np.minimum(idx.max(axis=0) + 7, brain.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    affine = template.affine.copy()
    affine[:3, 3] += affine[:3, :3] @ lo
    return _Atlas(affine=affine, gm=gm[box], wm=wm[box], csf=csf[box])


def _smooth_field(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: float, step: int = 4
) -> FloatArray:
    """Zero-mean, unit-peak smooth random field (computed coarse, then upsampled)."""
    coarse_shape = tuple(max(s // step, 2) for s in shape)
    coarse = ndimage.gaussian_filter(rng.standard_normal(coarse_shape), sigma / step)
    coarse /= np.abs(coarse).max() + 1e-9
    zoom = [s / c for s, c in zip(shape, coarse_shape, strict=True)]
    field: FloatArray = ndimage.zoom(coarse, zoom, order=1).astype(np.float32)
    return field[tuple(slice(0, s) for s in shape)]


def _warp(
    maps: list[FloatArray], rng: np.random.Generator, amplitude_mm: float
) -> list[FloatArray]:
    """Apply one random smooth deformation (displacements up to ``amplitude_mm``) to all maps."""
    shape = maps[0].shape
    grid = np.indices(shape, dtype=np.float32)
    for axis in range(3):
        grid[axis] += amplitude_mm * _smooth_field(rng, shape, sigma=20.0)
    return [ndimage.map_coordinates(m, grid, order=1, mode="nearest") for m in maps]


def _site_masks(
    gm: FloatArray, wm: FloatArray, csf: FloatArray, affine: npt.NDArray[np.float64]
) -> dict[LesionSite, npt.NDArray[np.bool_]]:
    """Candidate lesion centres for each site, all inside white matter."""
    white = wm > 0.8
    centre = np.array(wm.shape) / 2
    coords = np.indices(wm.shape)
    central = sum(((coords[i] - centre[i]) / (wm.shape[i] * 0.22)) ** 2 for i in range(3)) < 1
    ventricles = (csf > 0.8) & central
    dist_ventricle = ndimage.distance_transform_edt(~ventricles)
    dist_cortex = ndimage.distance_transform_edt(gm < 0.5)
    world_z = affine[2, 2] * coords[2] + affine[2, 3]
    infratentorial = world_z < -22  # MNI: below the tentorium (brainstem, cerebellum)
    return {
        LesionSite.periventricular: white & (dist_ventricle <= 5) & ~infratentorial,
        LesionSite.juxtacortical: (wm > 0.6) & (dist_cortex <= 2) & ~infratentorial,
        LesionSite.deep_white_matter: white
        & (dist_ventricle > 10)
        & (dist_cortex > 5)
        & ~infratentorial,
        LesionSite.infratentorial: white & infratentorial,
    }


def _plant(
    rng: np.random.Generator,
    sites: dict[LesionSite, npt.NDArray[np.bool_]],
    wm: FloatArray,
    count: int,
) -> tuple[FloatArray, list[Lesion]]:
    """Lesion occupancy ``[X, Y, Z]`` in 0..1 (soft edges) and the lesions planted."""
    occupancy = np.zeros(wm.shape, dtype=np.float32)
    lesions: list[Lesion] = []
    weights = {
        LesionSite.periventricular: 0.45,
        LesionSite.juxtacortical: 0.2,
        LesionSite.deep_white_matter: 0.25,
        LesionSite.infratentorial: 0.1,
    }
    names = [s for s in weights if sites[s].any()]
    p = np.array([weights[s] for s in names])
    candidates = {s: np.argwhere(sites[s]) for s in names}
    for _ in range(count):
        site = names[rng.choice(len(names), p=p / p.sum())]
        centre = candidates[site][rng.integers(len(candidates[site]))]
        # Mostly small lesions, a few large confluent ones (radius in mm, 1 mm voxels).
        size = rng.choice([1.6, 2.5, 4.0, 6.5], p=[0.35, 0.35, 0.2, 0.1])
        radii = size * rng.uniform(0.7, 1.5, 3)
        if site is LesionSite.periventricular:
            radii[2] *= 1.6  # ovoid, elongated like Dawson's fingers
        half = int(np.ceil(radii.max() * 1.6)) + 2
        box = tuple(
            slice(max(int(c) - half, 0), min(int(c) + half + 1, n))
            for c, n in zip(centre, wm.shape, strict=True)
        )
        local = np.indices([b.stop - b.start for b in box], dtype=np.float32)
        offsets = [local[i] + box[i].start - centre[i] for i in range(3)]
        rotation = np.linalg.qr(rng.standard_normal((3, 3)))[0]
        radius = np.zeros(local.shape[1:], dtype=np.float32)
        for i in range(3):
            axis = sum(rotation[i, j] * offsets[j] for j in range(3))
            radius += (axis / radii[i]) ** 2
        # An irregular border: perturb the ellipsoid with smooth noise.
        wobble = 0.25 * ndimage.gaussian_filter(rng.standard_normal(radius.shape), 1.0) * 3
        blob = np.clip(1.5 - (np.sqrt(radius) + wobble), 0.0, 1.0) * (wm[box] > 0.3)
        before = int((occupancy[box] > 0.5).sum())
        occupancy[box] = np.maximum(occupancy[box], blob)
        grown = int((occupancy[box] > 0.5).sum()) - before
        if grown > 0:
            lesions.append(
                Lesion(site, tuple(int(c) for c in centre), tuple(float(r) for r in radii), grown)  # type: ignore[arg-type]
            )
    return occupancy, lesions


def synthetic_fingerprint(seed: int, lesion_count: int | None = None, mimics: bool = False) -> str:
    """The import fingerprint of a synthetic case, known without synthesising it."""
    key = f"mscrowd-synthetic-v1:{seed}:{lesion_count}" + (":mimics" if mimics else "")
    return hashlib.sha256(key.encode()).hexdigest()


def synthesize_case(
    seed: int, *, lesion_count: int | None = None, mimics: bool = False
) -> SyntheticCase:
    """One synthetic case, fully determined by ``seed`` (and whether it holds mimics)."""
    rng = np.random.default_rng(seed)
    atlas = _atlas()
    gm, wm, csf = _warp([atlas.gm, atlas.wm, atlas.csf], rng, amplitude_mm=float(rng.uniform(2, 4)))
    brain = (gm + wm + csf) > 0.3
    sites = _site_masks(gm, wm, csf, atlas.affine)
    count = lesion_count if lesion_count is not None else int(rng.integers(6, 22))
    occupancy, lesions = _plant(rng, sites, wm, count)
    lesion_mask = ((occupancy > 0.5) & brain).astype(np.uint8)
    layers: MimicLayers | None = None
    if mimics:
        # Their own generator: the lesions, bias and noise of a seed stay what they were.
        layers = plant_mimics(
            np.random.default_rng([seed, 1]), gm, wm, csf, brain, lesion_mask, atlas.affine
        )

    bias = np.exp(0.15 * _smooth_field(rng, wm.shape, sigma=40.0))
    healthy = 1.0 - occupancy
    images: dict[Contrast, nib.spatialimages.SpatialImage] = {}
    for contrast, (s_wm, s_gm, s_csf, s_lesion) in TISSUE_SIGNAL.items():
        tissue = s_wm * wm + s_gm * gm + s_csf * csf
        if layers is not None:
            tissue = layers.apply(contrast, tissue)
        signal = healthy * tissue + occupancy * s_lesion
        signal = signal * bias * 100.0
        sigma = 2.5
        noisy = np.sqrt(
            (signal + rng.normal(0, sigma, signal.shape)) ** 2
            + rng.normal(0, sigma, signal.shape) ** 2
        )
        data = np.where(brain, noisy, 0.0).astype(np.float32)
        images[contrast] = nib.Nifti1Image(data, atlas.affine)
    fingerprint = synthetic_fingerprint(seed, lesion_count, mimics)
    source = CaseSource(
        name=f"synthetic-{seed}",
        images=images,
        reference=nib.Nifti1Image(lesion_mask, atlas.affine),
        fingerprint=fingerprint,
    )
    return SyntheticCase(
        source=source,
        lesions=lesions,
        lesion_mask=lesion_mask,
        mimic_labels=layers.labels if layers is not None else np.zeros_like(lesion_mask),
        mimics=layers.mimics if layers is not None else [],
    )


# Label voxels a mimic needs in a slice to be plain to see there, per kind: a perivascular space
# is a dot of a few voxels, a cap or a ghost row covers far more.
MIN_VISIBLE_VOXELS: dict[MimicKind, int] = {
    MimicKind.perivascular_space: 3,
    MimicKind.periventricular_cap: 25,
    MimicKind.choroid_plexus: 12,
    MimicKind.flow_artefact: 20,
}


def mimic_slices(
    case: SyntheticCase, *, axis: int = 2, only: bool = False
) -> dict[MimicKind, list[int]]:
    """Per mimic kind, the slices along ``axis`` (2: axial) that show it clearly and hold no
    lesion; with ``only``, no other mimic kind either."""
    others = tuple(a for a in range(3) if a != axis)
    lesion_free = ~case.lesion_mask.any(axis=others)
    counts = {kind: (case.mimic_labels == code(kind)).sum(axis=others) for kind in KINDS}
    out: dict[MimicKind, list[int]] = {}
    for kind in KINDS:
        shown = lesion_free & (counts[kind] >= MIN_VISIBLE_VOXELS[kind])
        if only:
            for other in KINDS:
                if other is not kind:
                    shown &= counts[other] == 0
        out[kind] = [int(i) for i in np.flatnonzero(shown)]
    return out
