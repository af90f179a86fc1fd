"""``/api/rewards``: your points, level, streak and badges (and the notices of new ones), your
reward settings, the leaderboards, and a project's community goals and impact."""

from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlmodel import Session, col, select

from backend.auth.deps import CurrentUser
from backend.core.deps import SessionDep
from backend.core.errors import NotFound, error_responses
from backend.core.timeutil import utcnow
from backend.gamification import boards, rules, service
from backend.gamification.badges import Badge
from backend.gamification.schemas import (
    BadgeRead,
    BoardRowRead,
    GoalRead,
    GoalsRead,
    HistoryDayRead,
    LeaderboardRead,
    LevelRead,
    RewardSettingsIn,
    RewardSettingsRead,
    RewardsRead,
    SeenIn,
    SinceRead,
    StreakRead,
)
from backend.projects.models import Project
from backend.rounds.models import Round, RoundStatus

router = APIRouter(prefix="/rewards", tags=["rewards"], responses=error_responses(401))


def _badge(badge: Badge, **extra: object) -> BadgeRead:
    return BadgeRead(
        id=badge.id,
        name=badge.name,
        description=badge.description,
        points=badge.points,
        **extra,
    )


@router.get("/me", response_model=RewardsRead)
def my_rewards(user: CurrentUser, session: SessionDep) -> RewardsRead:
    """Your points (all time, this week), level, streak in your time zone, badges earned and
    the next ones with your progress; new badges and a new level until you mark them seen.
    Badges you have earned are awarded as this is read."""
    assert user.id is not None
    found = service.rewards(session, user.id, utcnow())
    level = found.level
    return RewardsRead(
        total=found.total,
        week_points=found.week_points,
        level=LevelRead(
            number=level.number,
            name=level.name,
            floor=level.floor,
            next_floor=level.next_floor,
            next_name=rules.LEVELS[level.number][1] if level.number < len(rules.LEVELS) else None,
            progress=round(level.progress(found.total), 4),
        ),
        streak=StreakRead(
            days=found.streak.current,
            longest=found.streak.longest,
            answered_today=found.streak.answered_today,
            freeze_left=found.streak.freeze_left,
            frozen=found.streak.frozen,
        ),
        time_zone=found.time_zone,
        leaderboard=found.leaderboard,
        badges=[_badge(b, awarded_at=at) for b, at in found.earned],
        next_badges=[_badge(b, progress=round(p, 4)) for b, p in found.next_badges],
        new_badges=[_badge(b) for b in found.new_badges],
        level_up=found.level_up,
        since=SinceRead(
            points=found.since.points, answers=found.since.answers, through=found.since.through
        ),
    )


@router.post(
    "/me/seen", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(400, 422)
)
def mark_seen(user: CurrentUser, session: SessionDep, body: SeenIn | None = None) -> None:
    """A notice showed these badges, this level and the points through ledger entry
    ``through``: they are no longer new. Without a body, everything new now is marked."""
    assert user.id is not None
    seen = service.Seen()
    if body is not None:
        seen = service.Seen(
            badges=None if body.badges is None else frozenset(body.badges),
            level=body.level,
            through=body.through,
        )
    service.rewards(session, user.id, utcnow(), mark_seen=seen)


@router.put(
    "/me/settings",
    response_model=RewardSettingsRead,
    responses=error_responses(
        400,
        409,
        422,
        e409="The time zone changed less than a week ago",
        e422="An unknown time zone, or a malformed body",
    ),
)
def change_settings(
    body: RewardSettingsIn, user: CurrentUser, session: SessionDep
) -> RewardSettingsRead:
    """Your time zone (an IANA name such as Europe/Berlin: your streak's days run from your
    midnight) and whether the leaderboards show you."""
    assert user.id is not None
    found = service.set_profile(
        session, user.id, time_zone=body.time_zone, leaderboard=body.leaderboard
    )
    return RewardSettingsRead(time_zone=found.time_zone, leaderboard=found.leaderboard)


@router.get("/me/history", response_model=list[HistoryDayRead], responses=error_responses(422))
def my_history(
    user: CurrentUser,
    session: SessionDep,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
) -> list[HistoryDayRead]:
    """Your points and their mean quality per day (UTC) over the last ``days``."""
    assert user.id is not None
    return [HistoryDayRead(**row) for row in service.history(session, user.id, days, utcnow())]


@router.get("/leaderboard", response_model=LeaderboardRead, responses=error_responses(422))
def leaderboard(
    user: CurrentUser,
    session: SessionDep,
    board: boards.Board = boards.Board.week,
    offset: Annotated[int, Query(ge=0, le=boards.MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=boards.MAX_PAGE)] = 20,
) -> LeaderboardRead:
    """The weekly (from Monday, UTC) or all-time board by quality-weighted points:
    pseudonyms only, volunteers who opted out or are suspended left off; ``me`` is your row
    wherever you stand. An offset past the board's end is refused."""
    page = boards.page(session, board, offset=offset, limit=limit, user_id=user.id, now=utcnow())

    def row(found: boards.Row) -> BoardRowRead:
        return BoardRowRead(
            rank=found.rank, name=found.name, points=found.points, you=found.user_id == user.id
        )

    return LeaderboardRead(
        board=page.board.value,
        week=page.week,
        total=page.total,
        offset=offset,
        rows=[row(r) for r in page.rows],
        me=None if page.me is None else row(page.me),
    )


def _project(session: Session, name: str) -> Project:
    found = session.exec(select(Project).where(Project.name == name)).first()
    if found is None:
        raise NotFound(f"No project {name!r}")
    return found


@router.get("/goals", response_model=GoalsRead, responses=error_responses(404, 422))
def goals(
    project: Annotated[
        str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    ],
    user: CurrentUser,
    session: SessionDep,
) -> GoalsRead:
    """A project's community goal (its slices labelled), the open round's, and what the
    crowd's labels trained (with your share of it)."""
    found = _project(session, project)
    assert found.id is not None
    open_round = session.exec(
        select(Round)
        .where(col(Round.project_id) == found.id, col(Round.status) == RoundStatus.open)
        .order_by(col(Round.number).desc())
    ).first()
    goal = boards.project_goal(session, found.id)
    round_goal = None if open_round is None else boards.round_goal(session, open_round)
    return GoalsRead(
        project=found.name,
        goal=GoalRead(label=goal.label, done=goal.done, target=goal.target),
        round=None
        if round_goal is None
        else GoalRead(label=round_goal.label, done=round_goal.done, target=round_goal.target),
        round_number=None if open_round is None else open_round.number,
        impact=boards.impact(session, found.id, user.id),
        labels_per_slice=found.min_labels,
        your_answers=boards.answers_in(session, found.id, user.id or 0),
    )
