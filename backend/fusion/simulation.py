"""Simulated novice raters built from an expert lesion mask, for benchmarks and tests of fusion.

Real crowds do not err independently pixel by pixel; their errors are correlated, and that is
where majority vote and STAPLE part ways. Each simulated novice draws a mask from the expert
mask (3-D, 1 mm voxels, labelled slice by slice in practice) with three kinds of error:

1. Missed lesions, correlated across novices. Every lesion gets a difficulty shared by all
   novices: small lesions are harder (log-volume term) and each lesion also gets a random
   "faintness" (a shared standard-normal term, as a faint lesion is faint for everyone). A
   novice with skill ``s`` finds a lesion of difficulty ``d`` with probability
   ``sigmoid(s - d)``, so the same small, faint lesions are missed by several novices at once.
2. Boundary noise: each novice outlines the lesions they found on the level set
   ``distance < bias + smooth noise`` of the lesion's signed distance map: a personal bias
   (drawing tight or generous outlines, in voxels) plus spatially smooth noise (Gaussian
   filtered, a few voxels wide), so outlines wobble like hand-drawn ones rather than
   flickering voxel by voxel.
3. False blobs: a few private ones per novice (Poisson), small ellipsoids near the lesions
   (periventricular white matter, where the look-alikes are), and a handful of shared
   distractors (hyperintense artefacts) that each novice marks with some probability.

``novices`` returns the masks and the parameters it drew, so a benchmark can print them;
``gold_priors`` scores them on gold slices and builds their Beta priors as the platform does;
``fuse_axial`` fuses them as the platform would a project of axial-slice tasks. Pure numpy and
scipy; seeded.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from backend.fusion.crowd import CrowdSlice, Priors, crowd_staple
from backend.fusion.outlines import GoldExample, Outline, choose_outline
from backend.quality import scoring
from backend.quality.metrics import dice
from backend.quality.reliability import RaterTotals, Thresholds, reliability


@dataclass(frozen=True)
class NoviceModel:
    """How a crowd of novices errs (see the module docstring); defaults give novices whose
    own Dice against the expert is about 0.55 to 0.75 on the open MS data's lesion masks."""

    skills: tuple[float, ...] = (1.8, 2.3, 2.8, 3.3, 3.8)  # one per novice
    size_weight: float = 1.0  # difficulty per e-fold smaller than ``easy_volume``
    easy_volume: float = 30.0  # voxels; lesions this big have no size difficulty
    faintness: float = 1.0  # SD of the shared per-lesion difficulty (less for larger ones)
    bias: tuple[float, float] = (-0.6, 0.6)  # range of personal outline bias, voxels
    wobble: float = 0.9  # SD of the smooth outline noise, voxels
    wobble_width: float = 2.0  # its correlation length (Gaussian sigma), voxels
    private_blobs: tuple[float, ...] = (3.0, 2.0, 1.5, 1.0, 0.5)  # mean false blobs, per novice
    distractors: int = 3  # shared look-alikes
    distractor_rate: float = 0.3  # chance a novice marks each
    blob_radius: tuple[float, float] = (1.0, 2.5)  # voxels
    blob_distance: tuple[int, int] = (4, 20)  # from the nearest lesion, voxels
    # Each novice's own Dice against the expert: their outline noise is scaled (bias and
    # wobble together) until their mask has it, when misses and blobs allow; None: as drawn.
    target_dice: tuple[float, ...] | None = (0.57, 0.61, 0.65, 0.69, 0.73)


@dataclass(frozen=True)
class Crowd:
    masks: NDArray[np.bool_]  # [novices, *shape]
    found: NDArray[np.bool_]  # [novices, lesions]: which lesions each novice outlined
    difficulty: NDArray[np.float64]  # [lesions]
    lesion_volumes: NDArray[np.int64]  # [lesions] voxels


def _signed_distance(mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Negative inside, positive outside, in voxels (0.5 at the first voxel outside)."""
    outside: NDArray[np.float64] = ndimage.distance_transform_edt(~mask)
    inside: NDArray[np.float64] = ndimage.distance_transform_edt(mask)
    return outside - inside + np.where(mask, 0.5, -0.5)


def _blob(
    shape: tuple[int, ...], centre: NDArray[np.int64], radius: NDArray[np.float64]
) -> tuple[tuple[slice, ...], NDArray[np.bool_]]:
    """An axis-aligned ellipsoid: the box it lies in and its voxels there."""
    lo = np.maximum(centre - np.ceil(radius).astype(int), 0)
    hi = np.minimum(centre + np.ceil(radius).astype(int) + 1, shape)
    grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radius, strict=True))
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True)), np.asarray(inside <= 1.0)


class _Outline:
    """A novice's drawing of the lesions they found (``kept``): the level set ``distance <
    sloppiness * offset`` near them, their core always, and their false blobs."""

    def __init__(
        self, kept: NDArray[np.bool_], offset: NDArray[np.float64], false: NDArray[np.bool_]
    ) -> None:
        self.distance = _signed_distance(kept) if kept.any() else None
        self.offset = offset
        self.reach = ndimage.binary_dilation(kept, iterations=4)  # no bleeding elsewhere
        self.core = ndimage.binary_erosion(kept, iterations=2)
        self.false = false

    def draw(self, sloppiness: float) -> NDArray[np.bool_]:
        if self.distance is None:
            return self.false
        outline = self.distance < sloppiness * self.offset
        drawn: NDArray[np.bool_] = (outline & self.reach) | self.core | self.false
        return drawn


def _calibrate(
    draw: Callable[[float], NDArray[np.bool_]], truth: NDArray[np.bool_], target: float
) -> float:
    """The outline sloppiness (a scale of bias and wobble, 0 to 4) at which ``draw``'s Dice
    against ``truth`` is closest to ``target``, by bisection (Dice falls as it grows)."""
    low, high = 0.0, 4.0
    if dice(truth, draw(low)) <= target:
        return low  # misses and blobs alone already bring the Dice down to the target
    for _ in range(12):
        middle = (low + high) / 2
        low, high = (middle, high) if dice(truth, draw(middle)) > target else (low, middle)
    return (low + high) / 2


def novices(expert: NDArray[np.bool_], model: NoviceModel | None = None, seed: int = 0) -> Crowd:
    """Novice masks drawn from ``expert`` (see the module docstring)."""
    model = model or NoviceModel()
    rng = np.random.default_rng(seed)
    expert = np.asarray(expert, dtype=bool)
    if not expert.any():
        raise ValueError("the expert mask is empty: nothing to miss or outline")
    structure = ndimage.generate_binary_structure(expert.ndim, 2)  # 18-connectivity in 3-D
    labels, count = ndimage.label(expert, structure=structure)
    volumes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    smallness = np.maximum(model.easy_volume / volumes, 1.0)
    # Faint matters less the larger the lesion: a large one is seen even when faint.
    difficulty = model.size_weight * np.log(smallness) + model.faintness * np.sqrt(
        np.minimum(volumes / model.easy_volume, 1.0)
    ) * rng.standard_normal(count)
    # Work inside the lesions' bounding box, grown to hold the blobs and the outlines.
    margin = model.blob_distance[1] + 4
    coords = np.argwhere(expert)
    lo = np.maximum(coords.min(axis=0) - margin, 0)
    hi = np.minimum(coords.max(axis=0) + margin + 1, expert.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    local = labels[box]
    distance_to_lesion = ndimage.distance_transform_edt(local == 0)
    near = (distance_to_lesion >= model.blob_distance[0]) & (
        distance_to_lesion <= model.blob_distance[1]
    )
    candidates = np.argwhere(near)
    shape = local.shape
    # Outline noise grows with the lesion outlined (a hand-drawn outline is off by a share of
    # the lesion's size, not by a fixed number of voxels): half the equivalent radius of the
    # nearest lesion, from 0.5 to 4.
    radius = np.cbrt(3 * volumes / (4 * np.pi))
    scale_of = np.concatenate([[1.0], np.clip(radius / 2, 0.5, 4.0)])
    nearest = ndimage.distance_transform_edt(local == 0, return_indices=True)[1]
    scale = scale_of[local[tuple(nearest)]]

    def place_blob() -> tuple[tuple[slice, ...], NDArray[np.bool_]]:
        centre = candidates[rng.integers(len(candidates))]
        radius = rng.uniform(*model.blob_radius, size=len(shape))
        return _blob(shape, centre, radius)

    shared = [place_blob() for _ in range(model.distractors)]
    masks = np.zeros((len(model.skills), *expert.shape), dtype=bool)
    found = np.zeros((len(model.skills), count), dtype=bool)
    for k, skill in enumerate(model.skills):
        found[k] = rng.random(count) < 1.0 / (1.0 + np.exp(-(skill - difficulty)))
        kept = np.isin(local, np.flatnonzero(found[k]) + 1)
        false = np.zeros(shape, dtype=bool)
        blobs = [place_blob() for _ in range(rng.poisson(model.private_blobs[k]))]
        blobs += [b for b in shared if rng.random() < model.distractor_rate]
        for where, blob in blobs:
            false[where] |= blob
        noise = ndimage.gaussian_filter(rng.standard_normal(shape), model.wobble_width)
        noise /= max(float(noise.std()), 1e-12)
        offset = (rng.uniform(*model.bias) + model.wobble * noise) * scale
        outline = _Outline(kept, offset, false)
        target = None if model.target_dice is None else model.target_dice[k]
        sloppiness = 1.0 if target is None else _calibrate(outline.draw, local > 0, target)
        masks[k][box] = outline.draw(sloppiness)
    return Crowd(masks=masks, found=found, difficulty=difficulty, lesion_volumes=volumes)


@dataclass(frozen=True)
class FusedVolume:
    """A simulated crowd's masks fused the way the platform fuses a project."""

    fused: NDArray[np.bool_]  # the hard label the platform stores
    posterior: NDArray[np.bool_]  # crowd STAPLE's own hard label
    outline: Outline  # the rule the gold slices chose
    scores: dict[str, float]  # each rule's mean Dice on the gold slices


def gold_slices(masks: NDArray[np.bool_], gold_every: int = 10) -> list[int]:
    """The axial slices of novices' masks [K, X, Y, Z] taken as gold: every
    ``gold_every``-th of those anyone marked."""
    axial = [z for z in range(masks.shape[3]) if masks[..., z].any()]
    return axial[::gold_every]


def gold_priors(
    masks: NDArray[np.bool_],
    expert: NDArray[np.bool_],
    brain: NDArray[np.bool_] | None,
    gold_every: int = 10,
) -> dict[int, Priors]:
    """Each novice's (by index) Beta priors as the platform builds them: every gold slice's
    answer scored against the expert inside the ``brain`` [X, Y, Z] (``scoring.score``,
    ``scoring.add_gold``), the totals' posteriors (``reliability``) as
    ``quality.service.rater_priors`` makes them."""
    limits = Thresholds()
    totals = [RaterTotals() for _ in range(masks.shape[0])]
    for z in gold_slices(masks, gold_every):
        region = None if brain is None else brain[..., z]
        for k, mask in enumerate(masks):
            found = scoring.score(expert[..., z], mask[..., z], region)
            totals[k] = scoring.add_gold(totals[k], found, None, limits)
    rates = [reliability(t) for t in totals]
    return {k: Priors(r.sensitivity, r.specificity) for k, r in enumerate(rates)}


def fuse_axial(
    masks: NDArray[np.bool_],
    expert: NDArray[np.bool_],
    gold_every: int = 10,
    *,
    priors: dict[int, Priors] | None = None,
    brain: NDArray[np.bool_] | None = None,
    rescale_priors: bool = True,
) -> FusedVolume:
    """Fuse novices' 3-D masks [K, X, Y, Z] as a project of axial-slice tasks: crowd STAPLE
    pools each novice's rates over every slice anyone marked (with ``priors`` by novice, e.g.
    ``gold_priors``, counted inside ``brain`` [X, Y, Z]; ``rescale_priors`` as in
    ``crowd_staple``), and every ``gold_every``-th of those slices (the expert's mask known
    there, as for the platform's gold slices) chooses the outline rule
    (``outlines.choose_outline``)."""
    axial = [z for z in range(masks.shape[3]) if masks[..., z].any()]
    raters = list(range(masks.shape[0]))
    slices = [
        CrowdSlice(raters, masks[..., z], None if brain is None else int(brain[..., z].sum()))
        for z in axial
    ]
    result = crowd_staple(slices, priors=priors, rescale_priors=rescale_priors)
    gold = [
        GoldExample(result.posterior(n), result.share(n), expert[..., z])
        for n, z in enumerate(axial)
        if n % gold_every == 0
    ]
    outline, scores = choose_outline(gold)
    fused = np.zeros(masks.shape[1:], dtype=bool)
    posterior = np.zeros(masks.shape[1:], dtype=bool)
    for n, z in enumerate(axial):
        fused[..., z] = result.fused(n, outline) >= 0.5
        posterior[..., z] = result.posterior(n) >= 0.5
    return FusedVolume(fused, posterior, outline, scores)
