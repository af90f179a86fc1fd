"""Synthetic demo cases: realistic contrasts, lesions where MS puts them, reproducible by seed."""

from collections import Counter

import numpy as np
import pytest

from backend.imaging.models import Contrast
from backend.imaging.synthetic import LesionSite, SyntheticCase, synthesize_case


@pytest.fixture(scope="module")
def case() -> SyntheticCase:
    return synthesize_case(1)


def test_lesions_cover_every_typical_site_with_a_range_of_sizes(case: SyntheticCase) -> None:
    sites = Counter(lesion.site for lesion in case.lesions)
    assert set(sites) == set(LesionSite)
    sizes = sorted(lesion.voxels for lesion in case.lesions)
    assert sizes[0] < 50 < sizes[-1]
    assert case.lesion_mask.sum() == pytest.approx(sum(sizes), rel=0.2)
    assert case.source.reference is not None
    assert np.array_equal(np.asarray(case.source.reference.dataobj), case.lesion_mask)


def test_contrasts_show_lesions_as_ms_does(case: SyntheticCase) -> None:
    lesion = case.lesion_mask > 0
    images = {c: np.asarray(img.dataobj) for c, img in case.source.images.items()}
    assert set(images) == {Contrast.flair, Contrast.t1, Contrast.t2}
    flair, t1, t2 = images[Contrast.flair], images[Contrast.t1], images[Contrast.t2]
    brain = flair > 0
    # Normal-appearing tissue: bright on T1 (white matter) ...
    tissue = brain & ~lesion & (t1 > np.percentile(t1[brain], 70))
    assert flair[lesion].mean() > 1.5 * flair[tissue].mean()  # hyperintense on FLAIR
    assert t2[lesion].mean() > 1.5 * t2[tissue].mean()  # hyperintense on T2
    assert t1[lesion].mean() < 0.7 * t1[tissue].mean()  # hypointense on T1
    # Skull-stripped with Rician noise: zero outside, no two voxels of tissue alike.
    assert (flair[~brain] == 0).all()
    assert np.unique(flair[tissue]).size > 0.9 * tissue.sum()


def test_seed_decides_everything(case: SyntheticCase) -> None:
    again = synthesize_case(1)
    assert again.source.fingerprint == case.source.fingerprint
    assert again.lesions == case.lesions
    assert np.array_equal(
        np.asarray(again.source.images[Contrast.flair].dataobj),
        np.asarray(case.source.images[Contrast.flair].dataobj),
    )
    other = synthesize_case(2, lesion_count=3)
    assert other.source.fingerprint != case.source.fingerprint
    assert not np.array_equal(other.lesion_mask, case.lesion_mask)
