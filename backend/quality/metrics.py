"""Segmentation metrics for lesion masks, 2-D or 3-D: pure numpy and scipy, no database.

Voxel-wise: Dice, sensitivity, specificity, positive predictive value (PPV) and the volume
difference. Lesion-wise: detection as in the MSSEG 2016 challenge (Commowick et al., Sci Rep
2018), as the open MS data README states it:

- a lesion is a connected component of at least 3 mm^3 (18-connectivity in 3-D, 8 in 2-D);
  smaller components are not lesions on either side and count as background;
- a reference lesion is detected when the prediction's lesions cover at least alpha = 10 % of
  it, and the prediction lesions that make up gamma = 65 % of that overlap (taken largest
  overlap first) each lie at most beta = 70 % outside it;
- sensitivity is the share of reference lesions detected by the prediction; PPV the share of
  prediction lesions detected, by the same rule, by the reference; F1 their harmonic mean.

Here "outside it" means outside that reference lesion, as the README and the paper word it.
(Anima's ``animaSegPerfAnalyzer`` counts a prediction lesion's voxels outside every reference
lesion instead; the two differ only when one prediction lesion spans several reference
lesions.) Comparisons are inclusive: exactly 10 % overlap detects, exactly 70 % outside passes.

Empty masks, by definition here (a volunteer's "no lesions" on a lesion-free gold slice is a
perfect answer): a metric whose denominator is empty is 1.0, since nothing could be missed or
be wrong. So Dice of two empty masks is 1.0 and of one empty mask 0.0; sensitivity with no
reference lesion is 1.0; PPV with no predicted lesion is 1.0; F1 is 1.0 when both have no
lesion and 0.0 when exactly one has. The relative volume difference with an empty reference is
0.0 when the prediction is empty too and infinity otherwise.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

MIN_LESION_MM3 = 3.0
ALPHA = 0.10  # least share of a reference lesion the prediction must cover
BETA = 0.70  # most share of a contributing prediction lesion that may lie outside it
GAMMA = 0.65  # share of the overlap whose contributors are checked against beta
# Slack for sizes and shares computed in floating point (3 voxels of 1 mm must count as 3 mm^3).
_EPS = 1e-9

Mask = NDArray[np.bool_]


class Confusion(NamedTuple):
    """Voxel counts: true positives, false positives, false negatives, true negatives."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def dice(self) -> float:
        """2 TP / (2 TP + FP + FN); 1.0 when nothing is marked or true."""
        return _share(2 * self.tp, 2 * self.tp + self.fp + self.fn)


class Detection(NamedTuple):
    """Lesion-wise sensitivity, PPV and F1 (MSSEG rule)."""

    sensitivity: float
    ppv: float
    f1: float


@dataclass(frozen=True)
class LesionReport:
    """Lesion-wise detail: component label maps and which lesions were detected.

    ``reference_labels`` and ``prediction_labels`` number the lesions 1..n (0 is background and
    components under the minimum size); ``reference_detected[i - 1]`` says whether reference
    lesion i was detected, ``prediction_detected[j - 1]`` whether prediction lesion j was (by
    the reference: a true positive; otherwise a false alarm).
    """

    reference_labels: NDArray[np.int32]
    prediction_labels: NDArray[np.int32]
    reference_detected: NDArray[np.bool_]
    prediction_detected: NDArray[np.bool_]

    @property
    def reference_lesions(self) -> int:
        return len(self.reference_detected)

    @property
    def prediction_lesions(self) -> int:
        return len(self.prediction_detected)

    @property
    def found(self) -> int:
        """Reference lesions detected."""
        return int(self.reference_detected.sum())

    @property
    def missed(self) -> int:
        return self.reference_lesions - self.found

    @property
    def false_alarms(self) -> int:
        """Prediction lesions not detected by the reference."""
        return self.prediction_lesions - int(self.prediction_detected.sum())

    @property
    def detection(self) -> Detection:
        sensitivity = _share(self.found, self.reference_lesions)
        ppv = _share(int(self.prediction_detected.sum()), self.prediction_lesions)
        if self.reference_lesions == 0 and self.prediction_lesions == 0:
            return Detection(1.0, 1.0, 1.0)
        return Detection(sensitivity, ppv, _harmonic(sensitivity, ppv))


def _share(part: int, whole: int) -> float:
    return 1.0 if whole == 0 else part / whole


def _harmonic(a: float, b: float) -> float:
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def _pair(reference: ArrayLike, prediction: ArrayLike) -> tuple[Mask, Mask]:
    ref, pred = np.asarray(reference, dtype=bool), np.asarray(prediction, dtype=bool)
    if ref.shape != pred.shape:
        raise ValueError(f"mask shapes differ: reference {ref.shape}, prediction {pred.shape}")
    if ref.ndim not in (2, 3):
        raise ValueError(f"masks must be 2-D or 3-D, not {ref.ndim}-D")
    return ref, pred


def confusion(
    reference: ArrayLike, prediction: ArrayLike, within: ArrayLike | None = None
) -> Confusion:
    """Voxel counts of the prediction against the reference, optionally inside a region
    (``within``, e.g. the brain: true negatives outside it are not counted)."""
    ref, pred = _pair(reference, prediction)
    if within is not None:
        region = np.asarray(within, dtype=bool)
        if region.shape != ref.shape:
            raise ValueError(f"region shape {region.shape} differs from the masks' {ref.shape}")
        ref, pred = ref[region], pred[region]
    tp = int(np.count_nonzero(ref & pred))
    ref_n, pred_n = int(np.count_nonzero(ref)), int(np.count_nonzero(pred))
    return Confusion(tp=tp, fp=pred_n - tp, fn=ref_n - tp, tn=ref.size - ref_n - pred_n + tp)


def dice(reference: ArrayLike, prediction: ArrayLike) -> float:
    """2|R and P| / (|R| + |P|); 1.0 when both are empty."""
    return confusion(reference, prediction).dice


def sensitivity(reference: ArrayLike, prediction: ArrayLike) -> float:
    """Share of reference voxels predicted; 1.0 with an empty reference."""
    c = confusion(reference, prediction)
    return _share(c.tp, c.tp + c.fn)


def specificity(reference: ArrayLike, prediction: ArrayLike) -> float:
    """Share of background voxels left unpredicted; 1.0 when the reference fills the image."""
    c = confusion(reference, prediction)
    return _share(c.tn, c.tn + c.fp)


def ppv(reference: ArrayLike, prediction: ArrayLike) -> float:
    """Share of predicted voxels in the reference; 1.0 with an empty prediction."""
    c = confusion(reference, prediction)
    return _share(c.tp, c.tp + c.fp)


class VolumeDifference(NamedTuple):
    absolute_mm3: float  # |V(P) - V(R)|
    relative: float  # |V(P) - V(R)| / V(R); 0.0 if both empty, inf if only R is empty


def volume_difference(
    reference: ArrayLike, prediction: ArrayLike, spacing: Sequence[float] | None = None
) -> VolumeDifference:
    """Absolute (mm^3) and relative volume difference."""
    ref, pred = _pair(reference, prediction)
    voxel = _voxel_mm3(ref.ndim, spacing)
    ref_n, pred_n = int(np.count_nonzero(ref)), int(np.count_nonzero(pred))
    absolute = abs(pred_n - ref_n) * voxel
    if ref_n == 0:
        return VolumeDifference(absolute, 0.0 if pred_n == 0 else float("inf"))
    return VolumeDifference(absolute, abs(pred_n - ref_n) / ref_n)


def _voxel_mm3(ndim: int, spacing: Sequence[float] | None) -> float:
    """Volume of one voxel. A 2-D mask's spacing is (rows, columns) in mm, or (rows, columns,
    slice thickness); without a thickness a pixel stands for 1 mm of depth."""
    if spacing is None:
        return 1.0
    values = [float(s) for s in spacing]
    if len(values) not in (ndim, ndim + 1) or (ndim == 3 and len(values) != 3):
        raise ValueError(f"spacing {tuple(values)} does not fit a {ndim}-D mask")
    if any(not np.isfinite(s) or s <= 0 for s in values):
        raise ValueError(f"spacing must be positive and finite, got {tuple(values)}")
    return float(np.prod(values))


@cache
def _structure(ndim: int) -> NDArray[np.bool_]:
    # Connectivity 2 of ndimage: 8-connectivity in 2-D, 18 in 3-D (faces and edges, no corners).
    structure: NDArray[np.bool_] = ndimage.generate_binary_structure(ndim, 2)
    return structure


def lesions(
    mask: ArrayLike, spacing: Sequence[float] | None = None
) -> tuple[NDArray[np.int32], int]:
    """Label the lesions of a mask: components of at least MIN_LESION_MM3, numbered 1..n by
    first voxel in C order; everything else is 0."""
    binary = np.asarray(mask, dtype=bool)
    voxel = _voxel_mm3(binary.ndim, spacing)
    labels, count = ndimage.label(binary, structure=_structure(binary.ndim))
    if count == 0:
        return labels.astype(np.int32), 0
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes * voxel >= MIN_LESION_MM3 - _EPS
    keep[0] = False
    renumber = np.zeros(count + 1, dtype=np.int32)
    renumber[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return renumber[labels], int(keep.sum())


def _detected(overlap: NDArray[np.int64], sizes_other: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Which lesions (rows of ``overlap``, background row 0 excluded) the other side detects.

    ``overlap[i, j]``: voxels in lesion i of this side and lesion j of the other (0: background
    on either side); ``sizes_other[j]``: voxels of the other side's lesion j.
    """
    rows = overlap.shape[0] - 1
    result = np.zeros(rows, dtype=bool)
    for i in range(1, rows + 1):
        row = overlap[i]
        size, covered = int(row.sum()), int(row[1:].sum())
        if covered == 0 or covered < ALPHA * size - _EPS:
            continue
        contributors = np.flatnonzero(row[1:]) + 1
        # Largest overlap first; ties by label, so the answer does not depend on sort order.
        contributors = contributors[np.lexsort((contributors, -row[contributors]))]
        running, ok = 0, True
        for j in contributors:
            outside = (int(sizes_other[j]) - int(row[j])) / int(sizes_other[j])
            if outside > BETA + _EPS:
                ok = False
                break
            running += int(row[j])
            if running >= GAMMA * covered - _EPS:
                break
        result[i - 1] = ok
    return result


def lesion_report(
    reference: ArrayLike, prediction: ArrayLike, spacing: Sequence[float] | None = None
) -> LesionReport:
    """Lesion-wise comparison of a prediction with a reference (the module's MSSEG rule)."""
    ref, pred = _pair(reference, prediction)
    ref_labels, n_ref = lesions(ref, spacing)
    pred_labels, n_pred = lesions(pred, spacing)
    both = (ref_labels > 0) | (pred_labels > 0)
    codes = ref_labels[both].astype(np.int64) * (n_pred + 1) + pred_labels[both]
    overlap = np.bincount(codes, minlength=(n_ref + 1) * (n_pred + 1)).reshape(
        n_ref + 1, n_pred + 1
    )
    return LesionReport(
        reference_labels=ref_labels,
        prediction_labels=pred_labels,
        reference_detected=_detected(overlap, overlap.sum(axis=0)),
        prediction_detected=_detected(overlap.T, overlap.sum(axis=1)),
    )


def lesion_detection(
    reference: ArrayLike, prediction: ArrayLike, spacing: Sequence[float] | None = None
) -> Detection:
    """Lesion-wise (sensitivity, PPV, F1) of a prediction against a reference; ``spacing`` in mm
    (None: 1 mm voxels)."""
    return lesion_report(reference, prediction, spacing).detection
