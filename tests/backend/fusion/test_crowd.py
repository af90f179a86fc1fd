"""Crowd STAPLE: rates pooled over slices with missing raters, gold priors, the inversion
guard, agreement with plain STAPLE on a single slice, and the lesion-wise outline rules."""

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import ndimage

from backend.fusion.crowd import (
    CrowdSlice,
    Priors,
    crowd_staple,
    near_vote_scale,
    near_vote_specificity,
)
from backend.fusion.outlines import (
    UNDER_HALF,
    GoldExample,
    Outline,
    choose_outline,
    join_fragments,
    outline_by_finders,
    outlined,
    raters_in,
)
from backend.fusion.staple import majority_vote, outline_by_majority, staple
from backend.quality import scoring
from backend.quality.metrics import dice
from backend.quality.reliability import Beta, RaterTotals, Thresholds, reliability


def _truths(count: int, seed: int, shape: tuple[int, int] = (40, 40)) -> list[NDArray[np.bool_]]:
    rng = np.random.default_rng(seed)
    return [ndimage.binary_dilation(rng.random(shape) < 0.006, iterations=2) for _ in range(count)]


def _answer(
    truth: NDArray[np.bool_], p: float, q: float, rng: np.random.Generator
) -> NDArray[np.bool_]:
    return np.where(truth, rng.random(truth.shape) < p, rng.random(truth.shape) > q)


def test_recovers_known_rates_with_missing_raters() -> None:
    rng = np.random.default_rng(0)
    rates = {
        10: (0.95, 0.998), 11: (0.85, 0.995), 12: (0.7, 0.999), 13: (0.6, 0.99),
        14: (0.9, 0.98), 15: (0.8, 0.997), 16: (0.75, 0.996), 17: (0.92, 0.993),
    }  # fmt: skip
    truths = _truths(300, 1)
    slices = []
    for truth in truths:
        raters = rng.choice(list(rates), size=rng.integers(3, 6), replace=False)
        votes = np.array([_answer(truth, *rates[int(r)], rng) for r in raters])
        slices.append(CrowdSlice([int(r) for r in raters], votes))
    # The rates were drawn over whole images: q is measured over the whole image too.
    result = crowd_staple(slices, background=None)
    assert result.converged
    for rater, (p, q) in rates.items():
        assert result.sensitivity[rater] == pytest.approx(p, abs=0.03), rater
        assert result.specificity[rater] == pytest.approx(q, abs=0.002), rater
    fused = np.mean([dice(t, w >= 0.5) for t, w in zip(truths, result.posteriors, strict=True)])
    voted = np.mean([dice(t, majority_vote(s.votes)) for t, s in zip(truths, slices, strict=True)])
    assert fused > voted


def test_one_slice_with_flat_priors_is_plain_staple() -> None:
    rng = np.random.default_rng(3)
    (truth,) = _truths(1, 3, (60, 60))
    votes = np.array(
        [_answer(truth, p, q, rng) for p, q in [(0.9, 0.99), (0.7, 0.995), (0.8, 0.98)]]
    )
    plain = staple(votes)
    crowd = crowd_staple([CrowdSlice([1, 2, 3], votes)], prior=float(votes.mean()), background=None)
    assert [crowd.sensitivity[r] for r in (1, 2, 3)] == pytest.approx(plain.sensitivity, abs=1e-4)
    assert [crowd.specificity[r] for r in (1, 2, 3)] == pytest.approx(plain.specificity, abs=1e-5)
    assert np.array_equal(crowd.posteriors[0] >= 0.5, plain.posterior >= 0.5)


def test_gold_priors_outweigh_a_colluding_majority() -> None:
    # Three careless raters paint the same false blob on every slice and half of each lesion;
    # two careful ones are right. Without priors the three agreeing raters look reliable.
    rng = np.random.default_rng(5)
    truths = _truths(60, 6)
    slices = []
    for truth in truths:
        blob = np.zeros_like(truth)
        y, x = rng.integers(5, 35, size=2)
        blob[y - 3 : y + 3, x - 3 : x + 3] = True
        half = truth & (np.arange(truth.shape[1])[None, :] < truth.shape[1] // 2)
        careless = [(half | blob) & ~(rng.random(truth.shape) < 0.02) for _ in range(3)]
        careful = [_answer(truth, 0.95, 0.999, rng) for _ in range(2)]
        slices.append(CrowdSlice([1, 2, 3, 4, 5], np.array(careless + careful)))
    gold = {r: Priors(Beta(50, 50), Beta(950, 50)) for r in (1, 2, 3)} | {
        r: Priors(Beta(950, 50), Beta(9990, 10)) for r in (4, 5)
    }
    without = crowd_staple(slices)
    with_gold = crowd_staple(slices, priors=gold)

    def mean_dice(result: object) -> float:
        posteriors = result.posteriors  # type: ignore[attr-defined]
        return float(np.mean([dice(t, w >= 0.5) for t, w in zip(truths, posteriors, strict=True)]))

    assert mean_dice(with_gold) > mean_dice(without) + 0.1
    assert mean_dice(with_gold) > 0.8


def test_no_label_inversion_with_many_raters_and_a_bad_start() -> None:
    # Many weak raters (p = 0.6) on small lesions, started from worse than chance: every rater
    # is held better than chance and the fused label keeps lesion as lesion.
    rng = np.random.default_rng(8)
    truths = _truths(40, 9)
    slices = [
        CrowdSlice(list(range(12)), np.array([_answer(t, 0.6, 0.97, rng) for _ in range(12)]))
        for t in truths
    ]
    result = crowd_staple(slices, start=(0.3, 0.3))
    assert all(result.sensitivity[r] + result.specificity[r] > 1 for r in range(12))
    fused = np.mean([dice(t, w >= 0.5) for t, w in zip(truths, result.posteriors, strict=True)])
    assert fused > 0.8


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="no slices"):
        crowd_staple([])
    with pytest.raises(ValueError, match="one mask per rater"):
        crowd_staple([CrowdSlice([1, 1], np.zeros((2, 4, 4), dtype=bool))])
    with pytest.raises(ValueError, match="prior"):
        crowd_staple([CrowdSlice([1, 2], np.zeros((2, 4, 4), dtype=bool))])


def test_background_zero_counts_only_marked_pixels() -> None:
    votes = np.zeros((3, 20, 20), dtype=bool)
    votes[:, 5:10, 5:10] = True
    votes[0, 4, 5:10] = True  # one rater's extra row
    only_marked = crowd_staple([CrowdSlice([1, 2, 3], votes)], background=0)
    ring = crowd_staple([CrowdSlice([1, 2, 3], votes)], background=1)
    whole = crowd_staple([CrowdSlice([1, 2, 3], votes)], background=None)
    # The prior is the share of marked votes among the pixels counted: 30 marked pixels
    # (80 of 90 votes) at 0; more pixels counted the wider the background.
    assert only_marked.prior == pytest.approx(80 / 90)
    assert whole.prior < ring.prior < only_marked.prior


def test_fused_is_staples_lesions_outlined_by_their_finders_fragments_joined() -> None:
    rng = np.random.default_rng(2)
    votes = rng.random((5, 16, 16)) < 0.3
    result = crowd_staple([CrowdSlice([1, 2, 3, 4, 5], votes)])
    share = votes.mean(axis=0)
    assert np.allclose(result.share(0), share)
    expected = join_fragments(outline_by_finders(result.posterior(0), share), share)
    assert np.array_equal(result.fused(0, Outline.majority), expected)
    staples = join_fragments(result.posterior(0), share)
    assert np.array_equal(result.fused(0, Outline.staple), staples)
    assert np.array_equal(outlined(result.posterior(0), share, Outline.staple), staples)


def test_the_rater_count_is_read_from_the_vote_share() -> None:
    rng = np.random.default_rng(4)
    for raters in (1, 2, 3, 4, 5, 7, 12):
        share = (rng.random((raters, 30, 30)) < 0.5).mean(axis=0)
        assert raters_in(share) == raters
    assert raters_in(np.zeros((4, 4))) == 1  # nobody marked anything


def _lesions() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Five raters' share and STAPLE's posterior (0.9 wherever two or more marked) over three
    lesions with a ring two raters drew: found by all five, by three, by four; and a blob
    three unreliable raters marked, where STAPLE says lesion nowhere."""
    share = np.zeros((9, 40))
    for left, top in ((1, 1.0), (11, 0.6), (21, 0.8)):
        share[1:8, left : left + 7] = 0.4
        share[2:7, left + 1 : left + 6] = top
    share[3:6, 33:36] = 0.6
    posterior = np.where(share >= 0.4, 0.9, 0.02)
    posterior[3:6, 33:36] = 0.2
    return posterior, share


def test_each_lesion_is_outlined_by_the_majority_of_the_raters_who_found_it() -> None:
    posterior, share = _lesions()
    soft = outline_by_finders(posterior, share)
    hard = soft >= 0.5
    # Found by all five: the majority's outline (two of five is not a majority).
    assert hard[2:7, 2:7].all()
    assert hard[:, 0:10].sum() == 25
    # Found by three: the ring two of them drew is theirs (the old rule cut it off).
    assert hard[1:8, 11:18].all()
    assert hard[:, 10:20].sum() == 49
    old = outline_by_majority(posterior, share) >= 0.5
    assert old[:, 10:20].sum() == 25
    # Found by four: two is a tie, left out, and stays out once stored as an 8-bit label.
    assert hard[:, 20:30].sum() == 25
    assert np.all(soft[1, 21:28] == UNDER_HALF)
    assert np.rint(UNDER_HALF * 255) / 255 < 0.5
    # A look-alike STAPLE does not believe is no lesion, and nothing else changes.
    assert not hard[:, 30:].any()
    assert np.array_equal(soft[share == 0], posterior[share == 0])
    with pytest.raises(ValueError, match="differ"):
        outline_by_finders(posterior, share[:, :5])


def _fragment(bridge: float, fragment: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """A lesion all five raters marked and, four pixels away, a piece ``fragment`` of them
    marked, joined by a strip ``bridge`` of them marked that STAPLE leaves out."""
    share = np.zeros((9, 20))
    share[2:7, 2:8] = 1.0
    share[4, 8:12] = bridge
    share[3:5, 12:14] = fragment
    share[0, 0] = 0.2  # one rater's stray mark elsewhere: five raters
    label = np.where(share > 0.5, 0.9, np.where(share > 0, 0.3, 0.01))
    return label, share


def test_a_fragment_a_bare_majority_drew_is_joined_to_its_lesion() -> None:
    label, share = _fragment(bridge=0.4, fragment=0.6)
    assert ndimage.label(label >= 0.5, structure=np.ones((3, 3)))[1] == 2
    joined = join_fragments(label, share)
    hard = joined >= 0.5
    assert ndimage.label(hard, structure=np.ones((3, 3)))[1] == 1
    # By the one-pixel path through the strip, at one half; the rest as it was.
    assert np.array_equal(hard & ~(label >= 0.5), share == 0.4)
    assert np.all(joined[4, 8:12] == 0.5)
    assert np.array_equal(joined[share != 0.4], label[share != 0.4])
    # The product's rule for a slice does it too.
    stored = outlined(label, share, Outline.majority) >= 0.5
    assert ndimage.label(stored, structure=np.ones((3, 3)))[1] == 1


def test_lesions_of_their_own_stay_apart() -> None:
    # A piece four of five marked is a lesion of its own, however close.
    label, share = _fragment(bridge=0.4, fragment=0.8)
    assert np.array_equal(join_fragments(label, share), label)
    # A strip only one rater drew joins nothing.
    label, share = _fragment(bridge=0.2, fragment=0.6)
    assert np.array_equal(join_fragments(label, share), label)
    # With three raters two are a majority: nothing is left out between pieces to join.
    label, share = _fragment(bridge=1 / 3, fragment=2 / 3)
    assert np.array_equal(join_fragments(label, share), label)
    # One piece, or none: the label as it is; shapes must agree.
    lone = np.where(share == 1.0, 0.9, 0.0)
    assert np.array_equal(join_fragments(lone, share), lone)
    with pytest.raises(ValueError, match="differ"):
        join_fragments(label, share[:, :5])


def test_fragments_are_joined_in_any_dimension() -> None:
    # A flat image ([N]: neighbours on either side) and a volume (26 neighbours).
    line = join_fragments(np.array([0.9, 0.9, 0.2, 0.2, 0.9]), np.array([1, 1, 0.4, 0.4, 0.6]))
    assert np.array_equal(line >= 0.5, np.ones(5, dtype=bool))
    share = np.zeros((3, 6, 6))
    share[0, 1:3, 1:3] = 1.0
    share[1, 3, 3] = 0.4  # diagonal steps, one slice up
    share[2, 4:6, 4:6] = 0.6
    share[0, 5, 0] = 0.2
    label = np.where(share > 0.5, 0.9, 0.1)
    joined = join_fragments(label, share) >= 0.5
    assert ndimage.label(joined, structure=np.ones((3, 3, 3)))[1] == 1
    assert joined.sum() == (label >= 0.5).sum() + 1


def _example(truth: NDArray[np.bool_], rim: NDArray[np.bool_]) -> GoldExample:
    """STAPLE took a rim two of five raters drew; the majority did not."""
    posterior = np.where(truth | rim, 0.9, 0.01)
    share = np.where(truth, 1.0, np.where(rim, 0.4, 0.0))
    return GoldExample(posterior, share, truth)


def test_gold_chooses_the_outline_rule() -> None:
    truth = np.zeros((12, 12), dtype=bool)
    truth[3:8, 3:8] = True
    rim = ndimage.binary_dilation(truth) & ~truth
    # The gold agrees with the majority's outline: majority; with STAPLE's: STAPLE.
    rule, scores = choose_outline([_example(truth, rim)] * 5)
    assert rule is Outline.majority
    assert scores["majority"] == 1.0
    assert scores["staple"] < 1.0
    rule, _ = choose_outline([_example(truth | rim, rim)] * 5)
    assert rule is Outline.staple
    # Too little gold: the default, without scores.
    assert choose_outline([_example(truth, rim)] * 4) == (Outline.staple, {})
    assert choose_outline([], default=Outline.majority) == (Outline.majority, {})


def test_specificity_priors_move_onto_the_near_vote_scale() -> None:
    # Marked evidence stays, unmarked evidence shrinks by the scale; flat stays flat.
    assert near_vote_specificity(Beta(199.0, 1.0), 20.0) == Beta(1.0 + 198.0 / 20.0, 1.0)
    assert near_vote_specificity(Beta(1.0, 1.0), 50.0) == Beta(1.0, 1.0)
    assert near_vote_specificity(Beta(500.0, 3.0), 0.5) == Beta(500.0, 3.0)
    votes = np.zeros((2, 20, 20), dtype=bool)
    assert near_vote_scale(votes, None, 0.3) == 1.0  # nobody marked: nothing to move
    votes[0, 5:9, 5:9] = True  # 16 pixels and a 4-neighbour ring of 16
    assert near_vote_scale(votes, None, 0.5) == pytest.approx(400 / 16)
    assert near_vote_scale(votes, 200, 0.0) == pytest.approx(200 / 32)


def test_whole_image_gold_priors_inform_the_near_vote_rates_without_inflating_them() -> None:
    # Priors scored the way gold is (true negatives over the whole image) say q is 0.98 to
    # 0.9998; the EM estimates q near votes. Moved onto that scale they agree with what the
    # data say; taken as they are they pull every q up towards 1.
    rng = np.random.default_rng(7)
    yy, xx = np.ogrid[:80, :80]
    truths = [
        np.any([(yy - y) ** 2 + (xx - x) ** 2 <= 9 for y, x in rng.integers(10, 70, (3, 2))], 0)
        for _ in range(150)
    ]
    grow = {1: 0, 2: -1, 3: 2}  # exact, one pixel too tight, two pixels too wide
    slices, totals = [], {r: RaterTotals() for r in grow}
    for n, truth in enumerate(truths):
        votes = np.array(
            [
                ndimage.binary_dilation(truth, iterations=g)
                if g > 0
                else ndimage.binary_erosion(truth, iterations=-g)
                if g < 0
                else truth
                for g in grow.values()
            ]
        )
        slices.append(CrowdSlice(list(grow), votes))
        if n % 10 == 0:  # a gold slice: scored over the whole image
            for r, vote in zip(grow, votes, strict=True):
                found = scoring.score(truth, vote)
                totals[r] = scoring.add_gold(totals[r], found, None, Thresholds())
    priors = {
        r: Priors(reliability(t).sensitivity, reliability(t).specificity) for r, t in totals.items()
    }
    assert all(p.specificity.mean > 0.98 for p in priors.values())
    plain = crowd_staple(slices)
    scaled = crowd_staple(slices, priors=priors)
    unscaled = crowd_staple(slices, priors=priors, rescale_priors=False)
    for r in grow:
        assert scaled.specificity[r] == pytest.approx(plain.specificity[r], abs=0.01)
    # The wide rater's q near votes is about 0.39; the unmoved prior drags it to 0.48 (and
    # the real masks' posterior loses 0.11 Dice for it: test_simulation).
    assert unscaled.specificity[3] > plain.specificity[3] + 0.05
