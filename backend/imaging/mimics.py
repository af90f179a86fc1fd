"""Lesion mimics for the synthetic demo: what a volunteer must learn to leave unlabelled.

Expert raters leave out of an MS lesion mask enlarged perivascular spaces, the mild periventricular
signal of ependymal loss and gliosis, the choroid plexus and imaging artefacts (McKinley et al.,
Sci Rep 2021: most of an algorithm's "missed" lesions were such mislabels). Each is planted into
the warped tissue maps with soft edges like the lesions, away from them (never in the lesion
mask), and is recorded in a label volume so lessons can find and score them.

- Perivascular spaces: short CSF-filled tubes 1.5-3 mm wide along the vessels, in the basal
  ganglia (lenticulostriate arteries, mostly vertical) and the centrum semiovale (medullary
  vessels, roughly radial): CSF signal, so dark on FLAIR and T1, bright on T2.
- Periventricular caps and bands: a smooth rim of mildly raised FLAIR and T2 signal, a few mm
  thick over the frontal and occipital horns (caps), 1-2 mm along the bodies (band), the same
  on both sides.
- Choroid plexus: a lumpy glomus inside the atrium of each lateral ventricle, in CSF; on FLAIR
  about as bright as white matter against the nulled CSF around it, intermediate on T1, a little
  darker than CSF on T2.
- Flow artefact: pulsation ghosts of a vessel stripped with the skull, a row of equally spaced
  faint bright copies along the phase-encoding axis that cross tissue boundaries; FLAIR only
  (each contrast is its own acquisition, so its ghosts fall elsewhere or not at all).
"""

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from backend.imaging.models import Contrast

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
Box = tuple[slice, slice, slice]


class MimicKind(StrEnum):
    perivascular_space = "perivascular_space"
    periventricular_cap = "periventricular_cap"
    choroid_plexus = "choroid_plexus"
    flow_artefact = "flow_artefact"


KINDS = list(MimicKind)

# Relative signal each mimic takes per contrast (tissue signals are in synthetic.TISSUE_SIGNAL:
# WM, GM, CSF, lesion = FLAIR 0.55, 0.70, 0.10, 1.15; T1 0.90, 0.60, 0.15, 0.45; T2 0.40, 0.60,
# 1.00, 0.85). Perivascular spaces hold CSF; caps sit between white matter and lesion.
MIMIC_SIGNAL: dict[Contrast, dict[MimicKind, float]] = {
    Contrast.flair: {
        MimicKind.perivascular_space: 0.10,
        MimicKind.periventricular_cap: 0.85,
        MimicKind.choroid_plexus: 0.75,
    },
    Contrast.t1: {
        MimicKind.perivascular_space: 0.15,
        MimicKind.periventricular_cap: 0.82,
        MimicKind.choroid_plexus: 0.55,
    },
    Contrast.t2: {
        MimicKind.perivascular_space: 1.00,
        MimicKind.periventricular_cap: 0.55,
        MimicKind.choroid_plexus: 0.75,
    },
}
# Peak signal a flow ghost adds, per contrast (see the module docstring: FLAIR only).
GHOST_AMPLITUDE: dict[Contrast, float] = {Contrast.flair: 0.22, Contrast.t1: 0.0, Contrast.t2: 0.0}


@dataclass(frozen=True)
class Mimic:
    kind: MimicKind
    centre: tuple[int, int, int]
    voxels: int


@dataclass
class MimicLayers:
    """Everything the mimics add to a case: soft occupancy ``[X, Y, Z]`` with its owning kind
    (code ``1 + index`` in ``MimicKind``), an additive ghost field, and the label volume."""

    occupancy: FloatArray
    owner: npt.NDArray[np.uint8]
    ghost: FloatArray
    labels: npt.NDArray[np.uint8]
    mimics: list[Mimic] = field(default_factory=list)

    def apply(self, contrast: Contrast, tissue: FloatArray) -> FloatArray:
        """``tissue`` (healthy signal ``[X, Y, Z]``) with the mimics mixed in by occupancy."""
        lut = np.zeros(len(KINDS) + 1, dtype=np.float32)
        for kind, value in MIMIC_SIGNAL[contrast].items():
            lut[code(kind)] = value
        mixed: FloatArray = tissue + self.occupancy * (lut[self.owner] - tissue)
        if GHOST_AMPLITUDE[contrast]:
            mixed += np.float32(GHOST_AMPLITUDE[contrast]) * self.ghost
        return mixed


def code(kind: MimicKind) -> int:
    """A kind's value in the label volume (0 means no mimic)."""
    return KINDS.index(kind) + 1


def _box(centre: npt.ArrayLike, half: int, shape: tuple[int, ...]) -> Box:
    c = np.asarray(centre, dtype=int)
    return _bounds(np.maximum(c - half, 0), np.minimum(c + half + 1, shape))


def _bounds(lo: npt.ArrayLike, hi: npt.ArrayLike) -> Box:
    """The box ``[lo, hi)`` along each axis."""
    a, b = np.asarray(lo, dtype=int), np.asarray(hi, dtype=int)
    return (slice(int(a[0]), int(b[0])), slice(int(a[1]), int(b[1])), slice(int(a[2]), int(b[2])))


def _offsets(box: Box, centre: npt.ArrayLike) -> list[FloatArray]:
    """Per axis, each voxel of ``box`` minus ``centre`` (in voxels, 1 mm)."""
    c = np.asarray(centre, dtype=np.float32)
    local = np.indices([b.stop - b.start for b in box], dtype=np.float32)
    return [local[i] + box[i].start - c[i] for i in range(3)]


def _tube(
    offsets: list[FloatArray], direction: FloatArray, half_length: float, radius: float
) -> FloatArray:
    """Soft occupancy of a capsule (a tube with round ends) along unit ``direction``."""
    along = np.clip(
        sum(o * u for o, u in zip(offsets, direction, strict=True)), -half_length, half_length
    )
    dist = np.sqrt(sum((o - along * u) ** 2 for o, u in zip(offsets, direction, strict=True)))
    out: FloatArray = np.clip(1.5 - dist / radius, 0.0, 1.0).astype(np.float32)
    return out


def _world(affine: npt.NDArray[np.float64], shape: tuple[int, ...], axis: int) -> FloatArray:
    """World (MNI, mm) coordinate along one axis of an axis-aligned grid, broadcastable."""
    world = (affine[axis, axis] * np.arange(shape[axis]) + affine[axis, 3]).astype(np.float32)
    view = [1, 1, 1]
    view[axis] = -1
    out: FloatArray = world.reshape(view)
    return out


def _lateral_ventricles(csf: FloatArray, affine: npt.NDArray[np.float64]) -> list[BoolArray]:
    """The two lateral ventricles (CSF of the central brain above the midbrain), right first."""
    shape = csf.shape
    centre = np.array(shape) / 2
    coords = np.ogrid[: shape[0], : shape[1], : shape[2]]
    central = sum(((coords[i] - centre[i]) / (shape[i] * 0.22)) ** 2 for i in range(3)) < 1
    x, z = _world(affine, shape, 0), _world(affine, shape, 2)
    ventricles = (csf > 0.8) & central & (z > -6)
    labels, n = ndimage.label(ventricles)
    index = range(1, n + 1)
    sizes = ndimage.sum(ventricles, labels, index)
    centres = ndimage.center_of_mass(ventricles, labels, index)
    # The third ventricle and the cisterns sit on the midline; the lateral ventricles either side.
    sides = [
        (float(c[0] * affine[0, 0] + affine[0, 3]), i)
        for i, s, c in zip(index, sizes, centres, strict=True)
        if s >= 1000 and abs(c[0] * affine[0, 0] + affine[0, 3]) >= 5
    ]
    if len(sides) == 2:
        return [labels == i for _, i in sorted(sides, reverse=True)]
    # A warp joined them: split the supratentorial CSF by hemisphere instead.
    upper = ventricles & (z > 2)
    return [upper & (x >= 3), upper & (x <= -3)]


def _middle(mask: BoolArray) -> tuple[int, int, int]:
    """The voxel of ``mask`` nearest its centroid (a centroid may fall outside, as in a rim)."""
    idx = np.argwhere(mask)
    x, y, z = idx[np.argmin(((idx - idx.mean(axis=0)) ** 2).sum(axis=1))]
    return int(x), int(y), int(z)


def _claim(
    layers: MimicLayers, kind: MimicKind, box: Box, occ: FloatArray, free: BoolArray
) -> Mimic | None:
    """Add ``occ`` (soft occupancy over ``box``) where ``free``; record it when it shows."""
    occ = np.where(free[box] & (layers.occupancy[box] == 0), occ, 0.0).astype(np.float32)
    label = occ > 0.5
    if not label.any():
        return None
    layers.occupancy[box] = np.maximum(layers.occupancy[box], occ)
    layers.owner[box][occ > 0] = code(kind)
    layers.labels[box][label] = code(kind)
    x, y, z = _middle(label)
    return Mimic(kind, (x + box[0].start, y + box[1].start, z + box[2].start), int(label.sum()))


def _caps(
    rng: np.random.Generator,
    layers: MimicLayers,
    wm: FloatArray,
    ventricles: list[BoolArray],
    free: BoolArray,
) -> None:
    """A smooth rim around each lateral ventricle: thick over the horns (caps), thin along the
    body (band); one thickness for both sides, as caps are symmetric."""
    band, cap = float(rng.uniform(1.3, 2.0)), float(rng.uniform(4.0, 6.0))
    margin = int(np.ceil(cap)) + 2
    for ventricle in ventricles:
        idx = np.argwhere(ventricle)
        if idx.size == 0:
            continue
        lo = np.maximum(idx.min(axis=0) - margin, 0)
        box = _bounds(lo, np.minimum(idx.max(axis=0) + margin + 1, ventricle.shape))
        dist, nearest = ndimage.distance_transform_edt(~ventricle[box], return_indices=True)
        local_y = np.indices(dist.shape)[1]
        # Where along the ventricle (0 = occipital tip, 1 = frontal tip) the nearest wall is,
        # and whether the rim faces forwards or backwards from it.
        y_lo, y_hi = idx[:, 1].min() - lo[1], idx[:, 1].max() - lo[1]
        along = (nearest[1] - y_lo) / max(y_hi - y_lo, 1)
        facing = (local_y - nearest[1]) / np.maximum(dist, 1e-6)
        front = np.clip((along - 0.6) / 0.3, 0, 1) * np.clip(facing, 0, 1)
        back = np.clip((0.4 - along) / 0.3, 0, 1) * np.clip(-facing, 0, 1)
        thickness = band + (cap - band) * np.maximum(front, back)
        # Fading outwards from the wall, with no edge of its own (unlike a lesion).
        occ = (
            np.clip((thickness + 1.0 - dist) / thickness, 0.0, 1.0)
            * (dist > 0)
            * np.clip((wm[box] - 0.3) / 0.4, 0, 1)
        )
        for part in (front > 0.5, back > 0.5, (front <= 0.5) & (back <= 0.5)):
            mimic = _claim(
                layers, MimicKind.periventricular_cap, box, np.where(part, occ, 0.0), free
            )
            if mimic is not None:
                layers.mimics.append(mimic)


def _quiet_around(quiet: BoolArray, z: int, reach: int) -> int:
    """How many axial slices within ``reach`` of ``z`` hold no lesion."""
    return int(quiet[max(z - reach, 0) : z + reach + 1].sum())


def _choroid(
    rng: np.random.Generator,
    layers: MimicLayers,
    csf: FloatArray,
    ventricles: list[BoolArray],
    free: BoolArray,
    quiet: BoolArray,
) -> None:
    """A lumpy glomus in the atrium (the back of the ventricle, where it is widest) of each
    side, at a level with the fewest lesions where the atrium allows."""
    for ventricle in ventricles:
        idx = np.argwhere(ventricle)
        if idx.size == 0:
            continue
        y_lo, y_hi = idx[:, 1].min(), idx[:, 1].max()
        back = idx[idx[:, 1] < y_lo + 0.4 * (y_hi - y_lo)]
        lo = back.min(axis=0)
        depth = ndimage.distance_transform_edt(ventricle[_bounds(lo, back.max(axis=0) + 1)])
        deep = np.argwhere(depth >= 0.6 * depth.max())
        calm = [_quiet_around(quiet, int(z + lo[2]), 4) for z in deep[:, 2]]
        best = deep[np.lexsort((-depth[tuple(deep.T)], -np.array(calm)))[0]]
        centre = best + lo
        box = _box(centre, 8, csf.shape)
        occ = np.zeros([b.stop - b.start for b in box], dtype=np.float32)
        for _ in range(int(rng.integers(4, 8))):
            lump = centre + rng.normal(0.0, 2.0, 3)
            radius = float(rng.uniform(1.8, 3.0))
            dist = np.sqrt(sum(o**2 for o in _offsets(box, lump)))
            occ = np.maximum(occ, np.clip(1.5 - dist / radius, 0.0, 1.0))
        # It floats in CSF: fade it out where the ventricle ends.
        occ *= np.clip((csf[box] - 0.6) / 0.3, 0.0, 1.0)
        mimic = _claim(layers, MimicKind.choroid_plexus, box, occ, free & (csf > 0.75))
        if mimic is not None:
            layers.mimics.append(mimic)


def _perivascular(
    rng: np.random.Generator,
    layers: MimicLayers,
    gm: FloatArray,
    wm: FloatArray,
    csf: FloatArray,
    affine: npt.NDArray[np.float64],
    ventricles: list[BoolArray],
    free: BoolArray,
    quiet: BoolArray,
) -> None:
    """Short tubes in the basal ganglia (mostly vertical) and the centrum semiovale (radial),
    half of them on slices without lesions where there are such."""
    shape = wm.shape
    x, y, z = (_world(affine, shape, a) for a in range(3))
    basal = (gm > 0.35) & (wm > 0.15) & (csf < 0.05) & (np.abs(x) >= 12) & (np.abs(x) <= 28)
    basal &= (y >= -15) & (y <= 15) & (z >= -6) & (z <= 10)
    core = ndimage.binary_erosion(wm > 0.8, iterations=4)
    near_ventricle = ndimage.binary_dilation(ventricles[0] | ventricles[1], iterations=6)
    semiovale = core & ~near_ventricle & (z >= 22) & (z <= 50)
    brain_centre = np.argwhere(ventricles[0] | ventricles[1]).mean(axis=0)
    # Kept apart from each other so each reads as its own dot or line.
    apart = free.copy()
    for region, vertical in ((basal, True), (semiovale, False)):
        candidates = np.argwhere(region & free)
        if candidates.size == 0:
            continue
        calm = candidates[quiet[candidates[:, 2]]]
        wanted, planted = int(rng.integers(4, 8)), 0
        for _ in range(wanted * 15):
            if planted == wanted:
                break
            pool = calm if planted < wanted // 2 and len(calm) else candidates
            centre = pool[rng.integers(len(pool))]
            if vertical:
                direction = np.array([0.0, 0.0, 1.0]) + rng.normal(0.0, 0.25, 3)
            else:
                direction = (centre - brain_centre) + rng.normal(0.0, 4.0, 3)
            unit: FloatArray = (direction / np.linalg.norm(direction)).astype(np.float32)
            half_length = float(rng.uniform(2.0, 6.0))
            radius = float(rng.uniform(0.8, 1.5))
            box = _box(centre, int(np.ceil(half_length + 2 * radius)) + 1, shape)
            occ = _tube(_offsets(box, centre), unit, half_length, radius)
            if not apart[box][occ > 0].all():
                continue
            mimic = _claim(layers, MimicKind.perivascular_space, box, occ, free)
            if mimic is not None:
                layers.mimics.append(mimic)
                planted += 1
                apart[box] &= ~ndimage.binary_dilation(occ > 0, iterations=2)


def _ghosts(
    rng: np.random.Generator,
    layers: MimicLayers,
    brain: BoolArray,
    affine: npt.NDArray[np.float64],
    free: BoolArray,
    quiet: BoolArray,
) -> None:
    """A row of equally spaced pulsation ghosts along the phase-encoding axis (x or y), at a
    level without lesions where there is one."""
    shape = brain.shape
    phase = int(rng.integers(2))
    spacing = float(rng.uniform(12.0, 18.0))
    radius, half_height = float(rng.uniform(2.0, 3.0)), float(rng.uniform(4.0, 7.0))
    z_world = _world(affine, shape, 2).ravel()
    levels = np.flatnonzero((z_world >= 22) & (z_world <= 45))
    # Levels with the most slices free of lesions, then of other mimics, so that a lesson finds
    # the row on its own.
    reach = int(np.ceil(half_height * 1.5))
    bare = quiet & ~np.any(layers.labels, axis=(0, 1))
    calm = np.array(
        [(_quiet_around(quiet, z, reach), _quiet_around(bare, z, reach)) for z in levels.tolist()]
    )
    top = calm[np.lexsort((calm[:, 1], calm[:, 0]))[-1]]
    levels = levels[(calm == top).all(axis=1)]
    best: tuple[tuple[int, int], list[tuple[float, Box, FloatArray]]] = ((0, 0), [])
    # Vessel positions are tried until a whole row lands in brain, clear of lesions and mimics.
    for _ in range(60):
        z = int(rng.choice(levels))
        # The row runs across the brain's middle, at a random height in the other direction.
        across = np.flatnonzero(brain[:, :, z].any(axis=phase))
        if across.size == 0:
            continue
        low, high = np.percentile(across, [20, 80]).astype(int)
        at = int(rng.integers(low, high + 1))
        line = np.flatnonzero(brain[:, at, z] if phase == 0 else brain[at, :, z])
        if line.size == 0:
            continue
        start = float(line.min()) - rng.uniform(2.0, spacing)
        copies: list[tuple[float, Box, FloatArray]] = []
        clean = 0
        for k in range(1, 16):
            centre = np.array([at, at, z], dtype=np.float32)
            centre[phase] = start + k * spacing
            if centre[phase] > line.max():
                break
            box = _box(np.round(centre), int(np.ceil(max(radius, half_height) * 1.5)) + 1, shape)
            o = _offsets(box, centre)
            scaled = np.sqrt(
                (o[0] / radius) ** 2 + (o[1] / radius) ** 2 + (o[2] / half_height) ** 2
            )
            occ = np.clip(1.5 - scaled, 0.0, 1.0).astype(np.float32)
            if brain[box][occ > 0].mean() < 0.95:
                continue  # at the brain's edge: stripped with the skull
            clean += int(free[box][occ > 0].all())
            copies.append((0.93 ** len(copies), box, occ))
        score = (clean, len(copies)) if len(copies) >= 4 else (0, 0)
        if score > best[0]:
            best = (score, copies)
            if clean == len(copies):
                break
    labelled = np.zeros(shape, dtype=bool)
    for weight, box, occ in best[1]:
        keep = free[box] & (layers.occupancy[box] == 0)
        layers.ghost[box] = np.maximum(layers.ghost[box], np.where(keep, weight * occ, 0.0))
        labelled[box] |= keep & (occ > 0.5)
    layers.labels[labelled] = code(MimicKind.flow_artefact)
    if labelled.any():
        layers.mimics.append(Mimic(MimicKind.flow_artefact, _middle(labelled), int(labelled.sum())))


def plant_mimics(
    rng: np.random.Generator,
    gm: FloatArray,
    wm: FloatArray,
    csf: FloatArray,
    brain: BoolArray,
    lesion_mask: npt.NDArray[np.uint8],
    affine: npt.NDArray[np.float64],
) -> MimicLayers:
    """Every mimic kind (several perivascular spaces) planted in tissue maps ``[X, Y, Z]``, at
    least two voxels from any lesion."""
    shape = wm.shape
    layers = MimicLayers(
        occupancy=np.zeros(shape, dtype=np.float32),
        owner=np.zeros(shape, dtype=np.uint8),
        ghost=np.zeros(shape, dtype=np.float32),
        labels=np.zeros(shape, dtype=np.uint8),
    )
    # Two voxels clear: a lesion's soft edge reaches about one voxel past its mask.
    free = brain & ~ndimage.binary_dilation(lesion_mask > 0, iterations=2)
    # Axial slices without a lesion: lessons need mimics there (``synthetic.mimic_slices``).
    quiet: BoolArray = ~np.any(lesion_mask, axis=(0, 1))
    ventricles = _lateral_ventricles(csf, affine)
    _caps(rng, layers, wm, ventricles, free)
    _choroid(rng, layers, csf, ventricles, free, quiet)
    _perivascular(rng, layers, gm, wm, csf, affine, ventricles, free, quiet)
    taken = ndimage.binary_dilation(layers.occupancy > 0, iterations=2)
    _ghosts(rng, layers, brain, affine, free & ~taken, quiet)
    # Soft edges cut off from their labelled core (by a lesion's margin, by partial volume) would
    # be faint marks that no label accounts for: keep only those next to a labelled voxel.
    near = ndimage.binary_dilation(layers.labels > 0, iterations=2)
    layers.occupancy *= near
    layers.ghost *= near
    return layers
