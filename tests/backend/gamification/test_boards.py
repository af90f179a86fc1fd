"""Leaderboards from the maintained totals: order and competition ranks with ties, the
caller's own rank outside the page, opt-out, suspended volunteers gone, the weekly board's
week, and pages out of range refused."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from backend.auth.models import User
from backend.gamification import boards, confirm, ledger, service
from backend.gamification.boards import Board, PageOutOfRange
from backend.gamification.models import PointReason
from backend.projects.models import Project
from backend.quality.models import RaterStats
from backend.quality.reliability import TrustLevel

NOW = datetime(2026, 11, 12, 15, 0, tzinfo=UTC)


def _crowd(session: Session, points: list[int], now: datetime = NOW) -> list[int]:
    """Volunteers v0, v1, ... with these points (one ledger row each); their ids."""
    ids = []
    for n, value in enumerate(points):
        user = User(display_name=f"v{n}", password_hash="x")
        session.add(user)
        session.flush()
        assert user.id is not None
        ids.append(user.id)
        row = ledger.entry(
            user_id=user.id, reason=PointReason.gold, points=value, now=now, annotation_id=n + 1
        )
        ledger.write(session, [row])
    return ids


def test_order_ties_and_the_callers_own_rank(migrated_engine: Engine) -> None:
    with Session(migrated_engine) as session:
        ids = _crowd(session, [50, 80, 80, 20, 10, 5])
        page = boards.page(session, Board.all, offset=0, limit=3, user_id=ids[5], now=NOW)
        assert [(r.rank, r.name, r.points) for r in page.rows] == [
            (1, "v2", 80),  # equal points: the newer account first, the same rank
            (1, "v1", 80),
            (3, "v0", 50),
        ]
        assert page.total == 6
        assert page.me is not None
        assert (page.me.rank, page.me.points) == (6, 5)
        # The next page ranks on from the first: the count above, not the page position.
        second = boards.page(session, Board.all, offset=3, limit=3, user_id=ids[0], now=NOW)
        assert [(r.rank, r.name) for r in second.rows] == [(4, "v3"), (5, "v4"), (6, "v5")]
        assert second.me is not None
        assert second.me.rank == 3


def test_opted_out_and_suspended_volunteers_are_off_the_boards(migrated_engine: Engine) -> None:
    with Session(migrated_engine) as session:
        ids = _crowd(session, [30, 20, 10])
        service.set_profile(session, ids[0], time_zone=None, leaderboard=False)
        page = boards.page(session, Board.all, offset=0, limit=10, user_id=ids[0], now=NOW)
        assert [r.name for r in page.rows] == ["v1", "v2"]
        assert page.me is None  # opted out: not ranked, not even for themselves
        # A suspension: points reversed, off the board.
        project = Project(name="boards")
        session.add(project)
        session.flush()
        assert project.id is not None
        session.add(RaterStats(user_id=ids[1], project_id=project.id, trust=TrustLevel.suspended))
        session.flush()
        confirm.rater_changed(session, project.id, ids[1], NOW)
        page = boards.page(session, Board.all, offset=0, limit=10, user_id=ids[2], now=NOW)
        assert [(r.rank, r.name) for r in page.rows] == [(1, "v2")]
        # Opting back in shows them again; new points of an opted-out volunteer stay hidden.
        service.set_profile(session, ids[0], time_zone=None, leaderboard=True)
        assert [
            r.name
            for r in boards.page(session, Board.all, offset=0, limit=10, user_id=None, now=NOW).rows
        ] == ["v0", "v2"]


def test_the_weekly_board_counts_this_week_only(migrated_engine: Engine) -> None:
    with Session(migrated_engine) as session:
        old = _crowd(session, [100], now=NOW - timedelta(days=7))
        user = User(display_name="fresh", password_hash="x")
        session.add(user)
        session.flush()
        assert user.id is not None
        ledger.write(
            session,
            [
                ledger.entry(
                    user_id=user.id, reason=PointReason.gold, points=3, now=NOW, annotation_id=99
                )
            ],
        )
        week = boards.page(session, Board.week, offset=0, limit=10, user_id=old[0], now=NOW)
        assert [(r.name, r.points) for r in week.rows] == [("fresh", 3)]
        assert week.me is None  # nothing this week
        assert week.week == str(ledger.week_of(NOW))
        everything = boards.page(session, Board.all, offset=0, limit=10, user_id=None, now=NOW)
        assert [r.name for r in everything.rows] == ["v0", "fresh"]


def test_pages_out_of_range_are_refused(migrated_engine: Engine) -> None:
    with Session(migrated_engine) as session:
        _crowd(session, [5, 4])
        for offset, limit in ((2, 10), (-1, 10), (0, 0), (0, 101)):
            with pytest.raises(PageOutOfRange):
                boards.page(session, Board.all, offset=offset, limit=limit, user_id=None, now=NOW)
        # An empty board's first page is an empty page, not an error.
        assert (
            boards.page(
                session, Board.week, offset=0, limit=10, user_id=None, now=NOW + timedelta(days=14)
            ).rows
            == []
        )
