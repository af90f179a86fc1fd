"""The qualification gate: a short test per project, drawn from tutorial material, that a
volunteer passes before their first real task (``tasks.queue._gate`` refuses them until then).

An attempt's items are drawn when it starts (lesion slices of several loads, empty slices and
mimic slices; slices the volunteer has not had before where the pool allows, so a retry
differs), recorded whole in one transaction, answered one by one like tasks, and scored once
with the last answer. Passing sets the rater's trust to ``qualified`` in ``backend.quality``
(one notion of trust); a failed attempt names what went wrong and the lessons to take, and
the next attempt waits for a cool-down, within a limit per day. A volunteer suspended by
quality control may take the test again only once an expert allows it.
"""

import random
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend.annotations.masks import PngMask, RleMask
from backend.auth.models import User
from backend.core import outbox
from backend.core.db import serialize_writers
from backend.core.errors import Conflict, NotFound, PermissionDenied, TooManyAttempts
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.fusion import REFUSE_RATER
from backend.projects.models import Project
from backend.quality.models import RaterAction, RaterActionKind, RaterStats
from backend.quality.reliability import Thresholds, TrustLevel, trust_level
from backend.quality.service import COUNTERS
from backend.tutorials import items
from backend.tutorials.content import default_catalog
from backend.tutorials.lessons import reserved_slices
from backend.tutorials.models import (
    ItemPurpose,
    LesionLoad,
    MaterialKind,
    QualificationAttempt,
    TutorialItem,
    TutorialSlice,
)
from backend.tutorials.scoring import ItemScore, Limits, Result, judge

# The loads of a test's lesion slices, in turn (medium first: a small lesion alone is the
# hardest thing to find, and one per test is enough to tell).
LOADS = (LesionLoad.medium, LesionLoad.large, LesionLoad.small)


class QualificationUnavailable(Conflict):
    """No tutorial material to draw a test from."""


class AttemptFinished(Conflict):
    """The attempt is scored; its items take no more answers."""


class NotRevealed(Conflict):
    """The expected answer of an item is not shown yet."""


def composition(items: int) -> list[tuple[MaterialKind, LesionLoad | None]]:
    """What a test of ``items`` slices holds: half (rounded up) lesion slices of turning
    loads; the rest empty and mimic slices, mimics first."""
    lesion = (items + 1) // 2
    clean = items - lesion
    empty = clean // 2
    return [
        *[(MaterialKind.lesion, LOADS[i % len(LOADS)]) for i in range(lesion)],
        *[(MaterialKind.mimic, None)] * (clean - empty),
        *[(MaterialKind.empty, None)] * empty,
    ]


def draw(
    pool: Sequence[TutorialSlice],
    seen: set[int],
    items: int,
    rng: random.Random,
    reserved: frozenset[int] = frozenset(),
) -> list[TutorialSlice]:
    """The slices of a new attempt, shuffled: each slot of ``composition`` from the pool's
    slices of its kind (else of its class: lesion, or empty-or-mimic); within those, slices
    the volunteer never had and no lesson shows first, then ones a lesson shows
    (``reserved``), then ones they had (``seen``); among equally fresh ones, its load first;
    different mimic kinds where there are."""
    chosen: list[TutorialSlice] = []
    taken: set[int] = set()
    mimics_used: set[str | None] = set()
    stale = {s.slice_id: _staleness(s.slice_id, seen, reserved) for s in pool}
    for kind, load in composition(items):
        same_class = [
            s for s in pool if (s.kind is MaterialKind.lesion) == (kind is MaterialKind.lesion)
        ]
        tiers = [
            [s for s in same_class if s.kind is kind and (load is None or s.load is load)],
            [s for s in same_class if s.kind is kind],
            same_class,
        ]
        # The kind first (a mimic slot stays a mimic), then the freshest slice over the
        # closest load: a new slice of another load before one the volunteer had (whose
        # feedback they saw) or a lesson shows.
        options = []
        for rank, tier in enumerate(tiers):
            free = [s for s in tier if s.slice_id not in taken]
            if free:
                best = min(stale[s.slice_id] for s in free)
                fresh = [s for s in free if stale[s.slice_id] == best]
                options.append((int(rank == len(tiers) - 1), best, rank, fresh))
        if not options:
            continue
        *_order, candidates = min(options, key=lambda option: option[:3])
        if kind is MaterialKind.mimic:
            candidates = [s for s in candidates if s.mimic not in mimics_used] or candidates
        pick = rng.choice(candidates)
        chosen.append(pick)
        taken.add(pick.slice_id)
        mimics_used.add(pick.mimic)
    rng.shuffle(chosen)
    return chosen


def _staleness(slice_id: int, seen: set[int], reserved: frozenset[int]) -> int:
    """0: new to the volunteer; 1: a lesson shows it; 2: they had it before."""
    return 2 if slice_id in seen else int(slice_id in reserved)


def _project(session: Session, name: str) -> Project:
    project = session.exec(select(Project).where(Project.name == name)).first()
    if project is None:
        raise NotFound(f"No project called {name!r}")
    return project


def _stats(
    session: Session, user_id: int, project_id: int, lock: bool = False
) -> RaterStats | None:
    query = select(RaterStats).where(
        RaterStats.user_id == user_id, RaterStats.project_id == project_id
    )
    return session.exec(query.with_for_update() if lock else query).first()


def _refuse_suspended(session: Session, stats: RaterStats | None) -> None:
    """A rater suspended in the project may take (or go on with) the test only once an
    expert allowed it since the suspension: an attempt opened before is no way back."""
    if stats is None or stats.trust is not TrustLevel.suspended:
        return
    if not may_requalify(session, stats.user_id, stats.project_id):
        raise PermissionDenied(
            "Your labelling is paused in this project; an expert must allow a new "
            "qualification attempt first",
            code="rater_suspended",
        )


def may_requalify(session: Session, user_id: int, project_id: int) -> bool:
    """A suspended rater whom an expert allowed a new attempt since their last suspension."""
    actions = session.exec(
        select(RaterAction.action)
        .where(
            RaterAction.user_id == user_id,
            RaterAction.project_id == project_id,
            col(RaterAction.action).in_(
                [RaterActionKind.suspended, RaterActionKind.requalify, RaterActionKind.qualified]
            ),
        )
        .order_by(col(RaterAction.id).desc())
        .limit(1)
    ).first()
    return actions == RaterActionKind.requalify


def open_attempt(session: Session, user_id: int, project_id: int) -> QualificationAttempt | None:
    return session.exec(
        select(QualificationAttempt).where(
            QualificationAttempt.user_id == user_id,
            QualificationAttempt.project_id == project_id,
            col(QualificationAttempt.finished_at).is_(None),
        )
    ).first()


def last_finished(session: Session, user_id: int, project_id: int) -> QualificationAttempt | None:
    return session.exec(
        select(QualificationAttempt)
        .where(
            QualificationAttempt.user_id == user_id,
            QualificationAttempt.project_id == project_id,
            col(QualificationAttempt.finished_at).is_not(None),
        )
        .order_by(col(QualificationAttempt.finished_at).desc())
        .limit(1)
    ).first()


def next_attempt_at(
    session: Session, user_id: int, project: Project, now: datetime
) -> tuple[datetime | None, int]:
    """When the caller may start their next attempt (None: now) and how many they started
    in the last 24 hours."""
    day_ago = now - timedelta(days=1)
    started = session.exec(
        select(QualificationAttempt.started_at)
        .where(
            QualificationAttempt.user_id == user_id,
            QualificationAttempt.project_id == project.id,
            col(QualificationAttempt.started_at) > day_ago,
        )
        .order_by(col(QualificationAttempt.started_at))
    ).all()
    assert project.id is not None
    last = last_finished(session, user_id, project.id)
    waits: list[datetime] = []
    if len(started) >= project.qualification_attempts_per_day:
        waits.append(started[-project.qualification_attempts_per_day] + timedelta(days=1))
    if last is not None and last.passed is False and last.finished_at is not None:
        waits.append(last.finished_at + timedelta(minutes=project.qualification_cooldown_minutes))
    wait = max(waits, default=None)
    return (wait if wait is not None and wait > now else None), len(started)


def start(
    *,
    session: Session,
    user: User,
    project_name: str,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> QualificationAttempt:
    """Start (or resume: the open one) the caller's attempt at a project's test."""
    assert user.id is not None
    serialize_writers(session)
    now = now or utcnow()
    project = _project(session, project_name)
    assert project.id is not None
    stats = _stats(session, user.id, project.id)
    _refuse_suspended(session, stats)
    found = open_attempt(session, user.id, project.id)
    if found is not None:
        return found
    if stats is not None and stats.trust is not TrustLevel.suspended and stats.qualified_at:
        raise Conflict(f"You have already qualified for {project_name!r}", code="already_qualified")
    wait, _started = next_attempt_at(session, user.id, project, now)
    if wait is not None:
        seconds = max(1, int((wait - now).total_seconds()) + 1)
        raise TooManyAttempts(
            f"You can take the test again in {max(1, round(seconds / 60))} minute(s): go through "
            "the lessons your last attempt pointed to meanwhile",
            retry_after=seconds,
        )
    pool = session.exec(select(TutorialSlice).order_by(col(TutorialSlice.slice_id))).all()
    # Slices the volunteer had, and those the lessons show with their outline, come last.
    seen = set(
        session.exec(select(TutorialItem.slice_id).where(TutorialItem.user_id == user.id)).all()
    )
    reserved = frozenset(reserved_slices(session, default_catalog()))
    chosen = draw(pool, seen, project.qualification_items, rng or random.SystemRandom(), reserved)
    kinds = {s.kind is MaterialKind.lesion for s in chosen}
    if kinds != {True, False}:
        raise QualificationUnavailable(
            "There is no tutorial material to draw a test from yet; an admin marks cases with "
            "expert references as tutorial material (mscrowd tutorials use-case)",
            code="qualification_unavailable",
        )
    attempt = QualificationAttempt(user_id=user.id, project_id=project.id, started_at=now)
    try:
        with session.begin_nested():
            session.add(attempt)
            session.flush()
    except IntegrityError:  # a concurrent request started one first: that one is the attempt
        found = open_attempt(session, user.id, project.id)
        assert found is not None
        return found
    assert attempt.id is not None
    session.add_all(
        TutorialItem(
            user_id=user.id,
            slice_id=s.slice_id,
            purpose=ItemPurpose.qualification,
            attempt_id=attempt.id,
            position=position,
            created_at=now,
        )
        for position, s in enumerate(chosen)
    )
    session.flush()
    return attempt


def own_attempt(
    session: Session, user_id: int, attempt_id: int, lock: bool = False
) -> QualificationAttempt:
    query = select(QualificationAttempt).where(QualificationAttempt.id == attempt_id)
    attempt = session.exec(query.with_for_update() if lock else query).first()
    if attempt is None or attempt.user_id != user_id:
        raise NotFound(f"No qualification attempt {attempt_id} of yours")
    return attempt


def items_of(session: Session, attempt_id: int) -> list[TutorialItem]:
    return list(
        session.exec(
            select(TutorialItem)
            .where(TutorialItem.attempt_id == attempt_id)
            .order_by(col(TutorialItem.position))
        ).all()
    )


def next_item(session: Session, user_id: int, attempt_id: int) -> TutorialItem | None:
    """The first unanswered item of the caller's open attempt (None: all answered)."""
    attempt = own_attempt(session, user_id, attempt_id)
    if attempt.finished_at is not None:
        raise AttemptFinished(f"Attempt {attempt_id} is finished")
    return next((i for i in items_of(session, attempt_id) if i.answered_at is None), None)


def finish(
    session: Session,
    attempt: QualificationAttempt,
    scores: Sequence[ItemScore],
    now: datetime,
) -> Result:
    """Score a fully answered attempt and, when it passed, qualify the rater."""
    project = session.get(Project, attempt.project_id)
    assert project is not None
    result = judge(scores, Limits.of(project))
    attempt.finished_at, attempt.passed, attempt.result = now, result.passed, result.as_dict()
    session.add(attempt)
    if result.passed:
        qualify(session, attempt.user_id, project, result, now)
    session.flush()
    return result


def qualify(
    session: Session, user_id: int, project: Project, result: Result, now: datetime
) -> RaterStats:
    """Record a pass: ``qualified_at``, trust at least qualified (a suspended rater allowed to
    requalify is reinstated with a fresh window of evidence), and the quality action."""
    assert project.id is not None
    stats = _stats(session, user_id, project.id, lock=True)
    if stats is None:
        stats = RaterStats(user_id=user_id, project_id=project.id)
    was_suspended = stats.trust is TrustLevel.suspended
    stats.qualified_at = now
    stats.trust = trust_level(
        stats.totals(), Thresholds.of(project), suspend=False, passed_test=True
    )
    if was_suspended:
        stats.suspended_reason = None
        stats.override = RaterActionKind.reinstated.value
        stats.rule_base = {
            **(stats.rule_base or {}),
            **{name: getattr(stats, name) for name in COUNTERS},
        }
        outbox.defer(session, REFUSE_RATER, project.id, user_id)
    stats.updated_at = now
    session.add(stats)
    session.add(
        RaterAction(
            user_id=user_id,
            project_id=project.id,
            action=RaterActionKind.qualified,
            reason=(
                f"passed the qualification test: lesion F1 {result.lesion_f1:.2f}, Dice "
                f"{result.dice:.2f}, {result.clean} of {result.clean_total} clean"
            ),
            created_at=now,
        )
    )
    return stats


def allow_requalify(
    *, session: Session, project_id: int, user_id: int, reason: str, expert_id: int
) -> RaterAction:
    """An expert lets a suspended rater take the test again (recorded like a suspension)."""
    stats = _stats(session, user_id, project_id, lock=True)
    if stats is None or stats.trust is not TrustLevel.suspended:
        raise Conflict(
            f"User {user_id} is not suspended in project {project_id}", code="not_suspended"
        )
    action = RaterAction(
        user_id=user_id,
        project_id=project_id,
        action=RaterActionKind.requalify,
        reason=reason,
        by_user_id=expert_id,
    )
    session.add(action)
    session.flush()
    return action


def attempts_started(session: Session, user_id: int, project_id: int) -> int:
    return int(
        session.exec(
            select(func.count())
            .select_from(QualificationAttempt)
            .where(
                QualificationAttempt.user_id == user_id,
                QualificationAttempt.project_id == project_id,
            )
        ).one()
    )


def submit_answer(
    *,
    session: Session,
    storage: Storage,
    user_id: int,
    item_id: int,
    mask_in: PngMask | RleMask,
    max_mask_bytes: int,
    now: datetime,
) -> tuple[TutorialItem, items.Scored, QualificationAttempt | None]:
    """Answer the caller's practice or qualification item; a qualification item's attempt
    is scored with its last answer (returned with the item, else None for practice)."""
    # One writer at a time on SQLite, where row locks are no-ops: two answers to one item
    # raced there, each with its own verdict.
    serialize_writers(session)
    item = items.own_item(session, user_id, item_id, lock=True)
    attempt = None
    if item.purpose is ItemPurpose.qualification:
        assert item.attempt_id is not None
        # The attempt's row lock orders its answers: exactly one of them finishes it.
        attempt = own_attempt(session, user_id, item.attempt_id, lock=True)
        if attempt.finished_at is not None:
            raise AttemptFinished(f"Attempt {attempt.id} is finished")
        _refuse_suspended(session, _stats(session, user_id, attempt.project_id))
    scored = items.answer(
        session=session,
        storage=storage,
        item=item,
        mask_in=mask_in,
        max_mask_bytes=max_mask_bytes,
        now=now,
    )
    if attempt is not None:
        session.flush()
        held = items_of(session, item.attempt_id or 0)
        if all(i.answered_at is not None for i in held):
            finish(
                session, attempt, [items.stored_score(session, storage, i).score for i in held], now
            )
    return item, scored, attempt
