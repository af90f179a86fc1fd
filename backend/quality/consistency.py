"""Agreement with the crowd: the check that gold alone cannot be farmed.

A rater who recognises gold (from a second account's notes, say) can answer it perfectly and
everything else carelessly; gold scores alone then call them excellent. So each volunteer
answer to a normal task is also scored against the task's fused label once it is fused
(``ConsensusScore``), and a rater whose gold Dice lies far above their Dice against the
consensus is flagged: their labels leave fusion at once (``fusion.refuse_rater``) until an
expert clears them (the pattern of braindr and DiagnosUs, which weigh raters by agreement
with the crowd as well as with experts).

Only slices where the consensus has lesions enter the agreement: on an empty consensus, an
empty answer agrees without showing any skill, and Dice is undefined there.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import delete, func, select
from sqlmodel import Session
from sqlmodel import select as orm_select

from backend.core import outbox
from backend.core.db import table_of
from backend.core.errors import Conflict, NotFound
from backend.core.timeutil import utcnow
from backend.fusion import REFUSE_RATER
from backend.gamification import RATER_CHANGED
from backend.projects.models import Project
from backend.quality import metrics
from backend.quality.models import ConsensusScore, RaterAction, RaterActionKind, RaterStats

SCORES = table_of(ConsensusScore)
# Evidence before a rater can be flagged: gold answers, and normal answers on slices where
# the consensus has lesions.
MIN_GOLD = 3
MIN_CONSENSUS = 5
# rater_stats.rule_base key: consensus scores up to this id were judged before a clearance.
CLEARED_UP_TO = "consensus_after"


@dataclass(frozen=True)
class Agreement:
    """A rater's agreement with the consensus on slices where it has lesions."""

    scored: int
    mean_dice: float


def gold_dice(stats: RaterStats) -> float:
    """The rater's pooled Dice over their gold answers (1.0 with no lesion pixel anywhere)."""
    return metrics.Confusion(stats.tp, stats.fp, stats.fn, stats.tn).dice


def flag_reason(gold: int, gold_quality: float, agreement: Agreement, gap: float) -> str | None:
    """Why a rater should be flagged (None: they should not): enough evidence of both kinds,
    and gold Dice above consensus Dice by more than ``gap``."""
    if gold < MIN_GOLD or agreement.scored < MIN_CONSENSUS:
        return None
    if gold_quality - agreement.mean_dice <= gap:
        return None
    return (
        f"check answers score Dice {gold_quality:.2f} but answers to other slices agree with "
        f"the crowd at Dice {agreement.mean_dice:.2f} ({agreement.scored} slices)"
    )


def record_task(
    session: Session,
    *,
    project_id: int,
    task_id: int,
    fused: NDArray[np.bool_],
    answers: Sequence[tuple[int, int, NDArray[np.bool_]]],
    now: datetime | None = None,
) -> list[int]:
    """Score a fused task's answers (annotation id, user id, mask ``[H, W]``) against its
    fused hard label ``fused`` (replacing earlier scores of the task), then judge each of its
    raters; returns the raters flagged now."""
    now = now or utcnow()
    session.execute(delete(SCORES).where(SCORES.c.task_id == task_id))
    lesion = bool(fused.any())
    for annotation_id, user_id, mask in answers:
        session.add(
            ConsensusScore(
                annotation_id=annotation_id,
                user_id=user_id,
                project_id=project_id,
                task_id=task_id,
                dice=metrics.dice(fused, mask),
                consensus_lesion=lesion,
                created_at=now,
            )
        )
    session.flush()
    return [
        user_id
        for user_id in sorted({user_id for _a, user_id, _m in answers})
        if judge(session, project_id=project_id, user_id=user_id, now=now)
    ]


def agreement(session: Session, *, project_id: int, user_id: int, after: int = 0) -> Agreement:
    """The rater's agreement with the consensus (scores with ids above ``after``)."""
    scored, mean = session.execute(
        select(func.count(), func.avg(SCORES.c.dice)).where(
            SCORES.c.project_id == project_id,
            SCORES.c.user_id == user_id,
            SCORES.c.consensus_lesion.is_(True),
            SCORES.c.id > after,
        )
    ).one()
    return Agreement(scored=int(scored), mean_dice=float(mean or 0.0))


def _stats(session: Session, project_id: int, user_id: int) -> RaterStats | None:
    return session.exec(
        orm_select(RaterStats)
        .where(RaterStats.user_id == user_id, RaterStats.project_id == project_id)
        .with_for_update()
    ).first()


def judge(session: Session, *, project_id: int, user_id: int, now: datetime) -> bool:
    """Flag the rater if their gold and consensus records disagree (see the module); True
    when flagged now. A flagged rater's labels leave fusion once this transaction commits."""
    stats = _stats(session, project_id, user_id)
    if stats is None or stats.flagged_reason is not None:
        return False
    project = session.get(Project, project_id)
    if project is None:
        return False
    after = int((stats.rule_base or {}).get(CLEARED_UP_TO, 0))
    found = agreement(session, project_id=project_id, user_id=user_id, after=after)
    reason = flag_reason(stats.gold, gold_dice(stats), found, project.consensus_gap)
    if reason is None:
        return False
    stats.flagged_reason = reason
    _decided(session, stats, RaterActionKind.flagged, reason, None, now)
    return True


def _decided(
    session: Session,
    stats: RaterStats,
    action: RaterActionKind,
    reason: str,
    by: int | None,
    now: datetime,
) -> None:
    """Record a flag or its clearance (who, when, why) and have the rater's tasks fused again
    once the transaction commits."""
    session.add(stats)
    session.add(
        RaterAction(
            user_id=stats.user_id,
            project_id=stats.project_id,
            action=action,
            reason=reason,
            by_user_id=by,
            created_at=now,
        )
    )
    outbox.defer(session, REFUSE_RATER, stats.project_id, stats.user_id)
    outbox.defer(session, RATER_CHANGED, stats.project_id, stats.user_id)
    session.flush()


def clear_flag(
    session: Session,
    *,
    project_id: int,
    user_id: int,
    expert_id: int,
    reason: str,
    now: datetime | None = None,
) -> RaterStats:
    """An expert clears a flagged rater: their labels return to fusion, and the check judges
    only the answers scored from now on."""
    stats = _stats(session, project_id, user_id)
    if stats is None:
        raise NotFound(f"User {user_id} has not labelled in project {project_id}")
    if stats.flagged_reason is None:
        raise Conflict(f"User {user_id} is not flagged in project {project_id}")
    now = now or utcnow()
    newest = session.execute(
        select(func.max(SCORES.c.id)).where(
            SCORES.c.project_id == project_id, SCORES.c.user_id == user_id
        )
    ).scalar_one()
    stats.flagged_reason = None
    stats.rule_base = {**(stats.rule_base or {}), CLEARED_UP_TO: int(newest or 0)}
    stats.updated_at = now
    _decided(session, stats, RaterActionKind.cleared, reason, expert_id, now)
    return stats
