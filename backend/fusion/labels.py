"""Fused label versions in the database and storage: the answers a fusion reads, the versions
it writes (labels, and withdrawn versions that say a task has none any more) and reads back."""

import io
from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from backend.annotations.models import Annotation
from backend.core.db import on_rollback
from backend.core.storage import Storage
from backend.fusion import outlines
from backend.fusion.models import FusionResult, FusionRun
from backend.fusion.redundancy import uncertainty
from backend.imaging.preprocess import encode_png
from backend.quality import gold
from backend.tasks.models import Assignment, Task, TaskKind


@dataclass(frozen=True)
class Answer:
    annotation_id: int
    user_id: int
    mask_key: str


def answers(
    session: Session,
    project_id: int,
    excluded: set[int],
    task_ids: list[int] | None = None,
    kind: TaskKind = TaskKind.normal,
) -> dict[int, tuple[int, list[Answer]]]:
    """Volunteers' answers to the project's tasks of ``kind`` (crowd tasks by default), by
    task: (slice id, answers); experts' answers and those of excluded raters are left out (a
    task whose every answer is left out is absent)."""
    query = (
        sa_select(
            col(Task.id),
            col(Task.slice_id),
            col(Annotation.id),
            col(Annotation.user_id),
            col(Annotation.mask_key),
        )
        .join(Annotation, col(Annotation.task_id) == col(Task.id))
        .join(
            Assignment,
            (col(Assignment.task_id) == col(Task.id))
            & (col(Assignment.user_id) == col(Annotation.user_id)),
        )
        .where(col(Task.project_id) == project_id, col(Task.kind) == kind)
        .where(col(Assignment.expert).is_(False))
        .order_by(col(Task.id), col(Annotation.id))
    )
    if task_ids is not None:
        query = query.where(col(Task.id).in_(task_ids))
    found: dict[int, tuple[int, list[Answer]]] = {}
    for task_id, slice_id, annotation_id, user_id, key in session.execute(query):
        if user_id in excluded:
            continue
        found.setdefault(task_id, (slice_id, []))[1].append(Answer(annotation_id, user_id, key))
    return found


def answered_by(session: Session, project_id: int, user_id: int) -> list[int]:
    """The project's crowd tasks a volunteer answered (not as an expert), in id order."""
    query = (
        sa_select(col(Task.id))
        .join(Annotation, col(Annotation.task_id) == col(Task.id))
        .join(
            Assignment,
            (col(Assignment.task_id) == col(Task.id))
            & (col(Assignment.user_id) == col(Annotation.user_id)),
        )
        .where(col(Task.project_id) == project_id, col(Task.kind) == TaskKind.normal)
        .where(col(Annotation.user_id) == user_id, col(Assignment.expert).is_(False))
        .distinct()
        .order_by(col(Task.id))
    )
    return [int(task_id) for task_id in session.execute(query).scalars()]


def votes(storage: Storage, given: list[Answer]) -> NDArray[np.bool_]:
    """The answers' masks, [R, H, W]."""
    return np.array([gold.read_mask(storage, a.mask_key) for a in given])


def _marked(stack: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Pixels any rater marked ([R, H, W] -> [H, W])."""
    return cast(NDArray[np.bool_], np.any(stack, axis=0))


def soft_png(posterior: NDArray[np.float64]) -> bytes:
    """The soft label as an 8-bit PNG: round(255 * P(lesion))."""
    return encode_png(np.rint(np.clip(posterior, 0, 1) * 255).astype(np.uint8))


def read_soft(storage: Storage, key: str) -> NDArray[np.float64]:
    """A stored soft label back as P(lesion) (to 1/255)."""
    with Image.open(io.BytesIO(storage.get(key))) as image:
        return np.asarray(image, dtype=np.float64) / 255.0


def outline_of(run: FusionRun | None) -> outlines.Outline:
    """The outline rule a run used (its method "crowd_staple/<rule>"); STAPLE's own for runs
    from before the rule was recorded and when there is no run."""
    if run is None or "/" not in run.method:
        return outlines.Outline.staple
    return outlines.Outline(run.method.split("/", 1)[1])


def store(
    session: Session,
    storage: Storage,
    run: FusionRun,
    task_id: int,
    version: int,
    slice_id: int,
    given: list[Answer],
    posterior: NDArray[np.float64],
    stack: NDArray[np.bool_],
) -> FusionResult:
    """Version ``version`` of the task's fused label, from STAPLE's ``posterior`` and the
    answers' votes ``stack``: the soft label stored follows the run's outline rule, and the
    uncertainty (for adaptive redundancy) is STAPLE's, which says whether lesions exist."""
    soft = outlines.outlined(posterior, stack.mean(axis=0), outline_of(run))
    key = f"fusion/{task_id}/v{version}.png"
    storage.put(key, soft_png(soft))
    on_rollback(session, lambda: storage.delete(key))
    result = FusionResult(
        run_id=run.id or 0,
        task_id=task_id,
        slice_id=slice_id,
        version=version,
        soft_key=key,
        hard_pixels=int(np.count_nonzero(soft >= 0.5)),
        annotation_ids=[a.annotation_id for a in given],
        raters=[a.user_id for a in given],
        uncertainty=uncertainty(posterior, _marked(stack)),
    )
    session.add(result)
    return result


def withdraw(
    session: Session, run: FusionRun, task_id: int, version: int, slice_id: int
) -> FusionResult:
    """Version ``version`` of the task: withdrawn, no label (``FusionResult.withdrawn``)."""
    result = FusionResult(
        run_id=run.id or 0,
        task_id=task_id,
        slice_id=slice_id,
        version=version,
        withdrawn=True,
    )
    session.add(result)
    return result


def newest(
    session: Session, project_id: int, task_ids: list[int] | None = None
) -> dict[int, FusionResult]:
    """The newest fused version (label or withdrawn) of each task of the project that has
    one, or of those of ``task_ids``."""
    top = (
        sa_select(col(FusionResult.task_id), func.max(FusionResult.version).label("version"))
        .join(Task, col(Task.id) == col(FusionResult.task_id))
        .where(col(Task.project_id) == project_id)
        .group_by(col(FusionResult.task_id))
    )
    if task_ids is not None:
        top = top.where(col(FusionResult.task_id).in_(task_ids))
    newest_of = top.subquery()
    query = select(FusionResult).join(
        newest_of,
        (col(FusionResult.task_id) == newest_of.c.task_id)
        & (col(FusionResult.version) == newest_of.c.version),
    )
    return {r.task_id: r for r in session.exec(query)}


def results(session: Session, task_id: int) -> list[FusionResult]:
    """Every version of a task's fused label, newest first."""
    return list(
        session.exec(
            select(FusionResult)
            .where(FusionResult.task_id == task_id)
            .order_by(col(FusionResult.version).desc())
        ).all()
    )
