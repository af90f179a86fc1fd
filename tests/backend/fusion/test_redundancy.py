"""Adaptive redundancy: retire when the crowd agrees, extend when it does not, escalate at the
maximum; and fewer labels per slice than a fixed redundancy for the same fused Dice."""

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import ndimage

from backend.fusion.redundancy import Decision, RedundancyPolicy, decide, uncertainty
from backend.fusion.staple import posterior_from_rates
from backend.quality.metrics import dice

POLICY = RedundancyPolicy(min_labels=3, max_labels=7, max_entropy=0.5)


def _square() -> NDArray[np.bool_]:
    mask = np.zeros((20, 20), dtype=bool)
    mask[5:12, 5:12] = True
    return mask


def _fuse(votes: list[NDArray[np.bool_]]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Fused as fuse_task does: with the raters' rates known from the whole project."""
    stack = np.array(votes)
    n = len(votes)
    return posterior_from_rates(stack, [0.8] * n, [0.99] * n, 0.05), stack.any(axis=0)


def test_agreement_retires_disagreement_extends_then_escalates() -> None:
    truth = _square()
    agreeing = [truth, truth, ndimage.binary_erosion(truth) | truth]
    assert decide(2, uncertainty(*_fuse(agreeing[:2])), POLICY) is Decision.wait
    assert decide(3, uncertainty(*_fuse(agreeing)), POLICY) is Decision.retire
    elsewhere = np.roll(truth, 9, axis=1)  # apart from truth: two candidates
    nothing = np.zeros_like(truth)
    disputed = [truth, elsewhere, nothing]  # each candidate seen by one rater of three
    assert decide(3, uncertainty(*_fuse(disputed)), POLICY) is Decision.extend
    # A candidate whose highest P(lesion) is a coin toss is 1 bit uncertain, whatever the
    # other candidates; outline differences around a clear lesion are not uncertainty.
    coin = np.where(truth, 0.5, 0.0)
    coin[5:12, 14:18] = 1.0
    marked = coin > 0
    assert uncertainty(coin, marked) == pytest.approx(1.0)
    assert decide(7, uncertainty(coin, marked), POLICY) is Decision.escalate
    outline = np.where(ndimage.binary_dilation(truth), 0.3, 0.0)
    outline[truth] = 0.99
    assert uncertainty(outline, outline > 0) < POLICY.max_entropy
    # Everyone said "no lesion": certain.
    empty = np.zeros((20, 20), dtype=bool)
    assert uncertainty(np.zeros((20, 20)), empty) == 0.0
    with pytest.raises(ValueError, match="min_labels"):
        RedundancyPolicy(min_labels=5, max_labels=3)


def test_adaptive_uses_fewer_labels_than_fixed_redundancy_for_the_same_dice() -> None:
    # Easy slices (clear lesions) and hard ones (faint lesions half the raters miss).
    rng = np.random.default_rng(4)
    yy, xx = np.ogrid[:40, :40]

    def rater(truth: NDArray[np.bool_], hard: bool) -> NDArray[np.bool_]:
        miss = rng.random() < (0.45 if hard else 0.05)
        shift = int(rng.integers(-1, 2))
        answer = np.roll(truth, shift, axis=0) if not miss else np.zeros_like(truth)
        return answer & (rng.random(truth.shape) > 0.01)

    slices = []
    for n in range(120):
        y, x, r = rng.integers(10, 30), rng.integers(10, 30), rng.integers(3, 6)
        truth = (yy - y) ** 2 + (xx - x) ** 2 <= r * r
        slices.append((truth, n % 3 == 0))
    used, adaptive_dice = [], []
    for truth, hard in slices:
        votes = [rater(truth, hard) for _ in range(POLICY.min_labels)]
        while True:
            posterior, marked = (
                _fuse(votes)
                if np.array(votes).any()
                else (np.zeros(truth.shape), np.zeros(truth.shape, bool))
            )
            decision = decide(len(votes), uncertainty(posterior, marked), POLICY)
            if decision is not Decision.extend:
                break
            votes.append(rater(truth, hard))
        used.append(len(votes))
        adaptive_dice.append(dice(truth, posterior >= 0.5))
    mean_labels, target = float(np.mean(used)), float(np.mean(adaptive_dice))
    # The smallest fixed redundancy reaching the same mean Dice.
    fixed = None
    for k in range(POLICY.min_labels, POLICY.max_labels + 1):
        scores = []
        for truth, hard in slices:
            posterior, _ = _fuse([rater(truth, hard) for _ in range(k)])
            scores.append(dice(truth, posterior >= 0.5))
        if np.mean(scores) >= target:
            fixed = k
            break
    assert fixed is not None
    assert mean_labels < fixed, (mean_labels, fixed, target)
