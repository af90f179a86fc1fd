"""Preprocessing: RAS reorientation, resampling onto the FLAIR grid, windows, crops, display."""

import nibabel as nib
import numpy as np
import pytest

from backend.imaging.models import Contrast
from backend.imaging.preprocess import (
    CaseSource,
    InvalidCase,
    crop_box,
    from_display,
    prepare_case,
    resample_to,
    robust_window,
    to_display,
    to_uint8,
)

SHAPE = (40, 48, 36)


def _phantom(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A skull-stripped ellipsoid 'brain' with one bright 'lesion' cube, and the lesion mask."""
    rng = np.random.default_rng(seed)
    x, y, z = np.indices(SHAPE)
    brain = ((x - 20) / 16) ** 2 + ((y - 24) / 20) ** 2 + ((z - 18) / 15) ** 2 < 1
    data = np.where(brain, 100 + rng.normal(0, 3, SHAPE), 0).astype(np.float32)
    lesion = np.zeros(SHAPE, dtype=np.uint8)
    lesion[24:28, 30:33, 16:20] = 1  # right, anterior
    data[lesion > 0] = 180
    return data, lesion


def _source(images: dict[Contrast, nib.Nifti1Image], mask: nib.Nifti1Image | None) -> CaseSource:
    return CaseSource(name="phantom", images=images, reference=mask, fingerprint="f")


def test_display_orientation_is_radiological_and_invertible() -> None:
    plane = np.zeros((4, 3), dtype=np.uint8)  # [X, Y]
    plane[3, 2] = 1  # patient's right (max x), anterior (max y)
    image = to_display(plane)
    assert image.shape == (3, 4)  # [H=Y, W=X]
    assert image[0, 0] == 1  # shown top-left: anterior up, patient's right on the viewer's left
    assert np.array_equal(from_display(image), plane)


def test_orientation_of_the_file_does_not_change_the_slices() -> None:
    data, lesion = _phantom()
    ras = np.diag([1.0, 1.0, 1.0, 1.0])
    ras[:3, 3] = [-20, -24, -18]
    # The same head stored left-right flipped (LAS), as many scanners write it: voxel i of
    # the flipped array lies where voxel (n - 1 - i) of the RAS array lies.
    las = ras.copy()
    las[0, 0] = -1.0
    las[0, 3] = ras[0, 3] + (SHAPE[0] - 1)
    a = prepare_case(
        _source({Contrast.flair: nib.Nifti1Image(data, ras)}, nib.Nifti1Image(lesion, ras))
    )
    b = prepare_case(
        _source(
            {Contrast.flair: nib.Nifti1Image(data[::-1].copy(), las)},
            nib.Nifti1Image(lesion[::-1].copy(), las),
        )
    )
    assert [s.index for s in a.slices] == [s.index for s in b.slices]
    assert a.crop == b.crop
    for sa, sb in zip(a.slices, b.slices, strict=True):
        assert sa.pngs == sb.pngs
        assert sa.reference_png == sb.reference_png
    assert np.allclose(a.affine, b.affine)


def test_other_contrasts_are_resampled_onto_the_flair_grid() -> None:
    data, lesion = _phantom()
    affine = np.eye(4)
    flair = nib.Nifti1Image(data, affine)
    # T1 at 2 mm on its own grid covering the same space.
    coarse = data[::2, ::2, ::2].copy()
    t1_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    t1 = nib.Nifti1Image(coarse, t1_affine)
    resampled = resample_to(t1, flair)
    assert resampled.shape == SHAPE
    # The lesion cube (value 180) lands where it is on the FLAIR grid.
    assert resampled[25, 31, 17] > 150
    assert resampled[10, 10, 10] < 120
    prepared = prepare_case(_source({Contrast.flair: flair, Contrast.t1: t1}, None))
    assert set(prepared.volumes) == {Contrast.flair, Contrast.t1}
    assert prepared.volumes[Contrast.t1].shape == SHAPE


def test_window_and_crop() -> None:
    data, _ = _phantom()
    brain = data > 0
    lo, hi = robust_window(data, brain)
    assert 80 < lo < 100 < hi <= 180
    assert to_uint8(np.array([lo - 10, lo, hi, hi + 10], dtype=np.float32), (lo, hi)).tolist() == [
        0,
        0,
        255,
        255,
    ]
    x0, y0, x1, y1 = crop_box(brain, margin=3)
    xs, ys = np.nonzero(brain.any(axis=2))
    assert (x0, y0) == (max(xs.min() - 3, 0), max(ys.min() - 3, 0))
    assert (x1, y1) == (min(xs.max() + 4, SHAPE[0]), min(ys.max() + 4, SHAPE[1]))


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (np.full(SHAPE, 0.5, dtype=np.float32), "binary"),
        (np.full(SHAPE, 3, dtype=np.uint8), "binary"),
    ],
)
def test_non_binary_mask_is_refused(mask: np.ndarray, message: str) -> None:
    data, _ = _phantom()
    with pytest.raises(InvalidCase, match=message):
        prepare_case(
            _source(
                {Contrast.flair: nib.Nifti1Image(data, np.eye(4))}, nib.Nifti1Image(mask, np.eye(4))
            )
        )


def test_inconsistent_inputs_are_refused() -> None:
    data, _ = _phantom()
    with pytest.raises(InvalidCase, match="FLAIR is required"):
        prepare_case(_source({Contrast.t1: nib.Nifti1Image(data, np.eye(4))}, None))
    with pytest.raises(InvalidCase, match="3-D"):
        prepare_case(
            _source(
                {Contrast.flair: nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4))},
                None,
            )
        )
    with pytest.raises(InvalidCase, match="no brain"):
        prepare_case(
            _source({Contrast.flair: nib.Nifti1Image(np.zeros(SHAPE, np.float32), np.eye(4))}, None)
        )
    far = np.eye(4)
    far[:3, 3] = 1000.0  # a mask that lies outside the image in world space
    _, lesion = _phantom()
    with pytest.raises(InvalidCase, match="does not overlap"):
        prepare_case(
            _source(
                {Contrast.flair: nib.Nifti1Image(data, np.eye(4))}, nib.Nifti1Image(lesion, far)
            )
        )
    nan = data.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(InvalidCase, match="NaN"):
        prepare_case(_source({Contrast.flair: nib.Nifti1Image(nan, np.eye(4))}, None))
