"""API shapes for rewards: a submit's points, the profile (totals, level, streak, badges),
its settings, the leaderboards, and community goals and impact."""

from datetime import date, datetime

from pydantic import BaseModel, Field

from backend.core.validation import InputModel


class RewardRead(BaseModel):
    """The points of an answer, with the submit's response. A check answer's come at once;
    a normal answer's once enough volunteers answered the slice ("pending")."""

    status: str  # "awarded", "pending" or "none"
    points: int
    message: str


class LevelRead(BaseModel):
    number: int
    name: str
    floor: int
    next_floor: int | None
    next_name: str | None  # the next level's name; None at the top
    progress: float  # 0..1 towards the next level


class StreakRead(BaseModel):
    days: int
    longest: int
    answered_today: bool
    freeze_left: bool  # this week's freeze is still unspent
    frozen: list[date]  # days of the current streak a freeze bridged


class BadgeRead(BaseModel):
    id: str
    name: str
    description: str
    points: int
    awarded_at: datetime | None = None
    progress: float | None = None  # for badges not earned yet


class SinceRead(BaseModel):
    """Points written by fusion since the last notice: answers confirmed (and bonuses,
    corrections) while the volunteer was away, through ledger entry ``through``."""

    points: int
    answers: int
    through: int


class SeenIn(InputModel):
    """What a notice showed; a field left out marks everything new of its kind."""

    badges: list[str] | None = Field(default=None, max_length=100)
    level: int | None = Field(default=None, ge=0)
    through: int | None = Field(default=None, ge=0)


class RewardsRead(BaseModel):
    total: int
    week_points: int
    level: LevelRead
    streak: StreakRead
    time_zone: str
    leaderboard: bool  # shown on the leaderboards (not opted out)
    badges: list[BadgeRead]  # earned, oldest first
    next_badges: list[BadgeRead]  # the closest not earned yet
    new_badges: list[BadgeRead]  # earned and not yet shown as a notice
    level_up: bool  # a level reached and not yet shown
    since: SinceRead  # points confirmed since the last notice


class RewardSettingsIn(InputModel):
    time_zone: str | None = Field(default=None, min_length=1, max_length=64)
    leaderboard: bool | None = None


class RewardSettingsRead(BaseModel):
    time_zone: str
    leaderboard: bool


class HistoryDayRead(BaseModel):
    day: str
    points: int
    quality: float | None


class BoardRowRead(BaseModel):
    rank: int
    name: str
    points: int
    you: bool


class LeaderboardRead(BaseModel):
    board: str  # "week" or "all"
    week: str | None  # the week's Monday (UTC) for the weekly board
    total: int  # volunteers on the board
    offset: int
    rows: list[BoardRowRead]
    me: BoardRowRead | None  # the caller wherever they stand; None: not on the board


class GoalRead(BaseModel):
    label: str
    done: int
    target: int


class GoalsRead(BaseModel):
    project: str
    goal: GoalRead
    round: GoalRead | None  # the open round's chosen slices
    round_number: int | None
    impact: list[str]  # newest first
    labels_per_slice: int  # the volunteers each slice needs before it counts as labelled
    your_answers: int  # your answers in the project (crowd and check slices)
