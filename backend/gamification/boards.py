"""Leaderboards (weekly and all-time) from the maintained totals, and community goals and
impact from the projects' tasks and the rounds' learning curve.

A board reads ``point_totals`` through its partial index (visible rows only, most points
first): a page is an index range, the caller's rank one count over the index. It never sums
the ledger. Ranks are competition ranks (equal points, equal rank: 1, 2, 2, 4); within equal
points, newer accounts are listed first.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from backend.annotations.models import Annotation
from backend.auth.models import User
from backend.core.db import table_of
from backend.core.errors import InvalidInput
from backend.gamification import ledger
from backend.gamification.models import PointEntry, PointReason, PointTotal
from backend.rounds.models import ModelStatus, ModelVersion, Round
from backend.tasks.models import Task, TaskKind, TaskState

TOTALS = table_of(PointTotal)
LEDGER = table_of(PointEntry)
MAX_PAGE = 100
MAX_OFFSET = 10_000


class Board(StrEnum):
    week = "week"
    all = "all"


class PageOutOfRange(InvalidInput):
    code = "page_out_of_range"


@dataclass(frozen=True)
class Row:
    rank: int
    user_id: int
    name: str
    points: int


@dataclass(frozen=True)
class Page:
    board: Board
    week: str | None
    rows: list[Row]
    total: int  # volunteers on the board
    me: Row | None  # the caller, also when off the page; None: not on the board


def _scope(board: Board, now: datetime) -> tuple[Any, list[Any]]:
    """The points column and the filters of a board (visible rows; this week's)."""
    if board is Board.week:
        return TOTALS.c.week_points, [
            ~TOTALS.c.hidden,
            TOTALS.c.week == ledger.week_of(now),
            TOTALS.c.week_points > 0,
        ]
    return TOTALS.c.total, [~TOTALS.c.hidden, TOTALS.c.total > 0]


def page(
    session: Session, board: Board, *, offset: int, limit: int, user_id: int | None, now: datetime
) -> Page:
    """A page of ``board`` and the caller's own row."""
    if not 0 <= offset <= MAX_OFFSET or not 1 <= limit <= MAX_PAGE:
        raise PageOutOfRange(
            f"offset must be 0..{MAX_OFFSET} and limit 1..{MAX_PAGE}", code="page_out_of_range"
        )
    points, where = _scope(board, now)
    count = session.execute(select(func.count()).select_from(TOTALS).where(*where)).scalar_one()
    if offset and offset >= count:
        raise PageOutOfRange(
            f"The board has {count} volunteers: offset {offset} is past its end",
            code="page_out_of_range",
        )
    rows = session.execute(
        select(TOTALS.c.user_id, points, col(User.display_name))
        .join(User, col(User.id) == TOTALS.c.user_id)
        .where(*where)
        .order_by(points.desc(), TOTALS.c.user_id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    listed = _ranked(session, board, rows, now)
    me = next((row for row in listed if row.user_id == user_id), None)
    if me is None and user_id is not None:
        me = own_row(session, board, user_id, now)
    week = str(ledger.week_of(now)) if board is Board.week else None
    return Page(board=board, week=week, rows=listed, total=int(count), me=me)


def _rank_of(session: Session, board: Board, score: int, now: datetime) -> int:
    points, where = _scope(board, now)
    above = session.execute(
        select(func.count()).select_from(TOTALS).where(*where, points > score)
    ).scalar_one()
    return int(above) + 1


def _ranked(session: Session, board: Board, rows: Sequence[Any], now: datetime) -> list[Row]:
    """Competition ranks of a page's rows (sorted, most points first): one count above the
    first row, then each row's rank is that plus the page's rows with more points."""
    if not rows:
        return []
    scores = [int(score) for _user, score, _name in rows]
    base = _rank_of(session, board, scores[0], now)
    first_at: dict[int, int] = {}
    for index, score in enumerate(scores):
        first_at.setdefault(score, index)
    return [
        Row(rank=base + first_at[int(score)], user_id=int(user), name=str(name), points=int(score))
        for user, score, name in rows
    ]


def own_row(session: Session, board: Board, user_id: int, now: datetime) -> Row | None:
    """The caller's row wherever they stand; None when they are not on the board."""
    points, where = _scope(board, now)
    found = session.execute(
        select(points, col(User.display_name))
        .select_from(TOTALS)
        .join(User, col(User.id) == TOTALS.c.user_id)
        .where(*where, TOTALS.c.user_id == user_id)
    ).first()
    if found is None:
        return None
    score, name = found
    return Row(
        rank=_rank_of(session, board, int(score), now),
        user_id=user_id,
        name=str(name),
        points=int(score),
    )


@dataclass(frozen=True)
class Goal:
    label: str
    done: int
    target: int


def answers_in(session: Session, project_id: int, user_id: int) -> int:
    """The user's answers in the project (crowd and check slices; practice is elsewhere)."""
    return int(
        session.execute(
            select(func.count())
            .select_from(Annotation)
            .join(Task, col(Task.id) == col(Annotation.task_id))
            .where(col(Task.project_id) == project_id, col(Annotation.user_id) == user_id)
        ).scalar_one()
    )


def project_goal(session: Session, project_id: int) -> Goal:
    """The project's crowd slices fully labelled, of all its crowd slices."""
    done, target = session.execute(
        select(
            func.count().filter(col(Task.state) == TaskState.complete),
            func.count(),
        ).where(col(Task.project_id) == project_id, col(Task.kind) == TaskKind.normal)
    ).one()
    return Goal(label="slices finished", done=int(done or 0), target=int(target or 0))


def round_goal(session: Session, round_: Round) -> Goal:
    """The slices a round chose for labelling that are labelled."""
    chosen = list(round_.selected or [])
    if not chosen:
        return Goal(label="slices chosen for this round finished", done=0, target=0)
    done = session.execute(
        select(func.count(func.distinct(col(Task.slice_id)))).where(
            col(Task.project_id) == round_.project_id,
            col(Task.kind) == TaskKind.normal,
            col(Task.state) == TaskState.complete,
            col(Task.slice_id).in_(chosen),
        )
    ).scalar_one()
    return Goal(label="slices chosen for this round finished", done=int(done), target=len(chosen))


def impact(session: Session, project_id: int, user_id: int | None) -> list[str]:
    """Sentences that tie the crowd's work to the models it trained: per promoted version
    trained in a round, its held-out Dice against the version before it; with ``user_id``,
    how many of their confirmed answers were fused before it trained."""
    versions = (
        session.execute(
            select(ModelVersion)
            .where(
                col(ModelVersion.project_id) == project_id, col(ModelVersion.round_id).is_not(None)
            )
            .order_by(col(ModelVersion.id))
        )
        .scalars()
        .all()
    )
    lines: list[str] = []
    previous: float | None = None
    for version in versions:
        dice = (version.metrics or {}).get("dice")
        if version.status is ModelStatus.promoted and dice is not None:
            round_ = session.get(Round, version.round_id)
            number = round_.number if round_ is not None else "?"
            change = f"{previous:.2f} -> {dice:.2f}" if previous is not None else f"{dice:.2f}"
            line = f"Labels from round {number} trained model v{version.id}: held-out Dice {change}"
            if user_id is not None:
                mine = session.execute(
                    select(func.count())
                    .select_from(LEDGER)
                    .where(
                        LEDGER.c.user_id == user_id,
                        LEDGER.c.project_id == project_id,
                        LEDGER.c.reason == PointReason.confirmed.value,
                        LEDGER.c.created_at < version.created_at,
                    )
                ).scalar_one()
                if mine:
                    line += f"; your labels are in {mine} fused slices that trained it"
            lines.append(line + ".")
            previous = float(dice)
    return lines[::-1]
