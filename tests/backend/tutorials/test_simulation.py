"""The qualification test on simulated raters (bench/qualification.py, fewer attempts): good
raters pass, poor ones and spammers fail, with the product's composition, draw and pass marks.
On real expert masks when the open MS data is here, else on the demo generator's."""

from bench.qualification import build_pool, lesion_masks, simulate

ATTEMPTS = 20


def test_the_test_passes_good_raters_and_fails_poor_ones_and_spammers() -> None:
    masks, _source = lesion_masks(synthetic=False, count=300)
    pool = build_pool(masks, clean=30, held_out=len(masks) // 2)
    outcomes = simulate(pool, ATTEMPTS)
    good = [o for o in outcomes if o.should_pass is True]
    bad = [o for o in outcomes if o.should_pass is False]
    assert len(good) >= 3
    assert len(bad) >= 3  # the spread covers both sides
    assert sum(o.passed for o in good) / len(good) >= 0.9, good
    assert sum(o.passed for o in bad) / len(bad) <= 0.1, bad
    assert all(o.passed == 0 for o in outcomes if o.spammer), outcomes
    assert next(o for o in outcomes if o.name == "expert-like").passed == 1.0
