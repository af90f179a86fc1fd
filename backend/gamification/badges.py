"""Badges as data (``badges.yaml``): the schema, the loader (every problem as ``path:line``,
checked when the server and CLI start), and the rules evaluated on a volunteer's facts (pure).

A rule names a kind and its parameters; ``earned`` says whether facts meet it and
``progress`` how far along they are (0..1), for the profile's "next badges".
"""

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from backend.tutorials.content import SLUG, ContentError
from backend.tutorials.sources import Problem, parse_yaml, read_text

BADGES_FILE = Path(__file__).with_name("badges.yaml")


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Answers(_Rule):
    kind: Literal["answers"]
    at_least: int = Field(ge=1)


class GoldDice(_Rule):
    kind: Literal["gold_dice"]
    at_least: float = Field(gt=0, le=1)


class GoldF1(_Rule):
    kind: Literal["gold_f1"]
    gold: int = Field(ge=1)  # check answers on slices with lesions, at least
    at_least: float = Field(gt=0, le=1)


class RareFind(_Rule):
    kind: Literal["rare_find"]
    others: int = Field(ge=1)  # other volunteers' answers on the slice, at least


class CleanGold(_Rule):
    kind: Literal["clean_gold"]
    at_least: int = Field(ge=1)


class StreakRule(_Rule):
    kind: Literal["streak"]
    days: int = Field(ge=2)


class Qualified(_Rule):
    kind: Literal["qualified"]


class Cases(_Rule):
    kind: Literal["cases"]
    at_least: int = Field(ge=1)


class TrainedModel(_Rule):
    kind: Literal["trained_model"]


class Confirmed(_Rule):
    kind: Literal["confirmed"]
    at_least: int = Field(ge=1)


Rule = Annotated[
    Answers
    | GoldDice
    | GoldF1
    | RareFind
    | CleanGold
    | StreakRule
    | Qualified
    | Cases
    | TrainedModel
    | Confirmed,
    Field(discriminator="kind"),
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=r"^[^\n]+$")]
Line = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\n]+$")]


class Badge(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(pattern=SLUG, max_length=64)]
    name: Name
    description: Line
    points: int = Field(ge=0, le=1000)
    rule: Rule


class BadgeFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1)
    badges: list[Badge] = Field(min_length=1)


@dataclass(frozen=True)
class Facts:
    """What the rules read about one volunteer (``service.facts``)."""

    answers: int = 0  # real answers (no practice, no test items)
    best_gold_dice: float = 0.0  # on check slices with lesions
    gold_with_lesions: int = 0
    lesion_f1: float = 0.0  # pooled over those (found and painted lesions)
    rare_finds: int = 0
    clean_gold: int = 0
    longest_streak: int = 0
    qualified: bool = False
    cases: int = 0
    trained_models: int = 0
    confirmed: int = 0


def _share(value: float, target: float) -> float:
    return min(1.0, max(0.0, value / target)) if target else 1.0


def progress(rule: _Rule, facts: Facts) -> float:
    """How far ``facts`` are along ``rule`` (1.0: earned)."""
    match rule:
        case Answers(at_least=n):
            return _share(facts.answers, n)
        case GoldDice(at_least=x):
            return 1.0 if facts.best_gold_dice >= x else _share(facts.best_gold_dice, x)
        case GoldF1(gold=n, at_least=x):
            if facts.gold_with_lesions < n:
                return _share(facts.gold_with_lesions, n) * 0.99
            return 1.0 if facts.lesion_f1 >= x else _share(facts.lesion_f1, x) * 0.99
        case RareFind():
            return 1.0 if facts.rare_finds else 0.0
        case CleanGold(at_least=n):
            return _share(facts.clean_gold, n)
        case StreakRule(days=n):
            return _share(facts.longest_streak, n)
        case Qualified():
            return 1.0 if facts.qualified else 0.0
        case Cases(at_least=n):
            return _share(facts.cases, n)
        case TrainedModel():
            return 1.0 if facts.trained_models else 0.0
        case Confirmed(at_least=n):
            return _share(facts.confirmed, n)
    raise AssertionError(f"no rule {rule!r}")


def earned(rule: _Rule, facts: Facts) -> bool:
    return progress(rule, facts) >= 1.0


def load_badges(path: Path = BADGES_FILE) -> BadgeFile:
    """The badge file, validated; ``ContentError`` naming each problem's line otherwise."""
    rel = path.name
    text, problems = read_text(path, rel)
    source = None
    if text is not None:
        source, problems = parse_yaml(text, rel)
    if source is None:
        raise ContentError(problems)
    try:
        loaded = BadgeFile.model_validate(source.data)
    except ValidationError as error:
        raise ContentError(problems + source.invalid(error)) from None
    ids = [badge.id for badge in loaded.badges]
    for index, value in enumerate(ids):
        if value in ids[:index]:
            problems.append(source.problem(("badges", index, "id"), f"duplicate id {value!r}"))
    if problems:
        raise ContentError(sorted(problems))
    return loaded


@cache
def catalog() -> BadgeFile:
    return load_badges()


def by_id(badge_id: str) -> Badge | None:
    return next((b for b in catalog().badges if b.id == badge_id), None)


__all__ = ["Badge", "BadgeFile", "Facts", "Problem", "catalog", "earned", "load_badges"]
