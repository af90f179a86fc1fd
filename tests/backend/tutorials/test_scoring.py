"""Judging an attempt and drawing its slices (pure functions, no database)."""

import random

import pytest

from backend.tutorials.models import LesionLoad, MaterialKind, TutorialSlice
from backend.tutorials.qualification import composition, draw
from backend.tutorials.scoring import ItemScore, Limits, judge


def _lesion(found: int, of: int, tp: int = 90, fp: int = 10, fn: int = 10) -> ItemScore:
    return ItemScore(
        kind=MaterialKind.lesion,
        mimic=None,
        painted=tp + fp,
        tp=tp,
        fp=fp,
        fn=fn,
        dice=2 * tp / (2 * tp + fp + fn),
        lesion_f1=found / of,
        lesions_reference=of,
        lesions_found=found,
        lesions_predicted=found,
        false_alarms=0,
    )


def _clean(kind: MaterialKind, false_alarms: int, mimic: str | None = None) -> ItemScore:
    return ItemScore(
        kind=kind,
        mimic=mimic,
        painted=20 * false_alarms,
        tp=0,
        fp=20 * false_alarms,
        fn=0,
        dice=0.0 if false_alarms else 1.0,
        lesion_f1=0.0 if false_alarms else 1.0,
        lesions_reference=0,
        lesions_found=0,
        lesions_predicted=false_alarms,
        false_alarms=false_alarms,
    )


def test_a_test_holds_half_lesion_slices_then_mimics_and_empty_slices() -> None:
    kinds = [kind for kind, _load in composition(10)]
    assert kinds.count(MaterialKind.lesion) == 5
    assert kinds.count(MaterialKind.mimic) == 3
    assert kinds.count(MaterialKind.empty) == 2
    loads = {load for kind, load in composition(10) if kind is MaterialKind.lesion}
    assert loads == set(LesionLoad)


@pytest.mark.parametrize(("dirty", "passed"), [(0, True), (2, True), (3, False)])
def test_three_of_five_clean_slices_are_enough(dirty: int, passed: bool) -> None:
    # The default pass mark (Limits.min_clean 0.6; bench/qualification.py): a test's three
    # mimic slices painted fail it, as does any three of its five clean slices.
    lesions = [_lesion(2, 2) for _ in range(5)]
    clean = [_clean(MaterialKind.mimic, int(i < dirty), "choroid_plexus") for i in range(5)]
    result = judge([*lesions, *clean], Limits())
    assert result.passed is passed
    assert result.clean == 5 - dirty
    if not passed:
        assert result.mimics_fooled == ["choroid_plexus"]
        assert "mimics" in result.lessons


def test_missing_most_lesions_fails_and_points_to_the_lessons() -> None:
    result = judge([_lesion(1, 4, tp=20, fp=5, fn=80) for _ in range(5)], Limits())
    assert not result.passed
    assert result.lesions_found == 5
    assert result.lesions_reference == 20
    assert result.lessons[:2] == ["reading-the-images", "where-lesions-sit"]


def test_the_draw_prefers_slices_the_volunteer_never_had() -> None:
    pool = [
        TutorialSlice(slice_id=i, case_id=1, kind=MaterialKind.lesion, load=LesionLoad.medium)
        for i in range(10)
    ] + [TutorialSlice(slice_id=100 + i, case_id=1, kind=MaterialKind.empty) for i in range(10)]
    seen = {0, 1, 2, 100, 101}
    chosen = draw(pool, seen, 6, random.Random(1), reserved=frozenset({3, 102}))
    ids = {s.slice_id for s in chosen}
    assert len(ids) == 6
    assert not ids & (seen | {3, 102})
    # A pool too small for fresh slices still fills the test, never the same slice twice.
    small = draw(pool[:3] + pool[10:13], seen, 6, random.Random(1))
    assert len({s.slice_id for s in small}) == 6


def test_a_fresh_slice_of_another_load_comes_before_one_the_volunteer_had() -> None:
    # Red team, 2026-12-07: with the large-load slices used up, the draw served ones the
    # volunteer had before (their feedback seen) while fresh medium ones were left.
    pool = [
        TutorialSlice(slice_id=i, case_id=1, kind=MaterialKind.lesion, load=LesionLoad.large)
        for i in range(3)
    ] + [
        TutorialSlice(slice_id=10 + i, case_id=1, kind=MaterialKind.lesion, load=LesionLoad.medium)
        for i in range(10)
    ]
    seen = {0, 1, 2}
    for seed in range(20):
        chosen = draw(pool, seen, 2, random.Random(seed))
        assert not {s.slice_id for s in chosen} & seen
