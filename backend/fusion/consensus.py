"""After a crowd task is fused: each answer in its fused label is scored against that label
(against the slice's expert mask where its case came with one), and the raters judged by the
consistency check (``backend.quality.consistency``)."""

import numpy as np
from sqlmodel import Session, col, select

from backend.annotations.models import Annotation
from backend.core.storage import Storage
from backend.fusion.labels import read_soft
from backend.fusion.models import FusionResult
from backend.imaging.models import Slice
from backend.quality import consistency
from backend.quality.gold import read_mask
from backend.tasks.models import Task, TaskKind, TaskState


def score_consensus(*, session: Session, storage: Storage, task_id: int) -> list[int]:
    """Score the answers of a complete (or escalated) crowd task against its newest fused
    label and judge their raters; the raters flagged now. Idempotent: a task's scores are
    replaced, and a flagged rater is not flagged twice."""
    task = session.get(Task, task_id)
    if task is None or task.kind is not TaskKind.normal:
        return []
    if task.state not in (TaskState.complete, TaskState.review):
        return []
    result = session.exec(
        select(FusionResult)
        .where(FusionResult.task_id == task_id)
        .order_by(col(FusionResult.version).desc())
    ).first()
    if result is None or result.withdrawn or result.soft_key is None:
        return []
    fused = read_soft(storage, result.soft_key) >= 0.5
    # Where the slice came with an expert's mask, the answers are scored against it instead:
    # accounts that agree with each other on junk are the consensus, never the expert (a
    # silent check no volunteer can tell from any other crowd slice).
    slice_ = session.get(Slice, task.slice_id)
    if slice_ is not None and slice_.reference_key is not None:
        reference = read_mask(storage, slice_.reference_key)
        if reference.shape == fused.shape:
            fused = reference
    given = session.exec(
        select(Annotation)
        .where(col(Annotation.id).in_(result.annotation_ids))
        .order_by(col(Annotation.id))
    ).all()
    answers = [(a.id or 0, a.user_id, read_mask(storage, a.mask_key)) for a in given]
    return consistency.record_task(
        session,
        project_id=task.project_id,
        task_id=task_id,
        fused=np.asarray(fused, dtype=bool),
        answers=answers,
    )
