"""Rater reliability: posteriors, trust levels and spam rules on simulated raters."""

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from backend.quality import metrics
from backend.quality.reliability import (
    Beta,
    RaterTotals,
    Thresholds,
    TrustLevel,
    reliability,
    spam_reasons,
    suspension_reasons,
    trust_level,
)
from backend.quality.scoring import add_gold, add_repeat, score
from tests.backend.quality.simulated import PROFILES, SPAMMERS, answer, brain_of, gold_slices

LIMITS = Thresholds()


def test_beta_posterior_bounds() -> None:
    flat = Beta(1, 1)
    assert flat.mean == 0.5
    assert flat.bounds() == pytest.approx((0.025, 0.975))
    sharp = flat.updated(900, 100)
    low, high = sharp.bounds()
    assert low < sharp.mean < high
    assert high - low < 0.05


def test_new_raters_are_new_and_not_suspended_for_one_bad_slice() -> None:
    one_miss = RaterTotals(gold=1, fn=400, tn=5000, lesions_reference=2, gold_with_lesions=1)
    assert trust_level(one_miss, LIMITS) is TrustLevel.new
    assert suspension_reasons(one_miss, LIMITS) == []


def test_trust_levels_follow_the_evidence() -> None:
    good = RaterTotals(
        gold=25, tp=8000, fn=1500, fp=1200, tn=400000, lesions_reference=60,
        lesions_found=50, lesions_predicted=55, lesions_true=50, gold_with_lesions=25,
    )  # fmt: skip
    assert trust_level(good, LIMITS) is TrustLevel.trusted
    assert trust_level(RaterTotals(**{**good.__dict__, "gold": 8}), LIMITS) is TrustLevel.qualified
    blind = RaterTotals(**{**good.__dict__, "tp": 300, "fn": 9200})
    assert trust_level(blind, LIMITS) is TrustLevel.suspended
    assert "lesion pixels marked" in suspension_reasons(blind, LIMITS)[0]
    assert add_repeat(add_repeat(good, 0.8), 0.6).repeat_dice_sum == pytest.approx(1.4)
    assert reliability(add_repeat(good, 0.8)).consistency == pytest.approx(0.8)


def test_fast_answers_are_spam_only_when_most_are_fast() -> None:
    assert spam_reasons(RaterTotals(timed=10, fast=4), LIMITS) == []
    assert "under 1.5 s" in spam_reasons(RaterTotals(timed=10, fast=6), LIMITS)[0]


def _rate(profile_name: str, golds: list[np.ndarray], seed: int) -> RaterTotals:
    profile = {**PROFILES, **SPAMMERS}[profile_name]
    rng = np.random.default_rng(seed)
    totals = RaterTotals()
    for gold in golds:
        brain = brain_of(gold)
        reply = answer(gold, brain, profile, rng)
        totals = add_gold(totals, score(gold, reply, brain), 8000, LIMITS)
    return totals


def _true_dice(profile_name: str, slices: list[np.ndarray], seed: int) -> float:
    """Pooled Dice over many fresh answers: the quality the estimate should rank by."""
    rng = np.random.default_rng(seed)
    tp = fp = fn = 0
    for _ in range(3):
        for gold in slices:
            c = metrics.confusion(gold, answer(gold, brain_of(gold), PROFILES[profile_name], rng))
            tp, fp, fn = tp + c.tp, fp + c.fp, fn + c.fn
    return 2 * tp / (2 * tp + fp + fn)


@pytest.fixture(scope="module")
def real_slices(open_ms_data: Path) -> list[np.ndarray]:
    return gold_slices(open_ms_data, count=100, seed=3)


def test_reliability_ranks_simulated_raters_and_spares_good_ones(
    real_slices: list[np.ndarray],
) -> None:
    golds = real_slices[:30]
    truth, estimate = [], []
    for k, name in enumerate(PROFILES):
        totals = _rate(name, golds, seed=100 + k)
        true_dice = _true_dice(name, real_slices, seed=200 + k)
        truth.append(true_dice)
        estimate.append(reliability(totals).quality)
        if true_dice >= 0.6:
            assert trust_level(totals, LIMITS) is not TrustLevel.suspended, (name, true_dice)
    rho = stats.spearmanr(truth, estimate).statistic
    assert rho >= 0.9, (rho, truth, estimate)
    assert min(truth) < 0.6 < max(truth)  # the spread covers both sides of the threshold


def test_reliability_converges_to_the_true_quality(real_slices: list[np.ndarray]) -> None:
    for k, name in enumerate(("expert-like", "misses many", "very generous")):
        totals = _rate(name, real_slices, seed=300 + k)
        assert reliability(totals).quality == pytest.approx(
            _true_dice(name, real_slices, seed=400 + k), abs=0.06
        )


def test_spam_rules_flag_spammers_and_spare_good_raters(real_slices: list[np.ndarray]) -> None:
    golds = real_slices[:12]
    for name in SPAMMERS:
        totals = _rate(name, golds, seed=5)
        assert spam_reasons(totals, LIMITS), name
        assert trust_level(totals, LIMITS) is TrustLevel.suspended
    for name in ("expert-like", "slightly generous", "slightly tight", "misses some"):
        assert spam_reasons(_rate(name, golds, seed=6), LIMITS) == [], name
