"""2.5-D stacks and lesion-centred patches: shapes, the neighbour layout, edge repetition,
normalisation, class balance and determinism under a seed."""

import numpy as np
import pytest

from ml.data import (
    CLIP,
    DEFAULT_LESION_CONTRAST,
    CaseArrays,
    PatchSampler,
    lesion_contrast,
    lesion_load,
    lightly_loaded,
    normalise,
    plant_lesions,
    sample_patches,
    stack,
)


def _case(seed: int = 0) -> CaseArrays:
    rng = np.random.default_rng(seed)
    shape = (40, 48, 12)
    brain = np.zeros(shape, dtype=bool)
    brain[4:36, 4:44, :] = True
    label = np.zeros(shape)
    label[10:14, 20:24, 5:8] = 1.0  # one small lesion: 48 of 23,040 brain voxels
    volumes = [rng.normal(100 * (k + 1), 10, shape) for k in range(3)]
    return CaseArrays.from_volumes("c", volumes, brain, label)


def test_normalise_is_a_clipped_z_score_inside_the_brain() -> None:
    case = _case()
    for k in range(3):
        inside = case.images[k][case.brain]
        assert abs(float(inside.mean())) < 0.05
        assert abs(float(inside.std()) - 1) < 0.05
        assert not case.images[k][~case.brain].any()
    spiky = np.ones((4, 4, 4))
    spiky[0, 0, 0] = 1e9
    assert normalise(spiky, np.ones((4, 4, 4), bool)).max() == CLIP
    with pytest.raises(ValueError, match="empty"):
        normalise(spiky, np.zeros((4, 4, 4), bool))


def test_stack_orders_contrasts_by_slice_and_repeats_the_edge() -> None:
    case = _case()
    planes = stack(case, 0, neighbours=1)
    assert planes.shape == (9, 40, 48)
    assert np.array_equal(planes[0:3], case.images[:, :, :, 0])  # below the edge: the edge
    assert np.array_equal(planes[3:6], case.images[:, :, :, 0])
    assert np.array_equal(planes[6:9], case.images[:, :, :, 1])
    assert stack(case, 5, neighbours=0).shape == (3, 40, 48)


def test_patches_are_lesion_centred_at_the_share_asked_and_seeded() -> None:
    case = _case()
    inputs, targets = sample_patches([case], 200, 16, 1, 0.5, np.random.default_rng(1))
    assert inputs.shape == (200, 9, 16, 16)
    assert targets.shape == (200, 1, 16, 16)
    centred = targets[:, 0, 8, 8] >= 0.5
    assert 0.45 <= centred.mean() <= 0.6  # half by design, plus brain picks that hit it
    again = sample_patches([case], 200, 16, 1, 0.5, np.random.default_rng(1))
    assert np.array_equal(again[0], inputs)
    # Without the balance, lesion-centred patches are as rare as lesion voxels.
    _, plain = sample_patches([case], 200, 16, 1, 0.0, np.random.default_rng(1))
    assert (plain[:, 0, 8, 8] >= 0.5).mean() < 0.05
    # Only labelled slices are used.
    unlabelled = CaseArrays(
        case.name, case.images, case.brain, case.label, np.zeros(12, dtype=bool)
    )
    with pytest.raises(ValueError, match="nothing to train on"):
        sample_patches([unlabelled], 4, 16, 1, 0.5, np.random.default_rng(0))
    some = np.zeros(12, dtype=bool)
    some[[3, 7]] = True
    sampler = PatchSampler([CaseArrays(case.name, case.images, case.brain, case.label, some)])
    assert set(np.unique(sampler.brain[:, 3])) == {3, 7}
    assert len(sampler.brain) == int(case.brain[:, :, [3, 7]].sum())
    assert len(sampler.lesions) == int((case.label[:, :, [3, 7]] >= 0.5).sum())


def test_a_case_must_share_one_grid() -> None:
    case = _case()
    with pytest.raises(ValueError, match="one grid"):
        CaseArrays("bad", case.images[:, :-1], case.brain, case.label, case.labelled)
    with pytest.raises(ValueError, match="one flag per axial slice"):
        CaseArrays("bad", case.images, case.brain, case.label, case.labelled[:-1])


def test_planted_lesions_take_the_cases_own_contrast_and_join_the_label() -> None:
    case = _case()
    rng = np.random.default_rng(0)
    label = np.zeros(case.brain.shape, dtype=np.float32)
    label[8:14, 18:24, 4:9] = 1.0  # the case's own lesion (180 voxels): bright on FLAIR
    flair = case.images[0] + 3.0 * label
    case = CaseArrays(
        case.name, np.stack([flair, *case.images[1:]]), case.brain, label, case.labelled
    )
    offsets = lesion_contrast(case)
    assert offsets[0] > 2.5
    assert abs(offsets[1]) < 0.5
    mask = np.zeros(case.brain.shape, dtype=bool)
    mask[25:31, 30:36, 3:9] = True  # another patient's lesion, elsewhere
    mask[0:3, 0:3, :] = True  # outside the brain: not planted
    planted = plant_lesions(case, mask, rng)
    inside = mask & case.brain
    lift = planted.images[0][inside] - case.images[0][inside]
    assert float(np.median(lift)) > 2.0  # the case's own FLAIR contrast, soft at the edges
    assert float(np.abs(planted.images[1][inside] - case.images[1][inside]).mean()) < 0.5
    far = np.zeros(case.brain.shape, dtype=bool)
    far[4:18, 4:18, :] = True
    far &= case.label < 0.5
    assert np.array_equal(planted.images[:, far], case.images[:, far])
    assert not planted.images[:, ~case.brain].any()
    assert np.array_equal(planted.label >= 0.5, (case.label >= 0.5) | inside)
    assert planted.labelled.all()
    # A case with too few lesion voxels to measure falls back on the textbook contrast.
    assert lesion_contrast(_case()) == DEFAULT_LESION_CONTRAST
    with pytest.raises(ValueError, match="not on the case's grid"):
        plant_lesions(case, mask[:-1], rng)


def test_lesion_load_counts_labelled_slices_only_and_the_rule_compares_medians() -> None:
    case = _case()  # 48 lesion voxels over 12 labelled slices
    assert lesion_load(case) == pytest.approx(4.0)
    half = np.zeros(12, dtype=bool)
    half[:6] = True  # slices 0-5 hold the lesion's slice 5 only: 16 voxels over 6 slices
    assert lesion_load(CaseArrays(**{**case.__dict__, "labelled": half})) == pytest.approx(16 / 6)
    assert lesion_load(CaseArrays(**{**case.__dict__, "labelled": np.zeros(12, bool)})) == 0.0
    library = [np.zeros(case.brain.shape, dtype=bool) for _ in range(3)]
    for mask, voxels in zip(library, (24, 60, 600), strict=True):
        mask.reshape(-1)[:voxels] = True  # 2, 5 and 50 voxels per slice: median 5
    assert lightly_loaded([case], library)  # 4 < 5
    heavy = np.zeros(case.brain.shape, dtype=np.float32)
    heavy[10:20, 10:20, :] = 1.0  # 100 per slice
    loaded = CaseArrays(**{**case.__dict__, "label": heavy})
    assert not lightly_loaded([loaded], library)
    assert lightly_loaded([case, case, loaded], library)  # the median case decides
    assert not lightly_loaded([case, loaded, loaded], library)
    # Mutation check: the rule reads the library (a lighter library flips it).
    assert not lightly_loaded([case], library[:1])
    with pytest.raises(ValueError, match="needs training cases"):
        lightly_loaded([], library)
