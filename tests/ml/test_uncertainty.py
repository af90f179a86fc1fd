"""Monte-Carlo uncertainty: entropy and BALD behave as defined, lesion counts and the per-slice
aggregation are what the docstring says."""

import numpy as np
import pytest

from ml.uncertainty import (
    TOP_PIXELS,
    binary_entropy,
    lesion_counts,
    mutual_information,
    predictive_entropy,
    score_slice,
    top_mean,
)


def test_entropy_and_bald_separate_ambiguity_from_disagreement() -> None:
    # Every sample says 0.5: maximal entropy, but the samples agree, so no BALD.
    ambiguous = np.full((8, 4, 4), 0.5)
    assert predictive_entropy(ambiguous) == pytest.approx(np.ones((4, 4)))
    assert mutual_information(ambiguous) == pytest.approx(np.zeros((4, 4)), abs=1e-9)
    # Half the samples say 0, half say 1: the same entropy, all of it disagreement.
    split = np.concatenate([np.zeros((4, 4, 4)), np.ones((4, 4, 4))])
    assert predictive_entropy(split) == pytest.approx(np.ones((4, 4)))
    assert mutual_information(split) == pytest.approx(np.ones((4, 4)), abs=1e-6)
    # Confident and agreeing: nothing.
    sure = np.full((8, 4, 4), 0.999)
    assert predictive_entropy(sure).max() < 0.02
    assert binary_entropy(np.array([0.0, 1.0])) == pytest.approx([0.0, 0.0], abs=1e-9)


def test_lesion_counts_and_the_slice_score() -> None:
    samples = np.zeros((4, 20, 20))
    samples[:, 2:5, 2:5] = 0.9  # a lesion every sample sees
    samples[2:, 10:13, 10:13] = 0.9  # one half the samples see
    samples[:, 18, 18] = 0.9  # a single pixel: not a lesion
    assert list(lesion_counts(samples)) == [1, 1, 2, 2]
    scores = score_slice(samples)
    assert scores.count_variance == pytest.approx(0.25)
    # Only the disputed lesion's 9 pixels have BALD (samples 0, 0, 0.9, 0.9): the top-100
    # mean is theirs over 100.
    disputed = binary_entropy(np.array(0.45)) - binary_entropy(np.array(0.9)) / 2
    assert scores.bald == pytest.approx(9 * disputed / 100)
    assert scores.expected_lesion_pixels == pytest.approx(0.9 * (9 + 4.5 + 1))
    with pytest.raises(ValueError, match="T >= 2"):
        score_slice(samples[:1])


def test_top_mean_ranks_by_the_most_uncertain_region_not_the_slice_size() -> None:
    small = np.zeros((20, 20))
    small[:10, :10] = 1.0  # 100 uncertain pixels on a small slice
    large = np.zeros((200, 200))
    large[:10, :10] = 1.0  # the same 100 on a large one
    assert top_mean(small) == top_mean(large) == 1.0
    assert top_mean(np.array([1.0, 3.0])) == 2.0  # fewer than k: all of them
    assert top_mean(np.arange(1000.0), k=TOP_PIXELS) == pytest.approx(np.mean(np.arange(900, 1000)))
    assert top_mean(np.array([])) == 0.0
