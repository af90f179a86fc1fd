"""The experts' review queue: crowd tasks whose volunteers disagree most, escalated ones
first."""

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sqlmodel import Session, col
from sqlmodel import select as orm_select

from backend.annotations.models import Annotation
from backend.core.storage import Storage
from backend.quality import metrics
from backend.quality.gold import own_assignment, read_mask
from backend.quality.models import GoldVersion
from backend.tasks.models import Assignment, Task, TaskKind, TaskState


@dataclass(frozen=True)
class ReviewItem:
    """A crowd task whose volunteers disagree: pairwise Dice of their answers."""

    task_id: int
    slice_id: int
    annotation_ids: list[int]
    mean_dice: float
    min_dice: float
    max_dice: float
    escalated: bool  # still uncertain after the project's max_labels (fusion's decision)


def pairwise_dice(masks: list[NDArray[np.bool_]]) -> list[float]:
    """Dice of every pair of masks (in order (0,1), (0,2), ..., (1,2), ...)."""
    return [
        metrics.dice(masks[i], masks[j])
        for i in range(len(masks))
        for j in range(i + 1, len(masks))
    ]


def review_queue(
    *, session: Session, storage: Storage, project_id: int, limit: int, scan: int = 500
) -> list[ReviewItem]:
    """Crowd tasks for an expert: first those fusion escalated (still uncertain after the
    project's ``max_labels``, state ``review``), then, among the ``scan`` most recent tasks
    with two or more volunteer answers, those whose answers agree least (lowest mean pairwise
    Dice, then widest spread). Slices that are gold already are left out.
    """
    gold = orm_select(GoldVersion.slice_id).where(GoldVersion.retired_at.is_(None))  # type: ignore[union-attr]
    escalated = Task.state == TaskState.review
    tasks_ = session.exec(
        orm_select(Task.id, Task.slice_id, escalated)
        .where(
            Task.project_id == project_id,
            Task.kind == TaskKind.normal,
            Task.submitted_labels >= 2,
            col(Task.slice_id).not_in(gold),
        )
        .order_by(escalated.desc(), col(Task.id).desc())  # type: ignore[attr-defined]
        .limit(scan)
    ).all()
    if not tasks_:
        return []
    answers: dict[int, list[Annotation]] = {}
    for annotation in session.exec(
        orm_select(Annotation)
        .join(Assignment, own_assignment())
        .where(col(Annotation.task_id).in_([row[0] for row in tasks_]), Assignment.expert == False)  # noqa: E712
        .order_by(col(Annotation.id))
    ):
        answers.setdefault(annotation.task_id, []).append(annotation)
    items = []
    for task_id, slice_id, is_escalated in tasks_:
        assert task_id is not None
        given = answers.get(task_id, [])
        if len(given) < 2:
            continue
        scores = pairwise_dice([read_mask(storage, a.mask_key) for a in given])
        items.append(
            ReviewItem(
                task_id=task_id,
                slice_id=slice_id,
                annotation_ids=[a.id or 0 for a in given],
                mean_dice=float(np.mean(scores)),
                min_dice=min(scores),
                max_dice=max(scores),
                escalated=bool(is_escalated),
            )
        )
    items.sort(key=lambda item: (not item.escalated, item.mean_dice, item.min_dice - item.max_dice))
    return items[:limit]
