"""Synthetic demo cases: realistic contrasts, lesions where MS puts them, reproducible by seed."""

import hashlib
from collections import Counter

import numpy as np
import pytest
from scipy import ndimage

from backend.imaging.mimics import MimicKind, code
from backend.imaging.models import Contrast
from backend.imaging.synthetic import (
    MIN_VISIBLE_VOXELS,
    LesionSite,
    SyntheticCase,
    mimic_slices,
    synthesize_case,
    synthetic_fingerprint,
)


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


# sha256 of seed 1's FLAIR voxels as synthesised before mimics existed: demo data and stored
# fingerprints depend on a plain case never changing. (Float results are reproducible on one
# platform; a new numpy or scipy may legitimately move this, and then the demo data with it.)
SEED_1_FLAIR_SHA256 = "952fa6d5ac01f32d30cf5db8607955aeb0657c58bd8a53b634011a515a6fdb96"
SEED_1_FINGERPRINT = "7874bd01a27c7ea10ed1e9e633260ce5601a30268a1c3943b9d834187d88e3f1"
MIMIC_SEED, MIMIC_LESIONS = 1, 4


@pytest.fixture(scope="module")
def mimic_case() -> SyntheticCase:
    return synthesize_case(MIMIC_SEED, lesion_count=MIMIC_LESIONS, mimics=True)


@pytest.fixture(scope="module")
def plain_case() -> SyntheticCase:
    """The same case without mimics: what the image would be without them (same noise)."""
    return synthesize_case(MIMIC_SEED, lesion_count=MIMIC_LESIONS)


def _images(case: SyntheticCase) -> dict[Contrast, np.ndarray]:
    return {c: np.asarray(img.dataobj) for c, img in case.source.images.items()}


def _of(case: SyntheticCase, kind: MimicKind) -> np.ndarray:
    voxels: np.ndarray = case.mimic_labels == code(kind)
    return voxels


def _surround(
    case: SyntheticCase, region: np.ndarray, images: dict[Contrast, np.ndarray]
) -> np.ndarray:
    """Brain voxels 2-3 voxels around ``region``, clear of every mimic and lesion."""
    labelled = (case.mimic_labels > 0) | (case.lesion_mask > 0)
    near = ndimage.binary_dilation(region, iterations=3)
    around: np.ndarray = near & ~ndimage.binary_dilation(labelled) & (images[Contrast.flair] > 0)
    return around


def _white(case: SyntheticCase, images: dict[Contrast, np.ndarray]) -> np.ndarray:
    """Normal-appearing white matter: the brightest T1 of the brain, no lesion or mimic."""
    t1, brain = images[Contrast.t1], images[Contrast.flair] > 0
    clear = (case.mimic_labels == 0) & (case.lesion_mask == 0)
    white: np.ndarray = brain & clear & (t1 > np.percentile(t1[brain], 70))
    return white


def test_plain_cases_stay_what_they_were(case: SyntheticCase) -> None:
    flair = np.asarray(case.source.images[Contrast.flair].dataobj)
    assert hashlib.sha256(flair.tobytes()).hexdigest() == SEED_1_FLAIR_SHA256
    assert case.source.fingerprint == SEED_1_FINGERPRINT == synthetic_fingerprint(1)
    assert synthetic_fingerprint(1, None, mimics=True) != SEED_1_FINGERPRINT
    assert case.mimics == []
    assert not case.mimic_labels.any()
    assert case.mimic_labels.shape == case.lesion_mask.shape


def test_every_kind_of_mimic_is_where_its_labels_say(mimic_case: SyntheticCase) -> None:
    kinds = Counter(m.kind for m in mimic_case.mimics)
    assert set(kinds) == set(MimicKind)
    assert kinds[MimicKind.perivascular_space] >= 4
    assert set(np.unique(mimic_case.mimic_labels)) == {0, *(code(k) for k in MimicKind)}
    for mimic in mimic_case.mimics:
        assert mimic_case.mimic_labels[mimic.centre] == code(mimic.kind)
    for kind in MimicKind:
        recorded = sum(m.voxels for m in mimic_case.mimics if m.kind is kind)
        assert recorded == _of(mimic_case, kind).sum() > 0


def test_mimics_are_left_out_of_the_lesion_mask(
    mimic_case: SyntheticCase, plain_case: SyntheticCase
) -> None:
    assert not (mimic_case.mimic_labels[mimic_case.lesion_mask > 0]).any()
    # The reference is the lesions alone, placed as without mimics.
    assert mimic_case.lesions == plain_case.lesions
    assert np.array_equal(mimic_case.lesion_mask, plain_case.lesion_mask)
    assert mimic_case.source.reference is not None
    assert np.array_equal(np.asarray(mimic_case.source.reference.dataobj), plain_case.lesion_mask)


def test_mimics_change_the_image_only_where_they_are(
    mimic_case: SyntheticCase, plain_case: SyntheticCase
) -> None:
    images, plain = _images(mimic_case), _images(plain_case)
    near = ndimage.binary_dilation(mimic_case.mimic_labels > 0, iterations=2)
    for contrast in images:
        changed = images[contrast] != plain[contrast]
        assert changed.any()
        assert not (changed & ~near).any()
    # The flow ghosts: brighter than the same voxels without them, on FLAIR only.
    ghost = _of(mimic_case, MimicKind.flow_artefact)
    added = images[Contrast.flair][ghost] - plain[Contrast.flair][ghost]
    white = np.median(images[Contrast.flair][_white(mimic_case, images)])
    assert (added > 0).all()
    assert np.median(added) > 0.15 * white  # measured 0.22: faint, fainter than a lesion
    for contrast in (Contrast.t1, Contrast.t2):
        assert np.array_equal(images[contrast][ghost], plain[contrast][ghost])


def test_perivascular_spaces_look_like_csf(mimic_case: SyntheticCase) -> None:
    images = _images(mimic_case)
    pvs = _of(mimic_case, MimicKind.perivascular_space)
    around = _surround(mimic_case, pvs, images)
    flair, t1, t2 = (np.median(images[c][pvs]) for c in (Contrast.flair, Contrast.t1, Contrast.t2))
    assert flair < 0.6 * np.median(images[Contrast.flair][around])  # measured 0.37
    assert t1 < 0.6 * np.median(images[Contrast.t1][around])  # measured 0.36
    assert t2 > 1.5 * np.median(images[Contrast.t2][around])  # measured 2.0


def test_caps_are_brighter_than_white_matter_and_fainter_than_lesions(
    mimic_case: SyntheticCase,
) -> None:
    images = _images(mimic_case)
    flair = images[Contrast.flair]
    caps = _of(mimic_case, MimicKind.periventricular_cap)
    nearby_white = _surround(mimic_case, caps, images) & _white(mimic_case, images)
    assert np.median(flair[caps]) > 1.15 * np.median(flair[nearby_white])  # measured 1.27
    assert np.median(flair[caps]) < 0.85 * np.median(flair[mimic_case.lesion_mask > 0])  # 0.75


def test_choroid_plexus_sits_in_ventricular_csf(mimic_case: SyntheticCase) -> None:
    images = _images(mimic_case)
    flair, t2 = images[Contrast.flair], images[Contrast.t2]
    brain = flair > 0
    plexus = _of(mimic_case, MimicKind.choroid_plexus)
    # CSF estimated as a volunteer would, from T2: white matter 0, the brightest fluid 1.
    white_t2, fluid_t2 = np.median(t2[_white(mimic_case, images)]), np.percentile(t2[brain], 99)
    csf = np.clip((t2 - white_t2) / (fluid_t2 - white_t2), 0, 1)
    touching = ndimage.binary_dilation(plexus) & ~plexus & brain & (mimic_case.mimic_labels == 0)
    assert (csf[touching] > 0.5).mean() > 0.9  # measured 0.99
    assert csf[touching].mean() > 0.7  # measured 0.82
    # Bright against the nulled fluid on FLAIR, a little darker than it on T2.
    fluid = brain & (csf > 0.9) & (mimic_case.mimic_labels == 0)
    assert np.median(flair[plexus]) > 2.5 * np.median(flair[fluid])  # measured 2.9
    assert np.median(flair[plexus]) > 1.4 * np.median(flair[touching & (csf > 0.8)])  # 1.7
    assert np.median(t2[plexus]) < np.median(t2[touching & (csf > 0.8)])  # measured 0.9


def test_mimics_follow_the_seed(mimic_case: SyntheticCase, plain_case: SyntheticCase) -> None:
    again = synthesize_case(MIMIC_SEED, lesion_count=MIMIC_LESIONS, mimics=True)
    assert again.source.fingerprint == mimic_case.source.fingerprint
    assert again.source.fingerprint != plain_case.source.fingerprint
    assert again.mimics == mimic_case.mimics
    assert np.array_equal(again.mimic_labels, mimic_case.mimic_labels)
    for contrast, image in _images(mimic_case).items():
        assert np.array_equal(np.asarray(again.source.images[contrast].dataobj), image)


def test_mimic_slices_show_a_kind_and_no_lesion(mimic_case: SyntheticCase) -> None:
    shown = mimic_slices(mimic_case)
    alone = mimic_slices(mimic_case, only=True)
    lesion_per_slice = mimic_case.lesion_mask.sum(axis=(0, 1))
    for kind in MimicKind:
        per_slice = _of(mimic_case, kind).sum(axis=(0, 1))
        assert shown[kind], kind
        assert all(lesion_per_slice[z] == 0 for z in shown[kind])
        assert all(per_slice[z] >= MIN_VISIBLE_VOXELS[kind] for z in shown[kind])
        assert set(alone[kind]) <= set(shown[kind])
        for z in alone[kind]:
            assert set(np.unique(mimic_case.mimic_labels[:, :, z])) == {0, code(kind)}
    assert alone[MimicKind.perivascular_space]
    # Any axis: sagittal slices too.
    sagittal = mimic_slices(mimic_case, axis=0)
    assert all(0 <= x < mimic_case.lesion_mask.shape[0] for x in sagittal[MimicKind.choroid_plexus])
    assert sagittal[MimicKind.choroid_plexus]
