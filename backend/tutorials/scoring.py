"""Scoring practice and qualification answers and judging an attempt (pure; no database).

An item is scored like a gold answer (``quality.scoring``): Dice and the lesion-wise
detection of the MSSEG rule. An attempt passes when, over its lesion slices, lesion-wise F1
and Dice (pooled: every lesion and pixel counts once) reach the project's minimums, and when
enough of its empty and mimic slices got no false lesion. A failed attempt's feedback names
what went wrong and the lessons that teach it.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from backend.quality.metrics import Detection, lesion_report
from backend.quality.scoring import score
from backend.tutorials.models import MaterialKind

# A lesion under this many pixels (about 1 mm each) is small: the easiest to overlook.
SMALL_LESION_PIXELS = 30
# Lesions under this many pixels on the slice are not counted lesion-wise (``score_item``).
COUNTED_LESION_PIXELS = 10
# The lessons that teach each kind of error (``tutorials/lessons``' ids).
LESSONS_FOR = {
    "missed": ("reading-the-images", "where-lesions-sit"),
    "overpainted": ("studio-tools", "reading-the-images"),
    "mimic": ("mimics",),
    "empty": ("no-lesions", "mimics"),
}


@dataclass(frozen=True)
class ItemScore:
    """One answer on a tutorial slice against its expert reference."""

    kind: MaterialKind
    mimic: str | None
    painted: int
    tp: int
    fp: int
    fn: int
    dice: float
    lesion_f1: float
    lesions_reference: int
    lesions_found: int
    lesions_predicted: int
    false_alarms: int
    missed_small: int = 0  # reference lesions under SMALL_LESION_PIXELS not found

    @property
    def clean(self) -> bool:
        """No false lesion (for an empty or mimic slice: left unpainted, or nearly)."""
        return self.false_alarms == 0


def score_item(
    kind: MaterialKind,
    mimic: str | None,
    reference: NDArray[np.bool_],
    answer: NDArray[np.bool_],
    brain: NDArray[np.bool_] | None = None,
) -> ItemScore:
    """Score an answer [H, W] against the slice's reference [H, W].

    Lesions are counted only from ``COUNTED_LESION_PIXELS`` up: a cross-section of a few
    pixels (the tip of a lesion, mostly) is one experts disagree on, so finding it is a bonus
    and painting it is no false alarm; it still counts in Dice, pixel by pixel."""
    result = score(reference, answer, brain)
    c = result.confusion
    labels, count = ndimage.label(reference, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    tiny = np.isin(labels, np.flatnonzero(sizes < COUNTED_LESION_PIXELS) + 1)
    report = lesion_report(reference & ~tiny, answer)
    predicted = report.prediction_labels
    # Painted lesions on a tiny one only: neither found nor false.
    on_tiny = {int(j) for j in np.unique(predicted[tiny & (predicted > 0)])}
    undetected = np.flatnonzero(~report.prediction_detected) + 1
    false_alarms = sum(1 for j in undetected if int(j) not in on_tiny)
    counted = report.prediction_lesions - sum(
        1 for j in on_tiny if not report.prediction_detected[j - 1]
    )
    found, reference_lesions = report.found, report.reference_lesions
    true_predicted = counted - false_alarms
    sensitivity = found / reference_lesions if reference_lesions else 1.0
    ppv = true_predicted / counted if counted else (1.0 if reference_lesions == 0 else 0.0)
    f1 = 2 * sensitivity * ppv / (sensitivity + ppv) if sensitivity + ppv else 0.0
    kept_sizes = np.bincount(report.reference_labels.ravel())[1:]
    missed = ~report.reference_detected
    return ItemScore(
        kind=kind,
        mimic=mimic,
        painted=result.painted,
        tp=c.tp,
        fp=c.fp,
        fn=c.fn,
        dice=result.dice,
        lesion_f1=f1,
        lesions_reference=reference_lesions,
        lesions_found=found,
        lesions_predicted=counted,
        false_alarms=false_alarms,
        missed_small=int(np.count_nonzero(missed & (kept_sizes < SMALL_LESION_PIXELS))),
    )


@dataclass(frozen=True)
class Limits:
    """A project's pass marks (``Project.qualification_*``)."""

    min_f1: float = 0.4
    min_dice: float = 0.4
    min_clean: float = 0.6

    @classmethod
    def of(cls, project: Any) -> "Limits":
        return cls(
            min_f1=project.qualification_min_f1,
            min_dice=project.qualification_min_dice,
            min_clean=project.qualification_min_clean,
        )


@dataclass(frozen=True)
class Result:
    """An attempt's scores, verdict and feedback, as stored with it and shown to the
    volunteer (counts only: no mask, no slice identity)."""

    passed: bool
    lesion_f1: float
    dice: float
    clean: int  # empty and mimic slices without a false lesion
    clean_total: int
    lesions_reference: int
    lesions_found: int
    false_alarms: int  # painted lesions that are none, on any slice
    mimics_fooled: list[str] = field(default_factory=list)  # mimic kinds painted as lesions
    empty_painted: int = 0  # empty slices with a false lesion
    overpainted: bool = False  # far more paint outside the lesions than on them
    missed_small: int = 0  # small lesions not found
    # Why it failed, each in a sentence for the volunteer; and the lessons to take first.
    reasons: list[str] = field(default_factory=list)
    lessons: list[str] = field(default_factory=list)
    # What to mind even after a pass (lesions missed, look-alikes painted).
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _f1(found: int, reference: int, true_predicted: int, predicted: int) -> float:
    sensitivity = found / reference if reference else 1.0
    ppv = true_predicted / predicted if predicted else (1.0 if reference == 0 else 0.0)
    total = sensitivity + ppv
    return Detection(sensitivity, ppv, 2 * sensitivity * ppv / total if total else 0.0).f1


def judge(items: Sequence[ItemScore], limits: Limits) -> Result:
    """The verdict on a finished attempt."""
    lesion = [i for i in items if i.kind is MaterialKind.lesion]
    clean_items = [i for i in items if i.kind is not MaterialKind.lesion]
    tp, fp, fn = (sum(getattr(i, name) for i in lesion) for name in ("tp", "fp", "fn"))
    dice = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 1.0
    reference = sum(i.lesions_reference for i in lesion)
    found = sum(i.lesions_found for i in lesion)
    predicted = sum(i.lesions_predicted for i in lesion)
    true_predicted = predicted - sum(i.false_alarms for i in lesion)
    f1 = _f1(found, reference, true_predicted, predicted)
    clean = sum(i.clean for i in clean_items)
    clean_share = clean / len(clean_items) if clean_items else 1.0
    fooled = sorted(
        {i.mimic or "mimic" for i in clean_items if i.kind is MaterialKind.mimic and not i.clean}
    )
    empty_painted = sum(1 for i in clean_items if i.kind is MaterialKind.empty and not i.clean)
    overpainted = fp > max(2 * tp, 20)
    reasons: list[str] = []
    errors: list[str] = []
    if f1 < limits.min_f1 or dice < limits.min_dice:
        if found < reference:
            reasons.append(f"You found {found} of the {reference} lesions on the lesion slices.")
            errors.append("missed")
        if overpainted or (predicted and true_predicted * 2 < predicted):
            reasons.append("You painted well beyond the lesions, or marked spots that are not.")
            errors.append("overpainted")
        if not reasons:
            reasons.append("Your outlines overlapped the lesions too little.")
            errors.append("missed")
    if clean_share < limits.min_clean:
        if fooled:
            reasons.append("Lesion look-alikes fooled you: " + ", ".join(_words(fooled)) + ".")
            errors.append("mimic")
        if empty_painted:
            reasons.append(f"You painted on {empty_painted} slice(s) that have no lesion.")
            errors.append("empty")
    lessons = list(dict.fromkeys(lesson for e in errors for lesson in LESSONS_FOR[e]))
    passed = not reasons
    missed_small = sum(i.missed_small for i in lesion)
    notes = []
    if found < reference:
        small = f", {missed_small} of them small" if missed_small else ""
        notes.append(
            f"You missed {reference - found} of {reference} lesions{small}: zoom in and "
            "compare with the slices above and below before you submit."
        )
    if fooled and clean_share >= limits.min_clean:
        notes.append("Mind the look-alikes: " + ", ".join(_words(fooled)) + " are no lesions.")
    return Result(
        passed=passed,
        lesion_f1=round(f1, 4),
        dice=round(dice, 4),
        clean=clean,
        clean_total=len(clean_items),
        lesions_reference=reference,
        lesions_found=found,
        false_alarms=sum(i.false_alarms for i in items),
        mimics_fooled=fooled,
        empty_painted=empty_painted,
        overpainted=overpainted,
        missed_small=missed_small,
        reasons=reasons,
        lessons=lessons,
        notes=notes,
    )


def _words(kinds: Sequence[str]) -> list[str]:
    return [kind.replace("_", " ") for kind in kinds]
