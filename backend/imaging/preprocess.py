"""From NIfTI volumes to the 8-bit slice images volunteers label. Pure: no database, no storage.

Conventions, used everywhere in mscrowd:
- Volumes are reoriented to RAS (``nibabel.as_closest_canonical``): array axes are
  ``[x: left->right, y: posterior->anterior, z: inferior->superior]``.
- Every contrast and the reference mask are resampled onto the FLAIR grid, in world space.
- One crop box per case, ``[x0, x1) x [y0, y1)``: the brain's bounding box plus a margin.
- A slice image is the cropped axial plane in radiological display: anterior at the top,
  the patient's right on the viewer's left. Shape ``[H, W] = [y1 - y0, x1 - x0]``. Masks that
  volunteers paint use the same geometry; ``from_display`` maps them back to volume axes.
"""

import gzip
import io
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nibabel as nib
import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
from PIL import Image
from scipy import ndimage

from backend.core.errors import InvalidInput
from backend.imaging.models import Contrast, SliceAxis
from backend.imaging.register import RegistrationFailed, register_rigid, resample, to_sitk

FloatArray = npt.NDArray[np.float32]
ByteArray = npt.NDArray[np.uint8]
BoolArray = npt.NDArray[np.bool_]

G = TypeVar("G", bound=np.generic)

SHOWN_CONTRASTS = (Contrast.flair, Contrast.t1, Contrast.t2)


class InvalidCase(InvalidInput):
    """A case that cannot be imported: unreadable, inconsistent or without brain."""


@dataclass(frozen=True)
class CaseSource:
    """A case as loaded from disk (or synthesised), before any processing."""

    name: str  # for messages only; never stored
    images: dict[Contrast, nib.spatialimages.SpatialImage]  # FLAIR required
    reference: nib.spatialimages.SpatialImage | None
    fingerprint: str  # SHA-256 of the source content; makes import idempotent
    # A DICOM study's de-identification report (``imaging.deid``: counts, never values).
    report: dict[str, Any] | None = None
    # Per contrast, the dataset's transform into the FLAIR's space (``imaging.register``);
    # ``register``: contrasts without one are registered to the FLAIR (raw clinical scans).
    transforms: dict[Contrast, Any] = field(default_factory=dict)
    register: bool = False
    # A brain mask for a scan that still shows skull (and perhaps face): nothing outside it,
    # dilated, is stored or shown.
    brain: nib.spatialimages.SpatialImage | None = None


@dataclass(frozen=True)
class SliceRender:
    index: int
    brain_fraction: float
    candidate_fraction: float
    pngs: dict[Contrast, bytes]
    reference_png: bytes | None
    reference_pixels: int | None


@dataclass
class PreparedCase:
    affine: npt.NDArray[np.float64]
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    volumes: dict[Contrast, FloatArray]
    windows: dict[Contrast, tuple[float, float]]
    reference: ByteArray | None
    crop: tuple[int, int, int, int]  # x0, y0, x1, y1
    slices: list[SliceRender] = field(default_factory=list)
    # The FLAIR's acquisition plane: the slices' plane (``PLANE_AXES`` gives the grid).
    axis: SliceAxis = SliceAxis.axial


# The stored grid of a case, by the plane its FLAIR was acquired in: slices are cut along the
# third axis, so it is the acquisition's through-plane axis and volunteers see the plane the
# scanner recorded at its native resolution. The first two are chosen so that ``to_display``
# shows each plane the usual way: axial radiological (anterior up, the patient's right on the
# viewer's left), sagittal facing left (anterior left, superior up), coronal as if facing the
# patient (their right on the viewer's left, superior up).
PLANE_AXES: dict[SliceAxis, tuple[str, str, str]] = {
    SliceAxis.axial: ("R", "A", "S"),
    SliceAxis.sagittal: ("A", "S", "R"),
    SliceAxis.coronal: ("R", "S", "A"),
}
# Through-plane spacing this much coarser than in-plane marks a 2-D acquisition; a 3-D
# (near-isotropic) acquisition is shown axially.
ANISOTROPY = 1.5


def acquisition_plane(image: nib.spatialimages.SpatialImage) -> SliceAxis:
    """The plane ``image`` was acquired in: its coarsest voxel axis, when clearly coarser
    than the others, names the world axis it runs along (L-R: sagittal, A-P: coronal, S-I:
    axial); axial for near-isotropic volumes."""
    if len(image.shape) < 3:
        return SliceAxis.axial
    zooms = np.asarray(image.header.get_zooms()[:3], dtype=np.float64)
    coarse = int(np.argmax(zooms))
    others = np.delete(zooms, coarse)
    if zooms[coarse] < ANISOTROPY * float(others.max()):
        return SliceAxis.axial
    world = int(nib.orientations.io_orientation(image.affine)[coarse, 0])
    return (SliceAxis.sagittal, SliceAxis.coronal, SliceAxis.axial)[world]


def canonical(
    image: nib.spatialimages.SpatialImage, what: str, plane: SliceAxis = SliceAxis.axial
) -> nib.Nifti1Image:
    """``image`` as a 3-D NIfTI image on the grid of ``plane`` (``PLANE_AXES``; RAS for
    axial); ``InvalidCase`` when it is not 3-D or not finite."""
    if len(image.shape) == 4 and image.shape[3] == 1:
        image = image.slicer[..., 0]
    if len(image.shape) != 3:
        raise InvalidCase(f"{what} must be a 3-D volume, got shape {tuple(image.shape)}")
    if min(image.shape) < 2:
        raise InvalidCase(f"{what} has a degenerate shape {tuple(image.shape)}")
    if not np.all(np.isfinite(image.affine)) or abs(np.linalg.det(image.affine[:3, :3])) < 1e-9:
        raise InvalidCase(f"{what} has an invalid voxel-to-world affine")
    plain = nib.Nifti1Image(np.asanyarray(image.dataobj), image.affine)
    if plane is SliceAxis.axial:
        result: nib.Nifti1Image = nib.as_closest_canonical(plain)
        return result
    own = nib.orientations.io_orientation(image.affine)
    wanted = nib.orientations.axcodes2ornt(PLANE_AXES[plane])
    reoriented: nib.Nifti1Image = plain.as_reoriented(nib.orientations.ornt_transform(own, wanted))
    return reoriented


def _to_sitk(data: npt.NDArray[np.generic], affine: npt.NDArray[np.float64]) -> sitk.Image:
    # nibabel speaks RAS, ITK speaks LPS (``register.to_sitk`` flips the first two axes).
    return to_sitk(data, affine)


def same_grid(a: nib.Nifti1Image, b: nib.Nifti1Image) -> bool:
    """Whether two images share shape and affine (no resampling needed)."""
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=1e-4)


def resample_to(
    image: nib.Nifti1Image, reference: nib.Nifti1Image, *, nearest: bool = False
) -> npt.NDArray[np.float32]:
    """``image`` resampled onto ``reference``'s grid in world space (SimpleITK), ``[X, Y, Z]``."""
    return resample(image, reference, nearest=nearest)


def brain_mask(volumes: dict[Contrast, FloatArray]) -> BoolArray:
    """Head/brain foreground ``[X, Y, Z]``: nonzero voxels for skull-stripped input, else Otsu.

    The largest connected component is kept and enclosed holes (ventricles) are filled.
    """
    flair = volumes[Contrast.flair]
    if np.mean(flair == 0) > 0.2:  # skull-stripped: background is exactly zero
        foreground = np.zeros(flair.shape, dtype=bool)
        for data in volumes.values():
            foreground |= data != 0
    else:
        threshold = sitk.OtsuThreshold(_to_sitk(flair, np.eye(4)), 0, 1)
        foreground = sitk.GetArrayFromImage(threshold).transpose(2, 1, 0).astype(bool)
    labels, count = ndimage.label(foreground)
    if count == 0:
        return foreground
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest = labels == int(np.argmax(sizes))
    filled: BoolArray = np.asarray(ndimage.binary_fill_holes(largest), dtype=bool)
    return filled


# FLAIR z-score (inside the brain) above which a voxel is a lesion candidate: MS lesions are
# hyperintense on FLAIR, normal white matter sits near the brain's mean.
HYPERINTENSE_Z = 2.0


def candidate_fractions(flair: FloatArray, brain: BoolArray) -> npt.NDArray[np.float64]:
    """Per axial slice, the share of its brain voxels whose FLAIR z-score exceeds
    ``HYPERINTENSE_Z`` (0 on slices without brain)."""
    inside = flair[brain].astype(np.float64)
    std = float(inside.std()) or 1.0
    bright = brain & (flair > float(inside.mean()) + HYPERINTENSE_Z * std)
    per_slice = brain.sum(axis=(0, 1)).astype(np.float64)
    fractions: npt.NDArray[np.float64] = np.divide(
        bright.sum(axis=(0, 1)), per_slice, out=np.zeros_like(per_slice), where=per_slice > 0
    )
    return fractions


def robust_window(
    data: FloatArray, brain: BoolArray, low: float = 0.5, high: float = 99.5
) -> tuple[float, float]:
    """Intensity window from percentiles inside the brain (ignores outliers and background)."""
    values = data[brain]
    lo, hi = np.percentile(values, [low, high]) if values.size else (0.0, 1.0)
    if hi - lo < 1e-6:
        hi = lo + 1.0
    return float(lo), float(hi)


def to_uint8(data: FloatArray, window: tuple[float, float]) -> ByteArray:
    """Map ``window`` linearly to 0..255, clipping outside it."""
    lo, hi = window
    scaled = (data.astype(np.float32) - lo) * (255.0 / (hi - lo))
    out: ByteArray = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return out


def crop_box(brain: BoolArray, margin: int) -> tuple[int, int, int, int]:
    """The brain's in-plane bounding box ``(x0, y0, x1, y1)`` plus ``margin``, half-open."""
    xs = np.flatnonzero(brain.any(axis=(1, 2)))
    ys = np.flatnonzero(brain.any(axis=(0, 2)))
    x0, x1 = max(int(xs[0]) - margin, 0), min(int(xs[-1]) + 1 + margin, brain.shape[0])
    y0, y1 = max(int(ys[0]) - margin, 0), min(int(ys[-1]) + 1 + margin, brain.shape[1])
    return x0, y0, x1, y1


def to_display(plane: npt.NDArray[G]) -> npt.NDArray[G]:
    """A ``[X, Y]`` plane of the case grid as an image ``[H=Y, W=X]``, both axes flipped:
    radiological for axial slices (anterior up), and the usual views of sagittal and coronal
    slices on their grids (``PLANE_AXES``)."""
    return np.ascontiguousarray(np.flip(plane.T, axis=(0, 1)))


def from_display(image: npt.NDArray[G]) -> npt.NDArray[G]:
    """Inverse of ``to_display``: an image ``[H, W]`` back to the plane ``[X, Y]``."""
    return np.ascontiguousarray(np.flip(image, axis=(0, 1)).T)


def encode_png(image: ByteArray) -> bytes:
    """An 8-bit greyscale PNG of ``image`` ``[H, W]``."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def encode_nifti(data: npt.NDArray[np.generic], affine: npt.NDArray[np.float64]) -> bytes:
    """A gzipped NIfTI-1 file holding ``data`` on ``affine``.

    Float volumes are stored as scaled int16 (slope and intercept in the header), as scanners
    store them: 16 bits hold far more precision than the noise, at half the size.
    """
    image = nib.Nifti1Image(data, affine)
    if np.issubdtype(data.dtype, np.floating):
        image.set_data_dtype(np.int16)
    return gzip.compress(image.to_bytes(), compresslevel=1)


def _reference_on_grid(source: CaseSource, flair: nib.Nifti1Image) -> ByteArray | None:
    if source.reference is None:
        return None
    reference = canonical(source.reference, "The lesion mask")
    raw = np.asarray(reference.dataobj)
    if not np.all(np.isfinite(raw)):
        raise InvalidCase("The lesion mask holds NaN or infinite values")
    values = np.unique(raw)
    if values.size > 2 or not np.all(np.isin(values, (0, 1, 255))):
        shown = ", ".join(f"{v:g}" for v in values[:6])
        raise InvalidCase(f"The lesion mask must be binary (0 and 1), found values {shown}")
    if same_grid(reference, flair):
        mask = raw > 0
    else:
        mask = (
            resample_to(
                nib.Nifti1Image((raw > 0).astype(np.float32), reference.affine), flair, nearest=True
            )
            > 0.5
        )
    if raw.any() and not mask.any():
        raise InvalidCase("The lesion mask does not overlap the FLAIR volume in world space")
    return mask.astype(np.uint8)


# More non-zero tissue than any brain holds (about 1.2 to 1.8 litres with its fluid): a
# head, with skull and scalp (clinical_raw's FLAIRs: 3.0 and 3.4 litres over 14 cm).
MAX_BRAIN_ML = 2000.0


def skull_stripped(flair: FloatArray, voxel_ml: float) -> bool:
    """Brain-only input: a background exactly zero over much of the volume, around no more
    tissue than a brain. A raw scan whose air was zeroed (defaced exports) holds a head."""
    foreground = flair != 0
    return bool(np.mean(~foreground) > 0.2 and foreground.sum() * voxel_ml <= MAX_BRAIN_ML)


# Share of a slice's brain a contrast must cover to be shown there.
MIN_COVERAGE = 0.5
# How far around the brain mask voxels are kept (mm): the brain's edge, never skull or face.
BRAIN_MARGIN_MM = 2.0


def _brain(
    source: CaseSource, flair: nib.Nifti1Image, volumes: dict[Contrast, FloatArray]
) -> BoolArray:
    """The brain ``[X, Y, Z]``; with a supplied mask, every volume is cleared outside it
    (dilated by ``BRAIN_MARGIN_MM``), so no skull or face is stored or rendered. A scan that
    still shows skull without a mask is refused."""
    voxel_ml = float(np.prod(flair.header.get_zooms()[:3])) / 1000.0
    if source.brain is None:
        if not skull_stripped(volumes[Contrast.flair], voxel_ml):
            raise InvalidCase(
                f"Case {source.name}: the scan still shows skull (and perhaps face), and no "
                "brain mask came with it (brain_mask.nii.gz): volunteers must see brain only"
            )
        return brain_mask(volumes)
    given = canonical(source.brain, "The brain mask")
    on_grid = resample(
        nib.Nifti1Image((np.asarray(given.dataobj) > 0).astype(np.float32), given.affine),
        flair,
        nearest=True,
    )
    brain = np.asarray(ndimage.binary_fill_holes(on_grid > 0.5), dtype=bool)
    zooms = np.asarray(flair.header.get_zooms()[:3], dtype=np.float64)
    radius = np.maximum(np.round(BRAIN_MARGIN_MM / zooms), 0).astype(int)
    kept = brain
    if radius.any():
        ball = np.ones(tuple(2 * r + 1 for r in radius), dtype=bool)
        kept = np.asarray(ndimage.binary_dilation(brain, structure=ball), dtype=bool)
    for data in volumes.values():
        data[~kept] = 0.0
    return brain


def prepare_case(
    source: CaseSource, *, margin: int = 8, min_brain_fraction: float = 0.05
) -> PreparedCase:
    """Reorient, resample, normalise, crop and render every brain-bearing axial slice."""
    if Contrast.flair not in source.images:
        raise InvalidCase(f"Case {source.name}: no FLAIR image (FLAIR is required)")
    plane = acquisition_plane(source.images[Contrast.flair])
    flair = canonical(source.images[Contrast.flair], "FLAIR", plane)
    volumes: dict[Contrast, FloatArray] = {}
    for contrast in SHOWN_CONTRASTS:
        if contrast not in source.images:
            continue
        image = (
            flair
            if contrast is Contrast.flair
            else canonical(source.images[contrast], contrast.value.upper())
        )
        transform = source.transforms.get(contrast)
        if transform is None and source.register and not same_grid(image, flair):
            try:
                transform = register_rigid(flair, image, contrast.value.upper()).transform
            except RegistrationFailed as exc:
                raise InvalidCase(f"Case {source.name}: {exc}") from exc
        if transform is not None:
            data = resample(image, flair, transform)
        elif same_grid(image, flair):
            data = np.asarray(image.dataobj, dtype=np.float32)
        else:
            data = resample_to(image, flair)
        if not np.all(np.isfinite(data)):
            raise InvalidCase(f"{contrast.value.upper()} holds NaN or infinite values")
        volumes[contrast] = data
    reference = _reference_on_grid(source, flair)

    brain = _brain(source, flair, volumes)
    if brain.sum() < 1000:
        raise InvalidCase(f"Case {source.name}: no brain found in the FLAIR image")
    windows = {c: robust_window(v, brain) for c, v in volumes.items()}
    x0, y0, x1, y1 = crop = crop_box(brain, margin)
    area = (x1 - x0) * (y1 - y0)
    zooms = flair.header.get_zooms()[:3]
    prepared = PreparedCase(
        affine=flair.affine,
        shape=(int(flair.shape[0]), int(flair.shape[1]), int(flair.shape[2])),
        spacing=(float(zooms[0]), float(zooms[1]), float(zooms[2])),
        volumes=volumes,
        windows=windows,
        reference=reference,
        crop=crop,
        axis=plane,
    )
    brain_per_slice = brain[x0:x1, y0:y1, :].sum(axis=(0, 1)) / area
    candidates = candidate_fractions(volumes[Contrast.flair], brain)
    for z in np.flatnonzero(brain_per_slice >= min_brain_fraction):
        # A contrast whose stack does not cover this slice (a thinner T1 stack) would show
        # black: it is left out here, and the studio does not offer it on this slice.
        inside = brain[:, :, z]
        pngs = {
            c: encode_png(to_display(to_uint8(v[x0:x1, y0:y1, z], windows[c])))
            for c, v in volumes.items()
            if c is Contrast.flair or np.mean(v[:, :, z][inside] != 0) >= MIN_COVERAGE
        }
        ref_png, ref_pixels = None, None
        if reference is not None:
            cut = reference[x0:x1, y0:y1, z]
            ref_png = encode_png(to_display(cut * np.uint8(255)))
            ref_pixels = int(cut.sum())
        prepared.slices.append(
            SliceRender(
                index=int(z),
                brain_fraction=float(min(brain_per_slice[z], 1.0)),
                candidate_fraction=float(candidates[z]),
                pngs=pngs,
                reference_png=ref_png,
                reference_pixels=ref_pixels,
            )
        )
    if not prepared.slices:
        raise InvalidCase(f"Case {source.name}: no axial slice holds enough brain")
    return prepared
