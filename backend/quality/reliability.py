"""Rater reliability from gold and repeat answers: Beta posteriors, trust levels, spam rules.

Pure functions over a rater's running totals (``RaterTotals``), so the same rules serve the
submission that updates them, the expert's rater table and fusion's priors.

Pixel sensitivity and specificity have Beta posteriors from the confusion counts of gold
answers (inside the brain), on a population prior. Neighbouring pixels' errors are not
independent (a volunteer misses a lesion, not a pixel), so counts enter the posterior divided
by ``CORRELATED_PIXELS``; without that one gold slice of a few thousand pixels would make the
bounds implausibly tight. Lesion-wise detection rate and PPV have Beta posteriors over lesion
counts (MSSEG rule, ``quality.metrics``). Suspension looks at the lower bound of the central
95 % credible interval, so a new rater is not suspended for one unlucky slice.
"""

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, NamedTuple

from scipy import stats

# Pixels whose errors move together (about a 4 x 4 patch): the pixel counts' weight.
CORRELATED_PIXELS = 16.0
CREDIBLE = 0.95
# Share of check slices with lesions answered empty that no honest rater reaches.
EMPTY_SHARE = 0.6


class Beta(NamedTuple):
    """A Beta(a, b) distribution of a rate."""

    a: float
    b: float

    @property
    def mean(self) -> float:
        return self.a / (self.a + self.b)

    def bounds(self, mass: float = CREDIBLE) -> tuple[float, float]:
        """The central credible interval holding ``mass`` of the distribution."""
        tail = (1.0 - mass) / 2
        low, high = stats.beta.ppf([tail, 1.0 - tail], self.a, self.b)
        return float(low), float(high)

    @property
    def lower(self) -> float:
        return self.bounds()[0]

    def updated(self, successes: float, failures: float) -> "Beta":
        return Beta(self.a + successes, self.b + failures)


# Population priors, each worth a few gold slices' evidence: volunteers find most of a lesion
# (mean 0.7) and rarely paint healthy tissue (mean 0.995), and find about 70 % of lesions.
SENSITIVITY_PRIOR = Beta(7.0, 3.0)
SPECIFICITY_PRIOR = Beta(199.0, 1.0)
LESION_PRIOR = Beta(3.5, 1.5)


class TrustLevel(StrEnum):
    new = "new"  # fewer gold answers than the project's minimum
    qualified = "qualified"  # enough gold, bounds above the project's thresholds
    trusted = "trusted"  # many gold answers with a high expected quality
    suspended = "suspended"  # stopped from real tasks; labels left out of fusion


@dataclass(frozen=True)
class RaterTotals:
    """A rater's running totals in one project (the ``rater_stats`` row's counters)."""

    gold: int = 0  # gold answers scored
    tp: int = 0  # pixel counts over gold answers, inside the brain
    fp: int = 0
    fn: int = 0
    tn: int = 0
    lesions_reference: int = 0  # reference lesions on the gold slices answered
    lesions_found: int = 0
    lesions_predicted: int = 0  # lesions the rater painted on gold slices
    lesions_true: int = 0  # painted lesions detected by the reference
    gold_with_lesions: int = 0  # gold answers whose reference has a lesion
    empty_on_lesions: int = 0  # ... answered with an empty mask
    scribbles: int = 0  # gold answers that look like scribbles (see ``is_scribble``)
    timed: int = 0  # answers with a duration
    fast: int = 0  # ... faster than the project's plausible minimum
    repeats: int = 0  # repeat pairs scored
    repeat_dice_sum: float = 0.0


@dataclass(frozen=True)
class Thresholds:
    """A project's quality settings."""

    min_gold: int = 5  # gold answers before a rater can be qualified or suspended
    min_sensitivity: float = 0.3  # lower 95 % bound of pixel sensitivity
    min_lesion_ppv: float = 0.3  # lower 95 % bound of lesion-wise PPV
    trusted_gold: int = 20
    trusted_quality: float = 0.6  # expected Dice-like quality to be trusted
    fast_ms: int = 1500  # answers faster than this are implausible
    fast_share: float = 0.5  # share of fast answers (at least min_gold timed) that is spam

    @classmethod
    def of(cls, settings: Any) -> "Thresholds":
        """A project's thresholds, from the project or a row with its settings' columns."""
        return cls(
            min_gold=settings.min_gold,
            min_sensitivity=settings.min_sensitivity,
            min_lesion_ppv=settings.min_lesion_ppv,
            fast_ms=settings.fast_ms,
        )


class Reliability(NamedTuple):
    sensitivity: Beta
    specificity: Beta
    pixel_ppv: Beta
    lesion_sensitivity: Beta
    lesion_ppv: Beta
    consistency: float | None  # mean intra-rater Dice over repeats

    @property
    def quality(self) -> float:
        """Expected Dice-like quality: the harmonic mean of the posterior mean sensitivity and
        PPV (Dice is exactly that harmonic mean of the pooled counts)."""
        s, p = self.sensitivity.mean, self.pixel_ppv.mean
        return 2 * s * p / (s + p)


def reliability(totals: RaterTotals) -> Reliability:
    """Posteriors of a rater's rates given their totals."""
    w = 1.0 / CORRELATED_PIXELS
    consistency = totals.repeat_dice_sum / totals.repeats if totals.repeats else None
    return Reliability(
        sensitivity=SENSITIVITY_PRIOR.updated(totals.tp * w, totals.fn * w),
        specificity=SPECIFICITY_PRIOR.updated(totals.tn * w, totals.fp * w),
        pixel_ppv=SENSITIVITY_PRIOR.updated(totals.tp * w, totals.fp * w),
        lesion_sensitivity=LESION_PRIOR.updated(
            totals.lesions_found, totals.lesions_reference - totals.lesions_found
        ),
        lesion_ppv=LESION_PRIOR.updated(
            totals.lesions_true, totals.lesions_predicted - totals.lesions_true
        ),
        consistency=consistency,
    )


def spam_reasons(totals: RaterTotals, limits: Thresholds) -> list[str]:
    """Patterns no honest rater shows, each as a sentence for the rater and the experts."""
    reasons = []
    # Rates, not "every answer": one painted answer among empty ones must not dodge a rule.
    if (
        totals.gold_with_lesions >= 3
        and totals.empty_on_lesions >= EMPTY_SHARE * totals.gold_with_lesions
    ):
        reasons.append(
            f"{totals.empty_on_lesions} of {totals.gold_with_lesions} check slices with lesions "
            "were answered with an empty mask"
        )
    if totals.gold >= limits.min_gold and totals.scribbles * 2 > totals.gold:
        reasons.append(
            f"{totals.scribbles} of {totals.gold} check answers were scattered strokes "
            "unrelated to the lesions"
        )
    if totals.timed >= limits.min_gold and totals.fast > limits.fast_share * totals.timed:
        reasons.append(
            f"{totals.fast} of {totals.timed} answers took under {limits.fast_ms / 1000:g} s"
        )
    return reasons


def since(totals: RaterTotals, base: Mapping[str, float] | None) -> RaterTotals:
    """The totals gathered after ``base`` (the counters at a reinstatement): the evidence
    window the automatic rules judge. ``None``: the whole record."""
    if not base:
        return totals
    return RaterTotals(
        **{
            f.name: type(getattr(totals, f.name))(
                max(0, getattr(totals, f.name) - base.get(f.name, 0))
            )
            for f in fields(RaterTotals)
        }
    )


# What a rater is told of each automatic reason: the kind of problem, never the project's
# thresholds or counts (a cheater with several accounts would tune the others to them).
# Keyed by a phrase of the detailed reason, which experts see.
PUBLIC_REASONS = {
    "answered with an empty mask": "check slices with lesions were answered as empty",
    "scattered strokes": "answers to check slices looked like random strokes",
    "took under": "many answers came faster than a careful look at a slice allows",
    "share of lesion pixels marked": "too little of the lesions on check slices was marked",
    "marked lesions that were real": "too many marks on check slices were not lesions",
}


def public_reason(reasons: str) -> str:
    """A stored suspension reason ("; "-joined) as the rater reads it: each automatic reason
    by its kind (``PUBLIC_REASONS``); an expert's own words as they are."""
    told = []
    for part in reasons.split("; "):
        told.append(next((v for k, v in PUBLIC_REASONS.items() if k in part), part))
    return "; ".join(dict.fromkeys(told))


def suspension_reasons(totals: RaterTotals, limits: Thresholds) -> list[str]:
    """Why a rater should be suspended (empty: they should not)."""
    reasons = spam_reasons(totals, limits)
    if totals.gold < limits.min_gold:
        return reasons
    rel = reliability(totals)
    sens_low = rel.sensitivity.lower
    if sens_low < limits.min_sensitivity:
        reasons.append(
            f"share of lesion pixels marked: {rel.sensitivity.mean:.0%} (95 % lower bound "
            f"{sens_low:.0%}, needed {limits.min_sensitivity:.0%})"
        )
    ppv_low = rel.lesion_ppv.lower
    if totals.lesions_predicted and ppv_low < limits.min_lesion_ppv:
        reasons.append(
            f"marked lesions that were real: {rel.lesion_ppv.mean:.0%} (95 % lower bound "
            f"{ppv_low:.0%}, needed {limits.min_lesion_ppv:.0%})"
        )
    return reasons


def trust_level(
    totals: RaterTotals, limits: Thresholds, *, suspend: bool = True, passed_test: bool = False
) -> TrustLevel:
    """The trust level the totals earn; with ``suspend`` False, the level short of suspension
    (for a rater an expert reinstated). An expert's decision overrides the rules. A rater who
    passed the project's qualification test (``passed_test``) is ``qualified`` before their
    gold answers are enough to judge them."""
    if suspend and suspension_reasons(totals, limits):
        return TrustLevel.suspended
    if totals.gold < limits.min_gold:
        return TrustLevel.qualified if passed_test else TrustLevel.new
    if totals.gold >= limits.trusted_gold and reliability(totals).quality >= limits.trusted_quality:
        return TrustLevel.trusted
    return TrustLevel.qualified


def is_scribble(
    painted: int, lesion_ppv: float, predicted_lesions: int, outside_brain: int
) -> bool:
    """A gold answer that looks like random strokes: much paint, several painted lesions of
    which at most one in five is real, or most paint outside the brain."""
    if painted == 0:
        return False
    return (predicted_lesions >= 3 and lesion_ppv <= 0.2) or outside_brain * 2 > painted
