"""Segmentation metrics: edge cases of the MSSEG lesion rule, and agreement with a plain
implementation written here on the real lesion masks."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import ndimage

from backend.quality import metrics
from backend.quality.metrics import Detection, dice, lesion_detection, lesion_report


def _square(shape: tuple[int, int], y: int, x: int, size: int) -> NDArray[np.bool_]:
    mask = np.zeros(shape, dtype=bool)
    mask[y : y + size, x : x + size] = True
    return mask


def test_dice_and_voxel_metrics() -> None:
    ref = _square((20, 20), 2, 2, 4)  # 16 px
    pred = _square((20, 20), 4, 2, 4)  # 8 px overlap
    assert dice(ref, pred) == pytest.approx(0.5)
    assert metrics.sensitivity(ref, pred) == pytest.approx(0.5)
    assert metrics.ppv(ref, pred) == pytest.approx(0.5)
    assert metrics.specificity(ref, pred) == pytest.approx((400 - 24) / (400 - 16))
    assert metrics.confusion(ref, pred) == (8, 8, 8, 376)
    brain = np.zeros((20, 20), dtype=bool)
    brain[:10] = True
    assert metrics.confusion(ref, pred, within=brain).tn == 200 - 24
    vd = metrics.volume_difference(ref, pred | _square((20, 20), 15, 15, 2), spacing=(1, 2))
    assert vd.absolute_mm3 == pytest.approx(8.0)
    assert vd.relative == pytest.approx(0.25)


def test_empty_masks_are_defined() -> None:
    empty = np.zeros((10, 10), dtype=bool)
    full = _square((10, 10), 2, 2, 3)
    assert dice(empty, empty) == 1.0
    assert dice(empty, full) == 0.0
    assert dice(full, empty) == 0.0
    assert metrics.sensitivity(empty, full) == 1.0
    assert metrics.ppv(full, empty) == 1.0
    assert lesion_detection(empty, empty) == Detection(1.0, 1.0, 1.0)
    assert lesion_detection(empty, full) == Detection(1.0, 0.0, 0.0)
    assert lesion_detection(full, empty) == Detection(0.0, 1.0, 0.0)
    assert metrics.volume_difference(empty, empty).relative == 0.0
    assert metrics.volume_difference(empty, full).relative == float("inf")


def test_shapes_and_spacing_are_checked() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        dice(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="2-D or 3-D"):
        dice(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="does not fit"):
        lesion_detection(np.zeros((3, 3, 3)), np.zeros((3, 3, 3)), spacing=(1, 1))
    with pytest.raises(ValueError, match="positive"):
        lesion_detection(np.zeros((3, 3)), np.zeros((3, 3)), spacing=(1, 0))


def test_connectivity_8_in_2d_and_18_in_3d() -> None:
    # Two 2x2 squares touching at a corner: one lesion in 2-D (8-connectivity).
    flat = _square((10, 10), 0, 0, 2) | _square((10, 10), 2, 2, 2)
    assert metrics.lesions(flat)[1] == 1
    # Two 2x2x2 cubes touching at a corner only: two lesions (18-connectivity has no corners);
    # touching along an edge: one.
    cubes = np.zeros((6, 6, 6), dtype=bool)
    cubes[0:2, 0:2, 0:2] = True
    cubes[2:4, 2:4, 2:4] = True
    assert metrics.lesions(cubes)[1] == 2
    cubes[2:4, 2:4, 2:4] = False
    cubes[2:4, 2:4, 0:2] = True
    assert metrics.lesions(cubes)[1] == 1


def test_lesions_under_the_minimum_size_are_background() -> None:
    pair = np.zeros((10, 10), dtype=bool)
    pair[1, 1:3] = True  # 2 mm^3 at 1 mm: not a lesion
    triple = np.zeros((10, 10), dtype=bool)
    triple[5, 1:4] = True  # exactly 3 mm^3: a lesion
    assert metrics.lesions(pair)[1] == 0
    assert metrics.lesions(triple)[1] == 1
    assert metrics.lesions(pair, spacing=(1.0, 1.0, 1.5))[1] == 1  # 3 mm^3 with thick slices
    # A small false blob is no false alarm; a small reference speck is nothing to miss.
    assert lesion_detection(triple, triple | pair) == Detection(1.0, 1.0, 1.0)
    assert lesion_detection(triple | pair, triple) == Detection(1.0, 1.0, 1.0)


def test_alpha_rule_on_undersegmentation() -> None:
    ref = np.zeros((40, 40), dtype=bool)
    ref[0:10, 0:10] = True  # 100 px
    ten = np.zeros_like(ref)
    ten[0:10, 0] = True  # 10 %: detected (at least alpha)
    nine = np.zeros_like(ref)
    nine[0:9, 0] = True  # 9 %: missed
    assert lesion_report(ref, ten).found == 1
    assert lesion_report(ref, nine).found == 0


def test_beta_rule_on_oversegmentation() -> None:
    ref = np.zeros((40, 40), dtype=bool)
    ref[0:3, 0:10] = True  # 30 px
    exactly = ref.copy()
    exactly[3:10, 0:10] = True  # 100 px, 70 % outside: detected (at most beta)
    beyond = exactly.copy()
    beyond[10, 0:1] = True  # 101 px, 70.3 % outside: missed
    assert lesion_report(ref, exactly).found == 1
    report = lesion_report(ref, beyond)
    # Seen from the prediction, its lesion holds the whole reference lesion (30 %, none of it
    # outside), so it is no false alarm: the rule is applied both ways, as in MSSEG.
    assert (report.found, report.missed, report.false_alarms) == (0, 1, 0)
    assert lesion_detection(ref, beyond) == Detection(0.0, 1.0, 0.0)


def test_gamma_rule_ignores_small_contributors() -> None:
    ref = np.zeros((40, 40), dtype=bool)
    ref[0:10, 0:10] = True
    inside = np.zeros_like(ref)
    inside[0:10, 0:7] = True  # 70 px of the overlap, none outside
    sprawl = np.zeros_like(ref)
    sprawl[0:10, 9:30] = True  # 10 px of the overlap, 200 px (95 %) outside
    pred = inside | sprawl
    assert metrics.lesions(pred)[1] == 2
    # The inside lesion alone makes up 70/80 = 87.5 % >= gamma of the overlap: detected.
    assert lesion_report(ref, pred).found == 1
    # When the sprawling one is needed to reach gamma, it fails beta.
    small = np.zeros_like(ref)
    small[0:4, 0:5] = True  # 20 px: half of the overlap
    wider = np.zeros_like(ref)
    wider[0:10, 8:30] = True  # 20 px of the overlap, 200 px (91 %) outside
    report = lesion_report(ref, small | wider)
    assert metrics.lesions(small | wider)[1] == 2
    assert report.found == 0


# A plain implementation of the same rule, written from the definition with boolean masks and
# no overlap matrix, to check the module against on real masks.


def _plain_detected(this: NDArray[np.bool_], other: NDArray[np.bool_]) -> tuple[int, int]:
    """(lesions of ``this`` that ``other`` detects, lesions of ``this``), lesion by lesion."""
    structure = ndimage.generate_binary_structure(this.ndim, 2)
    mine, n_mine = ndimage.label(this, structure=structure)
    theirs, n_theirs = ndimage.label(other, structure=structure)
    their_size = ndimage.sum_labels(other, theirs, index=np.arange(n_theirs + 1))
    lesions = 0
    detected = 0
    for k, box in enumerate(ndimage.find_objects(mine), start=1):
        lesion = mine[box] == k
        if lesion.sum() < 3:
            continue
        lesions += 1
        under = theirs[box][lesion]
        # Only the other side's lesions (3 voxels or more) count; smaller ones are background.
        overlaps = [
            (int((under == j).sum()), int(their_size[j]))
            for j in np.unique(under)
            if j != 0 and their_size[j] >= 3
        ]
        covered = sum(v for v, _ in overlaps)
        if covered == 0 or covered / lesion.sum() < 0.10:
            continue
        overlaps.sort(key=lambda pair: -pair[0])
        ok, running = True, 0
        for v, size in overlaps:
            if (size - v) / size > 0.70:
                ok = False
                break
            running += v
            if running / covered >= 0.65:
                break
        detected += ok
    return detected, lesions


def _plain(ref: NDArray[np.bool_], pred: NDArray[np.bool_]) -> tuple[float, float, float, float]:
    found, n_ref = _plain_detected(ref, pred)
    true_pred, n_pred = _plain_detected(pred, ref)
    sens = found / n_ref if n_ref else 1.0
    ppv = true_pred / n_pred if n_pred else 1.0
    f1 = 2 * sens * ppv / (sens + ppv) if sens + ppv else 0.0
    inter = (ref & pred).sum()
    return 2 * inter / (ref.sum() + pred.sum()), sens, ppv, f1


def _real_mask(root: Path, name: str) -> NDArray[np.bool_]:
    image = nib.load(root / "lesion_masks_mni" / f"{name}.nii.gz")
    data: NDArray[np.bool_] = np.asarray(image.dataobj) > 0.5
    return data


def test_metrics_agree_with_a_plain_implementation_on_real_masks(open_ms_data: Path) -> None:
    rng = np.random.default_rng(7)
    ball = ndimage.generate_binary_structure(3, 1)
    checked = 0
    for name in ("patient01", "patient05", "patient09"):
        ref = _real_mask(open_ms_data, name)
        labels, n = ndimage.label(ref, structure=ndimage.generate_binary_structure(3, 2))
        dropped = np.isin(labels, rng.choice(np.arange(1, n + 1), size=n // 3, replace=False))
        blobs = np.zeros_like(ref)
        for z, y, x in rng.integers((40, 40, 40), (140, 180, 140), size=(6, 3)):
            blobs[z : z + 3, y : y + 4, x : x + 2] = True
        predictions = {
            "dilated": ndimage.binary_dilation(ref, ball),
            "eroded": ndimage.binary_erosion(ref, ball),
            "missed a third, false blobs": (ref & ~dropped) | blobs,
            "twice dilated": ndimage.binary_dilation(ref, ball, iterations=2),
            "another patient": _real_mask(open_ms_data, "patient12"),
        }
        for label, pred in predictions.items():
            expected = _plain(ref, pred)
            got = (dice(ref, pred), *lesion_detection(ref, pred, spacing=(1.0, 1.0, 1.0)))
            assert got == pytest.approx(expected, abs=1e-6), (name, label)
            checked += 1
    assert checked == 15
