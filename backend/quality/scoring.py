"""Scoring one gold answer and folding it into the rater's totals (pure; no database)."""

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from backend.quality import metrics
from backend.quality.reliability import RaterTotals, Thresholds, is_scribble


@dataclass(frozen=True)
class GoldScore:
    """One answer against the gold mask of its slice."""

    confusion: metrics.Confusion  # inside the brain
    dice: float
    report: metrics.LesionReport
    painted: int
    outside_brain: int  # painted pixels outside the brain

    @property
    def detection(self) -> metrics.Detection:
        return self.report.detection

    @property
    def scribble(self) -> bool:
        return is_scribble(
            self.painted,
            self.detection.ppv,
            self.report.prediction_lesions,
            self.outside_brain,
        )


def score(
    gold: NDArray[np.bool_],
    answer: NDArray[np.bool_],
    brain: NDArray[np.bool_] | None = None,
    spacing: Sequence[float] | None = None,
) -> GoldScore:
    """Score a 2-D answer against a gold mask (both [H, W]); ``brain`` limits the pixel counts
    (None: the whole image)."""
    region = np.ones(gold.shape, dtype=bool) if brain is None else brain
    painted = int(np.count_nonzero(answer))
    return GoldScore(
        confusion=metrics.confusion(gold, answer, within=region | gold),
        dice=metrics.dice(gold, answer),
        report=metrics.lesion_report(gold, answer, spacing),
        painted=painted,
        outside_brain=int(np.count_nonzero(answer & ~region)),
    )


def add_gold(
    totals: RaterTotals, result: GoldScore, duration_ms: int | None, limits: Thresholds
) -> RaterTotals:
    """Totals after one more gold answer."""
    c, report = result.confusion, result.report
    has_lesions = report.reference_lesions > 0 or (c.tp + c.fn) > 0
    return replace(
        add_answer(totals, duration_ms, limits),
        gold=totals.gold + 1,
        tp=totals.tp + c.tp,
        fp=totals.fp + c.fp,
        fn=totals.fn + c.fn,
        tn=totals.tn + c.tn,
        lesions_reference=totals.lesions_reference + report.reference_lesions,
        lesions_found=totals.lesions_found + report.found,
        lesions_predicted=totals.lesions_predicted + report.prediction_lesions,
        lesions_true=totals.lesions_true + report.prediction_lesions - report.false_alarms,
        gold_with_lesions=totals.gold_with_lesions + has_lesions,
        empty_on_lesions=totals.empty_on_lesions + (has_lesions and result.painted == 0),
        scribbles=totals.scribbles + result.scribble,
    )


def add_answer(totals: RaterTotals, duration_ms: int | None, limits: Thresholds) -> RaterTotals:
    """Totals after one more timed answer of any kind (the response-time profile)."""
    if duration_ms is None:
        return totals
    return replace(
        totals, timed=totals.timed + 1, fast=totals.fast + (duration_ms < limits.fast_ms)
    )


def add_repeat(totals: RaterTotals, dice: float) -> RaterTotals:
    """Totals after one more repeat pair (intra-rater Dice)."""
    return replace(
        totals, repeats=totals.repeats + 1, repeat_dice_sum=totals.repeat_dice_sum + dice
    )
