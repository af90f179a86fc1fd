"""Points follow quality (pure rules), levels, and badges as data: the shipped file, a broken
one reported at its line, and every rule judged on facts."""

from pathlib import Path

import pytest

from backend.gamification import badges, rules
from backend.gamification.badges import Facts, load_badges
from backend.tutorials.content import ContentError


def test_gold_points_scale_with_the_score() -> None:
    perfect = rules.gold_quality(dice=1.0, lesion_f1=1.0, gold_has_lesions=True, painted=True)
    careless = rules.gold_quality(dice=0.3, lesion_f1=0.2, gold_has_lesions=True, painted=True)
    assert rules.scaled(perfect, rules.GOLD_POINTS) == 10
    assert rules.scaled(careless, rules.GOLD_POINTS) == 1  # 0.25 squared: 0.6 of a point
    assert rules.scaled(0.5, rules.GOLD_POINTS) == 2  # half right: a quarter of the points
    assert rules.scaled(0.9, rules.GOLD_POINTS) == 8
    assert rules.scaled(0.1, rules.GOLD_POINTS) == 0  # under MIN_QUALITY: nothing
    clean = rules.gold_quality(dice=1.0, lesion_f1=1.0, gold_has_lesions=False, painted=False)
    painted = rules.gold_quality(dice=0.0, lesion_f1=0.0, gold_has_lesions=False, painted=True)
    assert (clean, painted) == (1.0, 0.0)


def test_agreement_with_an_empty_fused_label() -> None:
    assert rules.agreement(dice=1.0, fused_has_lesions=False, painted=False) == 1.0
    assert rules.agreement(dice=0.0, fused_has_lesions=False, painted=True) == 0.0
    assert rules.agreement(dice=0.7, fused_has_lesions=True, painted=True) == 0.7


def test_too_fast_reads_the_spam_threshold() -> None:
    assert rules.too_fast(900, 1500)
    assert not rules.too_fast(1500, 1500)
    assert not rules.too_fast(None, 1500)  # no timing: judged by the other rules


def test_levels() -> None:
    assert rules.level_of(0).number == 1
    assert rules.level_of(49).name == "Newcomer"
    spotter = rules.level_of(50)
    assert (spotter.number, spotter.floor, spotter.next_floor) == (2, 50, 150)
    assert spotter.progress(100) == pytest.approx(0.5)
    top = rules.level_of(10**9)
    assert top.next_floor is None
    assert top.progress(10**9) == 1.0
    assert rules.level_of(-5).number == 1  # corrections may take a total below zero


def test_the_shipped_badges_validate_and_cover_the_issue() -> None:
    shipped = load_badges()
    ids = {b.id for b in shipped.badges}
    assert {
        "first-label",
        "ten-slices",
        "hundred-slices",
        "thousand-slices",
        "sharp-outline",
        "eagle-eye",
        "rare-find",
        "streak-3",
        "streak-7",
        "streak-30",
        "graduate",
        "explorer",
        "model-trainer",
    } <= ids


BROKEN = """\
version: 1
badges:
  - id: first-label
    name: First label
    description: Label one slice.
    points: 5
    rule: {kind: answers, at_least: 1}
  - id: first-label
    name: Again
    description: A copy.
    points: 5
    rule: {kind: answers, at_least: 2}
  - id: odd
    name: Odd
    description: Unknown rule.
    points: 5
    rule: {kind: luck}
"""


def test_a_broken_badge_file_names_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "badges.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ContentError) as raised:
        load_badges(path)
    assert any(p.startswith("badges.yaml:17:") for p in raised.value.problems), raised.value
    path.write_text(BROKEN.replace("    rule: {kind: luck}\n", "    rule: {kind: qualified}\n"))
    with pytest.raises(ContentError) as raised:
        load_badges(path)
    assert raised.value.problems == ["badges.yaml:8: duplicate id 'first-label'"]


@pytest.mark.parametrize(
    ("badge", "short", "enough"),
    [
        ("first-label", Facts(), Facts(answers=1)),
        ("thousand-slices", Facts(answers=999), Facts(answers=1000)),
        ("sharp-outline", Facts(best_gold_dice=0.79), Facts(best_gold_dice=0.8)),
        (
            "eagle-eye",
            Facts(gold_with_lesions=19, lesion_f1=0.9),
            Facts(gold_with_lesions=20, lesion_f1=0.8),
        ),
        (
            "eagle-eye",
            Facts(gold_with_lesions=40, lesion_f1=0.79),
            Facts(gold_with_lesions=20, lesion_f1=0.8),
        ),
        ("rare-find", Facts(), Facts(rare_finds=1)),
        ("clean-eye", Facts(clean_gold=9), Facts(clean_gold=10)),
        ("streak-7", Facts(longest_streak=6), Facts(longest_streak=7)),
        ("graduate", Facts(), Facts(qualified=True)),
        ("explorer", Facts(cases=9), Facts(cases=10)),
        ("model-trainer", Facts(), Facts(trained_models=1)),
        ("confirmed-ten", Facts(confirmed=9), Facts(confirmed=10)),
    ],
)
def test_every_rule_is_judged_on_its_facts(badge: str, short: Facts, enough: Facts) -> None:
    found = badges.by_id(badge)
    assert found is not None
    assert not badges.earned(found.rule, short)
    assert badges.progress(found.rule, short) < 1.0
    assert badges.earned(found.rule, enough)
