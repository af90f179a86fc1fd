"""The points ledger on both dialects: totals kept by its trigger (this week's and all time,
an older week's correction), rows that cannot be edited or deleted, replays that add nothing,
racing writers and racing badge awards on PostgreSQL, and a suspension's reversal."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session

from backend.auth.models import User
from backend.gamification import badges, confirm, ledger, service
from backend.gamification.models import BadgeAward, PointEntry, PointReason, PointTotal
from backend.projects.models import Project
from backend.quality.models import RaterStats
from backend.quality.reliability import TrustLevel

NOW = datetime(2026, 11, 12, 15, 0, tzinfo=UTC)  # a Thursday


def _user(session: Session, name: str) -> int:
    user = User(display_name=name, password_hash="x")
    session.add(user)
    session.flush()
    assert user.id is not None
    return user.id


def _sum(session: Session, user_id: int) -> int:
    return int(
        session.execute(
            select(func.coalesce(func.sum(PointEntry.points), 0)).where(
                PointEntry.user_id == user_id
            )
        ).scalar_one()
    )


def _total(session: Session, user_id: int) -> PointTotal:
    found = session.get(PointTotal, user_id)
    assert found is not None
    session.refresh(found)
    return found


def _gold(user_id: int, annotation_id: int, points: int, now: datetime) -> dict[str, object]:
    return ledger.entry(
        user_id=user_id,
        reason=PointReason.gold,
        points=points,
        now=now,
        project_id=None,
        annotation_id=annotation_id,
        quality=points / 10,
    )


def test_the_trigger_keeps_the_totals_and_the_week(migrated_engine: Engine) -> None:
    with Session(migrated_engine) as session:
        me = _user(session, "ledger-a")
        last_week = NOW - timedelta(days=7)
        ledger.write(session, [_gold(me, 1, 7, last_week), _gold(me, 2, 5, last_week)])
        total = _total(session, me)
        assert (total.total, total.week_points, total.entries) == (12, 12, 2)
        assert total.week == ledger.week_of(last_week)
        ledger.write(session, [_gold(me, 3, 4, NOW)])  # a new week: its points start again
        total = _total(session, me)
        assert (total.total, total.week_points, total.week) == (16, 4, ledger.week_of(NOW))
        # A correction of last week's entry lowers the total, not this week's board.
        first = session.execute(
            select(PointEntry.id).where(PointEntry.annotation_id == 1)
        ).scalar_one()
        ledger.write(
            session,
            [
                ledger.entry(
                    user_id=me,
                    reason=PointReason.correction,
                    points=-7,
                    now=NOW,
                    corrects_id=first,
                    week=ledger.week_of(last_week),
                )
            ],
        )
        total = _total(session, me)
        assert (total.total, total.week_points) == (9, 4)
        assert total.total == _sum(session, me)
        # Replays add nothing: the same award, the same correction.
        ledger.write(session, [_gold(me, 3, 4, NOW)])
        assert _total(session, me).total == 9 == _sum(session, me)
        session.commit()


def test_ledger_rows_are_never_edited_or_deleted(migrated_engine: Engine) -> None:
    with Session(migrated_engine) as session:
        me = _user(session, "ledger-b")
        ledger.write(session, [_gold(me, 10, 5, NOW)])
        session.commit()
    for statement in (
        "UPDATE points_ledger SET points = 500",
        "DELETE FROM points_ledger",
    ):
        with Session(migrated_engine) as session:
            with pytest.raises(DatabaseError) as refused:
                session.execute(text(statement))
            assert "append-only" in str(refused.value)
    with Session(migrated_engine) as session:
        assert _sum(session, me) == 5 == _total(session, me).total
        # Erasing the account takes its rows with it (the only delete there is).
        session.execute(text("DELETE FROM users WHERE id = :id"), {"id": me})
        session.commit()
        assert _sum(session, me) == 0
        assert session.get(PointTotal, me) is None


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_racing_writers_leave_totals_equal_to_the_ledger(migrated_engine: Engine) -> None:
    """50 concurrent awards over five volunteers, each award sent twice (a replay racing
    itself), and two badge awards racing for the same volunteer."""
    with Session(migrated_engine) as session:
        users = [_user(session, f"race-{n}") for n in range(5)]
        session.commit()
    start = threading.Barrier(50)
    errors: list[BaseException] = []

    def award(n: int) -> None:
        try:
            start.wait(timeout=30)
            with Session(migrated_engine) as session:
                row = _gold(users[n % 5], 1000 + n % 25, 1 + n % 10, NOW)
                ledger.write(session, [row])
                session.commit()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=award, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with Session(migrated_engine) as session:
        for user_id in users:
            assert _total(session, user_id).total == _sum(session, user_id)
        assert session.execute(select(func.count()).select_from(PointEntry)).scalar_one() == 25

    found = badges.Facts(answers=10)
    racing = threading.Barrier(2)
    won: list[list[str]] = []

    def badge() -> None:
        racing.wait(timeout=30)
        with Session(migrated_engine) as session:
            won.append(service.award_badges(session, users[0], found, NOW))
            session.commit()

    pair = [threading.Thread(target=badge) for _ in range(2)]
    for thread in pair:
        thread.start()
    for thread in pair:
        thread.join(timeout=60)
    assert sorted(len(w) for w in won)[-1] >= 1
    with Session(migrated_engine) as session:
        awarded = (
            session.execute(select(BadgeAward.badge).where(BadgeAward.user_id == users[0]))
            .scalars()
            .all()
        )
        assert sorted(awarded) == ["first-label", "ten-slices"]
        badge_rows = session.execute(
            select(func.count())
            .select_from(PointEntry)
            .where(PointEntry.user_id == users[0], PointEntry.reason == PointReason.badge)
        ).scalar_one()
        assert badge_rows == 2
        assert _total(session, users[0]).total == _sum(session, users[0])


def test_a_suspension_reverses_the_points_and_hides_the_rater(migrated_engine: Engine) -> None:
    with Session(migrated_engine) as session:
        project = Project(name="reverse")
        session.add(project)
        session.flush()
        assert project.id is not None
        me = _user(session, "ledger-c")
        rows = [_gold(me, 20 + n, 8, NOW) for n in range(3)]
        for row in rows:
            row["project_id"] = project.id
        ledger.write(session, rows)
        session.add(RaterStats(user_id=me, project_id=project.id, trust=TrustLevel.suspended))
        session.flush()
        assert confirm.rater_changed(session, project.id, me, NOW) == 3
        assert confirm.rater_changed(session, project.id, me, NOW) == 0  # once only
        total = _total(session, me)
        assert (total.total, total.hidden) == (0, True)
        assert _sum(session, me) == 0
        stats = session.execute(select(RaterStats).where(RaterStats.user_id == me)).scalar_one()
        stats.trust = TrustLevel.qualified
        session.add(stats)
        session.flush()
        confirm.rater_changed(session, project.id, me, NOW)
        assert _total(session, me).hidden is False  # back on the boards, points stay reversed
        assert _total(session, me).total == 0
        session.commit()


def test_an_excluded_rater_stays_off_the_boards_whatever_they_do(migrated_engine: Engine) -> None:
    """Suspended in one project before any points, then points elsewhere: the totals row the
    trigger makes is hidden. Flagged, then a settings change: still hidden."""
    with Session(migrated_engine) as session:
        first, second = Project(name="excl-a"), Project(name="excl-b")
        session.add_all([first, second])
        session.flush()
        assert first.id is not None
        assert second.id is not None
        suspended, flagged = _user(session, "ledger-s"), _user(session, "ledger-f")
        session.add(RaterStats(user_id=suspended, project_id=first.id, trust=TrustLevel.suspended))
        session.add(RaterStats(user_id=flagged, project_id=first.id, flagged_reason="copies"))
        session.flush()
        for user in (suspended, flagged):  # the exclusion's job (RATER_CHANGED)
            confirm.rater_changed(session, first.id, user, NOW)
        for user, annotation in ((suspended, 60), (flagged, 61)):
            row = _gold(user, annotation, 10, NOW)
            row["project_id"] = second.id
            ledger.write(session, [row])
        assert _total(session, suspended).hidden is True
        assert _total(session, flagged).hidden is True
        service.set_profile(session, flagged, time_zone="Europe/Berlin", leaderboard=True, now=NOW)
        assert _total(session, flagged).hidden is True
        session.commit()


def test_the_time_zone_changes_once_a_week(migrated_engine: Engine) -> None:
    with Session(migrated_engine) as session:
        me = _user(session, "ledger-z")
        service.set_profile(session, me, time_zone="Europe/Berlin", leaderboard=None, now=NOW)
        with pytest.raises(service.Conflict, match="can change again from 2026-11-19"):
            service.set_profile(session, me, time_zone="Africa/Lagos", leaderboard=None, now=NOW)
        # The same zone again, or the opt-out alone, is no change of zone.
        service.set_profile(session, me, time_zone="Europe/Berlin", leaderboard=False, now=NOW)
        later = NOW + timedelta(days=7)
        found = service.set_profile(
            session, me, time_zone="Africa/Lagos", leaderboard=None, now=later
        )
        assert found.time_zone == "Africa/Lagos"
        for name in ("localtime", "Factory"):
            with pytest.raises(service.UnknownTimeZone):
                service.set_profile(session, me, time_zone=name, leaderboard=None, now=later)
