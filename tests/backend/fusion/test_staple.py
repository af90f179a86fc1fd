"""Binary STAPLE against SimpleITK's STAPLEImageFilter (the reference implementation), on
random and real inputs, and majority vote."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from numpy.typing import NDArray
from scipy import ndimage

from backend.fusion.staple import majority_vote, outline_by_majority, posterior_from_rates, staple
from backend.quality.metrics import dice


def _reference(
    votes: NDArray[np.bool_],
) -> tuple[NDArray[np.float64], list[float], list[float], int]:
    staple_filter = sitk.STAPLEImageFilter()
    images = [sitk.GetImageFromArray(v.astype(np.uint8)) for v in votes]
    posterior = sitk.GetArrayFromImage(staple_filter.Execute(images))
    return (
        posterior,
        list(staple_filter.GetSensitivity()),
        list(staple_filter.GetSpecificity()),
        staple_filter.GetElapsedIterations(),
    )


def _noisy_raters(
    truth: NDArray[np.bool_], rates: list[tuple[float, float]], seed: int
) -> NDArray[np.bool_]:
    rng = np.random.default_rng(seed)
    return np.array(
        [
            np.where(truth, rng.random(truth.shape) < p, rng.random(truth.shape) > q)
            for p, q in rates
        ]
    )


def _assert_same(votes: NDArray[np.bool_]) -> None:
    ours = staple(votes)
    posterior, p, q, iterations = _reference(votes)
    assert ours.iterations == iterations
    assert ours.sensitivity == pytest.approx(p, abs=1e-6)
    assert ours.specificity == pytest.approx(q, abs=1e-6)
    assert np.abs(ours.posterior - posterior).max() < 1e-5
    assert np.array_equal(ours.posterior >= 0.5, posterior >= 0.5)


@pytest.mark.parametrize("seed", range(6))
def test_equals_simpleitk_on_random_inputs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (30, 40) if seed % 2 else (12, 20, 16)
    truth = ndimage.binary_dilation(rng.random(shape) < 0.02, iterations=2)
    raters = 2 + seed
    rates = [(rng.uniform(0.5, 0.99), rng.uniform(0.9, 0.999)) for _ in range(raters)]
    _assert_same(_noisy_raters(truth, rates, seed))


def test_equals_simpleitk_on_a_real_mask(open_ms_data: Path) -> None:
    truth = (
        np.asarray(nib.load(open_ms_data / "lesion_masks_mni" / "patient03.nii.gz").dataobj) > 0.5
    )
    box = ndimage.find_objects(truth.astype(np.int8))[0]
    truth = truth[box]
    cross = ndimage.generate_binary_structure(3, 1)
    votes = np.array(
        [
            truth,
            ndimage.binary_dilation(truth, cross),
            ndimage.binary_erosion(truth, cross),
            _noisy_raters(truth, [(0.8, 0.995)], 1)[0],
            _noisy_raters(truth, [(0.9, 0.98)], 2)[0],
        ]
    )
    _assert_same(votes)


def test_majority_vote_and_bad_input() -> None:
    votes = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 0]], dtype=bool)
    assert majority_vote(votes).tolist() == [True, True, True, False]
    assert majority_vote(votes[:2]).tolist() == [True, False, False, False]  # ties: no
    with pytest.raises(ValueError, match="binary"):
        staple(np.array([[0, 2], [1, 0]]))
    with pytest.raises(ValueError, match="raters"):
        staple(np.zeros((0, 4, 4), dtype=bool))
    with pytest.raises(ValueError, match="prior"):
        staple(np.zeros((3, 4, 4), dtype=bool))  # nobody marked anything
    # Agreeing raters: W is 1 where they all marked and 0 elsewhere.
    same = np.zeros((3, 8, 8), dtype=bool)
    same[:, 2:4, 2:4] = True
    result = staple(same)
    assert dice(result.posterior >= 0.5, same[0]) == 1.0


def test_equals_simpleitk_with_many_raters_on_a_dense_image() -> None:
    rng = np.random.default_rng(11)
    truth = rng.random((24, 24)) < 0.5
    rates = [(rng.uniform(0.6, 0.95), rng.uniform(0.6, 0.95)) for _ in range(12)]
    votes = _noisy_raters(truth, rates, 11)
    votes[0, ~votes.any(axis=0)] = True  # no pixel left unmarked: no "nobody" pattern
    _assert_same(votes)


def test_posterior_from_rates_is_staples_last_e_step() -> None:
    rng = np.random.default_rng(21)
    truth = ndimage.binary_dilation(rng.random((30, 30)) < 0.02, iterations=2)
    votes = _noisy_raters(truth, [(0.9, 0.99), (0.7, 0.995), (0.8, 0.98)], 21)
    result = staple(votes)
    prior = float(votes.mean())
    again = posterior_from_rates(votes, result.sensitivity, result.specificity, prior)
    assert np.allclose(again, result.posterior)
    with pytest.raises(ValueError, match="one sensitivity"):
        posterior_from_rates(votes, [0.9], [0.9], prior)


def test_outline_by_majority_keeps_staples_lesions_with_the_majoritys_outline() -> None:
    posterior = np.zeros((12, 30))
    share = np.zeros((12, 30))
    # A lesion both see: STAPLE also takes a rim two generous raters of five drew.
    share[2:6, 2:6], posterior[2:6, 2:6] = 1.0, 0.99
    share[1, 2:6], posterior[1, 2:6] = 0.4, 0.7
    share[6, 2:6], posterior[6, 2:6] = 0.5, 0.8  # a tie: STAPLE breaks it
    # A faint lesion only two reliable raters found: kept as STAPLE has it.
    share[2:4, 12:14], posterior[2:4, 12:14] = 0.4, 0.9
    # A look-alike three unreliable raters drew: STAPLE says no, so it goes.
    share[8:10, 20:22], posterior[8:10, 20:22] = 0.6, 0.2
    soft = outline_by_majority(posterior, share)
    hard = soft >= 0.5
    expected = np.zeros((12, 30), dtype=bool)
    expected[2:7, 2:6] = True
    expected[2:4, 12:14] = True
    assert np.array_equal(hard, expected)
    assert soft[3, 3] == 1.0  # the vote share inside the lesion
    assert soft[8, 20] == 0.2  # STAPLE's own value where it rules the lesion out
    assert np.array_equal(outline_by_majority(np.zeros((4, 4)), np.zeros((4, 4))), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="differ"):
        outline_by_majority(np.zeros((4, 4)), np.zeros((4, 5)))
