"""Streaks in the volunteer's own time zone: midnight, a daylight-saving change, the weekly
freeze (one missed day a week bridged, never two), and today still open."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from backend.gamification.streaks import UnknownTimeZone, local_days, streak, week_of, zone

MONDAY = date(2026, 11, 2)  # a Monday


def days(*offsets: int) -> set[date]:
    return {MONDAY + timedelta(days=n) for n in offsets}


def test_consecutive_days_count_and_today_is_still_open() -> None:
    run = streak(days(0, 1, 2), MONDAY + timedelta(days=2))
    assert (run.current, run.longest, run.answered_today) == (3, 3, True)
    # The next day, before answering: still 3, waiting for today.
    later = streak(days(0, 1, 2), MONDAY + timedelta(days=3))
    assert (later.current, later.answered_today) == (3, False)
    assert later.frozen == []


def test_one_missed_day_a_week_is_frozen_not_lost() -> None:
    # Mon, Tue, (Wed missed), Thu, Fri: the week's freeze bridges Wednesday.
    run = streak(days(0, 1, 3, 4), MONDAY + timedelta(days=4))
    assert run.current == 4  # frozen days keep the streak; they do not add to it
    assert run.frozen == [MONDAY + timedelta(days=2)]
    assert run.freeze_left is False


def test_a_second_missed_day_in_the_same_week_breaks_the_streak() -> None:
    run = streak(days(0, 2, 4), MONDAY + timedelta(days=4))  # Tue and Thu missed
    # Mon, (Tue frozen), Wed make 2; Thu finds the week's freeze spent: Fri starts again.
    assert run.current == 1
    assert run.longest == 2


def test_two_missed_days_in_a_row_in_one_week_break_it() -> None:
    run = streak(days(0, 1, 4), MONDAY + timedelta(days=4))
    assert run.current == 1
    assert run.longest == 2


def test_missed_days_in_two_weeks_each_take_their_weeks_freeze() -> None:
    # Sunday and the next Monday missed: one freeze from each week.
    run = streak(days(4, 5, 8, 9), MONDAY + timedelta(days=9))
    assert run.current == 4
    assert run.frozen == [MONDAY + timedelta(days=6), MONDAY + timedelta(days=7)]


def test_yesterday_missed_is_bridged_while_today_is_open() -> None:
    run = streak(days(0, 1, 2), MONDAY + timedelta(days=4))  # Thu missed, Fri is today
    assert run.current == 3
    assert run.frozen == [MONDAY + timedelta(days=3)]
    gone = streak(days(0, 1, 2), MONDAY + timedelta(days=5))  # Thu and Fri missed
    assert gone.current == 0
    assert gone.longest == 3


def test_nothing_yet() -> None:
    run = streak(set(), MONDAY)
    assert (run.current, run.longest, run.answered_today, run.freeze_left) == (0, 0, False, True)


def test_answers_either_side_of_local_midnight_fall_on_two_days() -> None:
    berlin = zone("Europe/Berlin")
    # 22:59 and 23:01 UTC on 2 Nov are 23:59 and 00:01 in Berlin (UTC+1).
    times = [
        datetime(2026, 11, 2, 22, 59, tzinfo=UTC),
        datetime(2026, 11, 2, 23, 1, tzinfo=UTC),
    ]
    assert local_days(times, berlin) == {date(2026, 11, 2), date(2026, 11, 3)}
    assert local_days(times, zone("UTC")) == {date(2026, 11, 2)}
    assert streak(local_days(times, berlin), date(2026, 11, 3)).current == 2


def test_a_daylight_saving_change_keeps_one_answer_a_day_a_streak() -> None:
    # New York leaves daylight saving on 1 Nov 2026: that day has 25 hours. An answer at
    # 23:30 local each evening is 03:30 UTC before the change and 04:30 UTC after it.
    new_york = zone("America/New_York")
    times = [
        datetime(2026, 10, 31, 3, 30, tzinfo=UTC),  # 30 Oct, 23:30 EDT
        datetime(2026, 11, 1, 3, 30, tzinfo=UTC),  # 31 Oct, 23:30 EDT
        datetime(2026, 11, 2, 4, 30, tzinfo=UTC),  # 1 Nov, 23:30 EST
        datetime(2026, 11, 3, 4, 30, tzinfo=UTC),  # 2 Nov, 23:30 EST
    ]
    local = local_days(times, new_york)
    assert local == {date(2026, 10, 30), date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 2)}
    assert streak(local, date(2026, 11, 2)).current == 4
    # A fixed offset (daylight time all year) would move the last two a day later.
    fixed = timezone(timedelta(hours=-4))
    assert {t.astimezone(fixed).date() for t in times} != local


def test_weeks_start_on_monday() -> None:
    assert week_of(MONDAY + timedelta(days=6)) == MONDAY
    assert week_of(MONDAY + timedelta(days=7)) == MONDAY + timedelta(days=7)


@pytest.mark.parametrize("name", ["", "Mars/Olympus", "../etc/passwd", "x" * 65, "utc+1"])
def test_unknown_time_zones_are_refused(name: str) -> None:
    with pytest.raises(UnknownTimeZone):
        zone(name)
