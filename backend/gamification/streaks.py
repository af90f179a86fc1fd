"""Daily streaks in the volunteer's own time zone, with one freeze day a week (pure).

A day counts when the volunteer answered at least once between its local midnights: answer
times (UTC) are turned into local dates with ``zoneinfo``, one by one, so a daylight-saving
change (a 23- or 25-hour day) and answers either side of midnight fall on the right days.

A streak is a run of days with answers. A missed day does not break it when that day's week
(Monday to Sunday, local) still has its freeze: each week has one, spent on the first missed
day it bridges, as Duolingo's streak freeze. Frozen days keep a streak alive; they do not add
to it. Today is never a missed day: until midnight the streak waits for today's answer.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


class UnknownTimeZone(ValueError):
    """Not an IANA time zone name."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Berlin``), or ``UnknownTimeZone``."""
    if not name or len(name) > 64 or name not in _names():
        raise UnknownTimeZone(f"{name!r} is not an IANA time zone name (like Europe/Berlin)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise UnknownTimeZone(f"{name!r} is not a time zone this server knows") from error


_NAMES: set[str] = set()


def _names() -> set[str]:
    if not _NAMES:
        # Region/City names and UTC: not "localtime" (the server's own) nor "Factory".
        _NAMES.update(n for n in available_timezones() if n not in ("localtime", "Factory"))
        _NAMES.add("UTC")
    return _NAMES


def local_days(times: Iterable[datetime], tz: ZoneInfo) -> set[date]:
    """The local dates of ``times`` (timezone-aware) in ``tz``."""
    return {t.astimezone(tz).date() for t in times}


def week_of(day: date) -> date:
    """The Monday of ``day``'s week."""
    return day - timedelta(days=day.weekday())


@dataclass
class Streak:
    current: int = 0  # days with answers in the streak still alive today
    longest: int = 0  # the longest streak ever
    answered_today: bool = False
    frozen: list[date] = field(default_factory=list)  # freeze days of the current streak
    freeze_left: bool = True  # this week's freeze is still unspent


def _bridge(missed: list[date], spent: set[date]) -> list[date] | None:
    """The weeks whose freezes bridge ``missed`` days (one per week, unspent), or None."""
    weeks = [week_of(day) for day in missed]
    if len(set(weeks)) != len(weeks) or any(week in spent for week in weeks):
        return None
    return weeks


def streak(days: Iterable[date], today: date) -> Streak:
    """The streak of a volunteer who answered on ``days`` (local dates), as of ``today``."""
    ordered = sorted(d for d in set(days) if d <= today)
    spent: set[date] = set()
    run, longest = 0, 0
    frozen: list[date] = []
    previous: date | None = None
    for day in ordered:
        if previous is None:
            run, frozen = 1, []
        else:
            missed = [previous + timedelta(days=n) for n in range(1, (day - previous).days)]
            weeks = _bridge(missed, spent)
            if weeks is None:
                run, frozen = 1, []
            else:
                spent.update(weeks)
                frozen += missed
                run += 1
        longest = max(longest, run)
        previous = day
    result = Streak(longest=longest, answered_today=bool(ordered) and ordered[-1] == today)
    if previous is None:
        result.freeze_left = week_of(today) not in spent
        return result
    # Days missed since the last answer, today left out (it is not over).
    missed = [previous + timedelta(days=n) for n in range(1, (today - previous).days)]
    weeks = _bridge(missed, spent)
    if weeks is not None:
        spent.update(weeks)
        result.current = run
        result.frozen = frozen + missed
    result.freeze_left = week_of(today) not in spent
    return result
