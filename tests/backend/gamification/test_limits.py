"""Per-volunteer submission limits: an honest fast rater never meets them; a flood is refused
with Retry-After until its window has room; volunteers do not share a window."""

import pytest

from backend.core.errors import TooManyAttempts
from backend.gamification.limits import SubmitLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_honest_fast_rater_for_an_hour_is_never_limited() -> None:
    clock = Clock()
    limit = SubmitLimit(clock=clock)
    for _ in range(1700):  # one answer every 2.1 s for an hour, no answer under the spam rule
        limit.check(1)
        clock.now += 2.1


def test_a_flood_is_refused_with_retry_after_and_let_through_later() -> None:
    clock = Clock()
    limit = SubmitLimit(clock=clock)
    for _ in range(60):
        limit.check(7)
        clock.now += 0.2
    with pytest.raises(TooManyAttempts) as refused:
        limit.check(7)
    assert 1 <= refused.value.retry_after <= 60
    assert refused.value.headers == {"Retry-After": str(refused.value.retry_after)}
    limit.check(8)  # another volunteer is not affected
    clock.now += refused.value.retry_after
    limit.check(7)


def test_the_hourly_window() -> None:
    clock = Clock()
    limit = SubmitLimit(windows=((60.0, 60), (3600.0, 100)), clock=clock)
    for _ in range(100):
        limit.check(3)
        clock.now += 1.5
    with pytest.raises(TooManyAttempts) as refused:
        limit.check(3)
    assert refused.value.retry_after > 60
