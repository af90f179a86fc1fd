"""Slices are cut in the FLAIR's acquisition plane at its native in-plane resolution: a 2-D
sagittal or coronal FLAIR is shown sagittally (anterior left, superior up) or coronally (the
patient's right on the viewer's left, superior up), never as blocky axial reformats."""

import io

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from backend.imaging.models import Contrast, SliceAxis
from backend.imaging.preprocess import CaseSource, acquisition_plane, prepare_case

# World (RAS, mm) extent of the synthetic head, sampled at 1 mm.
SIZE = (120, 140, 110)


def _brain_with_marker() -> tuple[np.ndarray, tuple[int, int, int]]:
    """An ellipsoid brain (skull-stripped: background exactly zero) in RAS at 1 mm, with a
    bright marker on the patient's right, anterior and superior."""
    x, y, z = np.meshgrid(*[np.arange(n) - n / 2 for n in SIZE], indexing="ij")
    brain = (x / 55) ** 2 + (y / 65) ** 2 + (z / 50) ** 2 <= 1
    data = np.where(brain, 200.0, 0.0).astype(np.float32)
    marker = (SIZE[0] // 2 + 25, SIZE[1] // 2 + 35, SIZE[2] // 2 + 25)  # right, anterior, up
    mx, my, mz = marker
    data[mx - 4 : mx + 5, my - 4 : my + 5, mz - 4 : mz + 5] = 1000.0
    return data, marker


def _acquired(data: np.ndarray, axis: int, step: int) -> nib.Nifti1Image:
    """``data`` (RAS, 1 mm) as acquired with ``step`` mm slices along world ``axis``."""
    index = [slice(None)] * 3
    index[axis] = slice(0, None, step)
    affine = np.eye(4)
    affine[axis, axis] = float(step)
    return nib.Nifti1Image(np.ascontiguousarray(data[tuple(index)]), affine)


def _marker_quadrant(prepared_png: bytes) -> tuple[str, str]:
    with Image.open(io.BytesIO(prepared_png)) as image:
        pixels = np.asarray(image.convert("L")).astype(float)
    rows, cols = np.nonzero(pixels >= pixels.max() - 1)
    vertical = "top" if rows.mean() < pixels.shape[0] / 2 else "bottom"
    horizontal = "left" if cols.mean() < pixels.shape[1] / 2 else "right"
    return vertical, horizontal


@pytest.mark.parametrize(
    ("axis", "plane", "in_plane", "expected"),
    [
        # Sagittal: anterior on the viewer's left, superior up; in-plane A x S.
        (0, SliceAxis.sagittal, (SIZE[1], SIZE[2]), ("top", "left")),
        # Coronal: the patient's right on the viewer's left, superior up; in-plane R x S.
        (1, SliceAxis.coronal, (SIZE[0], SIZE[2]), ("top", "left")),
        # Axial: radiological, anterior up and the patient's right on the viewer's left.
        (2, SliceAxis.axial, (SIZE[0], SIZE[1]), ("top", "left")),
    ],
)
def test_slices_follow_the_acquisition_plane(
    axis: int, plane: SliceAxis, in_plane: tuple[int, int], expected: tuple[str, str]
) -> None:
    data, marker = _brain_with_marker()
    flair = _acquired(data, axis, step=5)
    assert acquisition_plane(flair) is plane
    prepared = prepare_case(
        CaseSource(name="plane", images={Contrast.flair: flair}, reference=None, fingerprint="0")
    )
    assert prepared.axis is plane
    # The third axis of the stored grid is the acquisition's: as many slices as acquired
    # (those with brain), each at the native 1 mm in plane.
    assert prepared.shape[2] == flair.shape[axis]
    assert prepared.spacing[2] == pytest.approx(5.0)
    assert prepared.spacing[:2] == pytest.approx((1.0, 1.0))
    assert sorted(prepared.shape[:2]) == sorted(in_plane)
    # The slice through the marker shows it where that view puts the right, anterior and
    # superior corner.
    # (Every grid runs toward R, A or S: the marker's slice index is its world position.)
    through = round(marker[axis] / 5)
    near = [r for r in prepared.slices if abs(r.index - through) <= 1]
    render = max(
        near, key=lambda r: np.asarray(Image.open(io.BytesIO(r.pngs[Contrast.flair]))).max()
    )
    assert _marker_quadrant(render.pngs[Contrast.flair]) == expected


def test_a_near_isotropic_volume_is_shown_axially() -> None:
    data, _marker = _brain_with_marker()
    flair = nib.Nifti1Image(data, np.diag([1.0, 1.0, 1.2, 1.0]))
    assert acquisition_plane(flair) is SliceAxis.axial
