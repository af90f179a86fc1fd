"""One case of a release as NIfTI files, on the grid and affine its images are stored on.

Pure apart from reading storage: the volumes' bytes (images copied as stored, their gzip
header normalised), labels placed from display geometry (``fusion.volumes.place``), and every
file encoded the same way each time (fixed compression level, no time in the gzip header), so
building a release twice gives byte-identical files.
"""

import gzip
import io
from dataclasses import dataclass, field

import nibabel as nib
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from backend.imaging.preprocess import to_display

# gzip level of every file of a release: the same bytes on every build.
LEVEL = 6
# nnU-Net v2's labels of the training label: 2 marks slices no one labelled (its "ignore").
BACKGROUND, LESION, IGNORE = 0, 1, 2
# The soft label is stored as uint8: P(lesion) = value * SOFT_SCALE (scl_slope in the header).
SOFT_SCALE = 1.0 / 255.0


def gz(data: bytes) -> bytes:
    """``data`` gzipped the one way a release does it (level ``LEVEL``, mtime 0, no name)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=LEVEL, mtime=0, filename="") as f:
        f.write(data)
    return buffer.getvalue()


def normalised(stored: bytes) -> bytes:
    """A stored gzipped NIfTI file re-gzipped the release's way (its voxels and header as
    they are: exact values, no resampling)."""
    return gz(gzip.decompress(stored))


def affine_of(stored: bytes) -> NDArray[np.float64]:
    """The voxel-to-world matrix of a stored gzipped NIfTI file."""
    image = nib.Nifti1Image.from_bytes(gzip.decompress(stored))
    return np.asarray(image.affine, dtype=np.float64)


def encode(
    data: NDArray[np.generic], affine: NDArray[np.float64], *, slope: float | None = None
) -> bytes:
    """``data`` as a gzipped NIfTI-1 file on ``affine`` (uint8 stays uint8; ``slope``: the
    scale that turns stored values into the quantity, kept in the header)."""
    image = nib.Nifti1Image(np.asarray(data), affine)
    image.set_data_dtype(np.asarray(data).dtype)
    if slope is not None:
        image.header.set_slope_inter(slope, 0.0)
    return gz(image.to_bytes())


@dataclass
class CaseLabels:
    """A case's labels on its grid: P(lesion) in 1/255 steps, which slices the crowd labelled,
    the gold (expert) masks and which slices they cover, and per-rater masks."""

    soft: NDArray[np.uint8]
    labelled: NDArray[np.bool_]
    gold: NDArray[np.uint8]
    gold_slices: NDArray[np.bool_]
    raters: dict[str, NDArray[np.uint8]] = field(default_factory=dict)
    rater_slices: dict[str, NDArray[np.bool_]] = field(default_factory=dict)

    @property
    def hard(self) -> NDArray[np.uint8]:
        """The fused hard mask: P(lesion) >= 0.5."""
        return (self.soft >= 128).astype(np.uint8)

    def training(self) -> NDArray[np.uint8]:
        """nnU-Net's label: lesion where the hard mask (or gold, which wins) says so, and
        ``IGNORE`` on every slice no one labelled (partial annotation)."""
        label = self.hard.copy()
        label[:, :, self.gold_slices] = self.gold[:, :, self.gold_slices]
        label[:, :, ~(self.labelled | self.gold_slices)] = IGNORE
        return label

    def with_unlabelled(
        self, mask: NDArray[np.uint8], slices: NDArray[np.bool_]
    ) -> NDArray[np.uint8]:
        """``mask`` with ``IGNORE`` on the slices it does not cover."""
        out = mask.copy()
        out[:, :, ~slices] = IGNORE
        return out


def preview_png(
    flair: NDArray[np.floating], hard: NDArray[np.uint8], labelled: NDArray[np.bool_]
) -> bytes:
    """An overlay of the case's most lesioned labelled slice: FLAIR in grey, the fused hard
    mask's outline in orange (display orientation, radiological)."""
    counts = hard.sum(axis=(0, 1))
    candidates = np.flatnonzero(labelled)
    if candidates.size == 0:
        candidates = np.arange(hard.shape[2])
    z = int(candidates[np.argmax(counts[candidates])])
    plane = to_display(np.asarray(flair[:, :, z], dtype=np.float64))
    inside = plane[plane != 0]
    low, high = np.percentile(inside, [1, 99]) if inside.size else (0.0, 1.0)
    grey = np.clip((plane - low) / max(high - low, 1e-6), 0, 1)
    rgb = np.repeat((grey * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    mask = to_display(hard[:, :, z]).astype(bool)
    edge = mask & ~_eroded(mask)
    rgb[edge] = (255, 140, 0)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def _eroded(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    from scipy import ndimage

    return np.asarray(ndimage.binary_erosion(mask), dtype=bool)
