"""How many points an answer earns, and levels (pure; no database).

Points follow quality, never volume alone: a check answer earns up to ``GOLD_POINTS`` scaled
by its score against gold (the mean of Dice and lesion-wise F1 where the slice has lesions; a
clean answer where it has none), a normal answer up to ``CONFIRMED_POINTS`` scaled by its
agreement with its task's fused label once enough volunteers answered, and a slice that was
hard (escalated for disagreement, or uncertain) a bonus scaled the same way. The scale is
the square of the quality: a half-right answer earns a quarter of a right one, so answering
twice as fast and half as well never pays (linear points did: on the simulated crowd a
careless rater at a tenth of the time earned 54 % of a careful one's points per answer). An
answer faster than the project's spam threshold earns nothing, whatever it shows.
"""

from dataclasses import dataclass

GOLD_POINTS = 10
CONFIRMED_POINTS = 10
HARD_BONUS = 5
# Below this agreement an answer earns nothing: a careless answer must not farm a trickle.
MIN_QUALITY = 0.2


def scaled(quality: float, top: int) -> int:
    """``top`` points scaled by the square of ``quality`` (0..1); nothing under
    ``MIN_QUALITY``."""
    q = min(max(float(quality), 0.0), 1.0)
    return 0 if q < MIN_QUALITY else int(round(top * q * q))


def gold_quality(*, dice: float, lesion_f1: float, gold_has_lesions: bool, painted: bool) -> float:
    """The quality of a check answer: mean of Dice and lesion-wise F1 on a slice with lesions;
    1 for leaving a slice without lesions clean, else 0."""
    if not gold_has_lesions:
        return 0.0 if painted else 1.0
    return (dice + lesion_f1) / 2.0


def agreement(*, dice: float, fused_has_lesions: bool, painted: bool) -> float:
    """A normal answer's agreement with its task's fused label: Dice where either holds
    lesions; 1 when both are empty."""
    if not fused_has_lesions and not painted:
        return 1.0
    return dice


def too_fast(duration_ms: int | None, fast_ms: int) -> bool:
    """Under the spam rule's threshold (``Thresholds.fast_ms``): no points."""
    return duration_ms is not None and duration_ms < fast_ms


@dataclass(frozen=True)
class Level:
    number: int
    name: str
    floor: int  # points at which it starts
    next_floor: int | None  # points of the next level; None at the top

    def progress(self, total: int) -> float:
        """Share of the way to the next level (1.0 at the top)."""
        if self.next_floor is None:
            return 1.0
        return (total - self.floor) / (self.next_floor - self.floor)


# Each level about twice the one before: the first arrive within a session, later ones mark
# weeks of careful work.
LEVELS: list[tuple[int, str]] = [
    (0, "Newcomer"),
    (50, "Spotter"),
    (150, "Tracer"),
    (400, "Reader"),
    (1_000, "Analyst"),
    (2_500, "Specialist"),
    (6_000, "Expert eye"),
    (15_000, "Master"),
]


def level_of(total: int) -> Level:
    """The level of ``total`` points."""
    index = max(i for i, (floor, _name) in enumerate(LEVELS) if total >= floor or i == 0)
    floor, name = LEVELS[index]
    following = LEVELS[index + 1][0] if index + 1 < len(LEVELS) else None
    return Level(number=index + 1, name=name, floor=floor, next_floor=following)
