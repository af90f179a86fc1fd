"""Storing a rater's mask for a leased task: validated, idempotent, and closing the lease."""

import hashlib
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, Update, bindparam, exists, func, insert, literal, update
from sqlalchemy import select as core_select
from sqlalchemy.sql.dml import ReturningInsert
from sqlmodel import Session, select

from backend.annotations.masks import PngMask, RleMask, decode, to_png
from backend.annotations.models import Annotation
from backend.core import outbox
from backend.core.db import on_rollback, serialize_writers, table_of
from backend.core.errors import Conflict, InvalidInput, NotFound
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.fusion import FUSE_TASK
from backend.gamification import ledger
from backend.imaging.models import Case, Slice
from backend.projects.models import Project
from backend.quality import service as quality
from backend.quality.models import GoldVersion, RaterStats
from backend.quality.reliability import Thresholds
from backend.tasks.models import Assignment, AssignmentState, Task, TaskKind, TaskState
from backend.tasks.queue import suspended_in
from backend.tasks.service import Rater, RaterSuspended, paused_message
from backend.tasks.slots import const, has_free_slot, refresh_slots


@dataclass(frozen=True)
class Submission:
    annotation: Annotation
    lease_id: int
    replayed: bool  # True when this was a retry of a submission already stored
    feedback: quality.Feedback | None  # after a gold task
    expert: bool = False  # an expert's answer: a gold candidate, no points


class IdempotencyMismatch(InvalidInput):
    """An Idempotency-Key came back with a different request than it was first used for."""


def submit(
    *,
    session: Session,
    storage: Storage,
    user: Rater,
    lease_id: int,
    mask_in: PngMask | RleMask,
    max_mask_bytes: int,
    idempotency_key: str | None,
    request_sha256: str | None = None,
    duration_ms: int | None,
    client_info: dict[str, Any],
    now: datetime | None = None,
) -> Submission:
    """Validate and store a mask as ``user``'s answer to the task of their lease ``lease_id``,
    and score it (``quality.service.record_answer``).

    The caller's right to answer is checked before the mask is decoded. A retry with the same
    idempotency key and request digest returns the stored annotation unchanged; the same key
    with another request is refused. A late submission after the lease expired is still
    accepted while a slot is free.
    """
    assert user.id is not None
    serialize_writers(session)
    params = {"lease": lease_id, "user": user.id, "key": idempotency_key}
    row = session.execute(_lock_statement(idempotency_key is not None), params).first()
    if row is None:
        raise NotFound(f"You have no lease {lease_id}; ask POST /api/tasks/next for a task")
    task_id = row.task_id
    now = now or utcnow()  # read after the lock: a wait for it must not make leases look fresh
    if row.assignment_id is not None and row.assignment_state == AssignmentState.submitted:
        if idempotency_key is not None and row.idempotency_key == idempotency_key:
            # Answers stored before requests were fingerprinted (NULL) replay as before.
            if row.request_sha256 is not None and row.request_sha256 != request_sha256:
                raise IdempotencyMismatch(
                    "This Idempotency-Key was already used with a different request; "
                    "use a new key for a new answer"
                )
            stored = session.exec(
                select(Annotation).where(
                    Annotation.task_id == task_id, Annotation.user_id == user.id
                )
            ).one()
            assert stored.id is not None
            score = quality.gold_score_of(session, stored.id)
            feedback = None if score is None else quality.feedback_of(score)
            if feedback is not None:
                feedback = replace(feedback, points=ledger.points_of(session, stored.id))
            return Submission(stored, lease_id, replayed=True, feedback=feedback)
        raise Conflict("You already labelled this task")
    if row.suspended is not None and not row.expert:
        # Before "skipped": a suspension ends the rater's leases by marking them so.
        raise RaterSuspended(paused_message(row.suspended))
    withheld = not row.crowd_viewing and not row.expert
    if withheld or (
        TaskState(row.state) is TaskState.retired and TaskKind(row.kind) is TaskKind.normal
    ):
        raise Conflict(
            "This slice was withdrawn from labelling while you held it (it became a check "
            "slice, was held out, or its owner no longer lets volunteers see it); your answer "
            "is not needed",
            code="task_withdrawn",
        )
    if row.assignment_state == AssignmentState.skipped:
        raise Conflict("You skipped this task; ask POST /api/tasks/next for another one")
    if row.key_reused:
        raise IdempotencyMismatch(
            "This Idempotency-Key was already used for another submission; use a new key"
        )
    late = row.lease_expires_at <= now
    # Only crowd tasks have slots to lose: a gold or repeat task is the rater's to answer
    # whoever else holds it (a refusal there would tell gold from the rest).
    slotted = not row.expert and TaskKind(row.kind) is TaskKind.normal
    if late and slotted and not has_free_slot(TaskState(row.state), row.full_until, now):
        # The slot may have gone to someone else meanwhile; take it back only if one is free.
        raise Conflict(
            "Your time on this slice ran out and other volunteers took its places meanwhile, "
            "so this answer cannot be counted",
            code="lease_lost",
        )

    mask = decode(mask_in, width=row.width, height=row.height, max_bytes=max_mask_bytes)
    # The time on the task as the server saw it: from the later of the lease and the rater's
    # previous answer in the project (a prefetched lease starts when the last answer ends).
    started = row.leased_at if row.last_answer is None else max(row.leased_at, row.last_answer)
    server_ms = max(0, int((now - started).total_seconds() * 1000))
    key = f"annotations/{task_id}/{user.id}-{uuid.uuid4().hex}.png"
    storage.put(key, to_png(mask))
    on_rollback(session, lambda: storage.delete(key))
    values: dict[str, Any] = {
        "task_id": task_id,
        "user_id": user.id,
        "mask_key": key,
        "lesion_pixels": int(mask.sum()),
        "duration_ms": duration_ms,
        "server_ms": server_ms,
        "mask_sha256": hashlib.sha256(mask.tobytes()).hexdigest()[:16],
        "client_info": client_info,
        "created_at": now,
    }
    # Core, not the ORM unit of work (a tenth of the request's CPU); the returned object is a
    # detached copy of the stored row.
    stored_id = session.execute(_insert_statement(), values).scalar_one()
    annotation = Annotation(id=stored_id, **values)
    session.execute(
        _answered_statement(),
        {
            "answered": row.assignment_id,
            "answered_at": now,
            "answer_key": idempotency_key,
            "answer_sha256": request_sha256,
        },
    )
    # Counts the answer; the last one completes the task, which is then fused (and its
    # redundancy decided) by a job sent once this transaction has committed.
    slots = refresh_slots(session, task_id)
    if row.state == TaskState.open and slots.state is TaskState.complete:
        outbox.defer(session, FUSE_TASK, task_id)
    if row.expert:
        # An expert answer: a gold candidate, not a volunteer label (no totals, no repeats).
        return Submission(annotation, lease_id, replayed=False, feedback=None, expert=True)
    feedback = quality.record_answer(
        session=session,
        storage=storage,
        task=quality.AnsweredTask(
            task_id=task_id,
            kind=TaskKind(row.kind),
            project_id=row.project_id,
            slice_id=row.slice_id,
            gold_version_id=row.gold_version_id,
            gold_mask_key=row.gold_mask_key,
            repeat_of_id=row.repeat_of_id,
            flair_key=row.image_keys.get("flair"),
            limits=Thresholds.of(row),
            repeat_rate=row.repeat_rate,
            repeat_gap=row.repeat_gap,
            gold_reveals=row.gold_reveals,
        ),
        user_id=user.id,
        annotation_id=stored_id,
        mask=mask,
        duration_ms=duration_ms,
        server_ms=server_ms,
        now=now,
    )
    return Submission(annotation, lease_id, replayed=False, feedback=feedback)


@cache
def _lock_statement(with_key: bool) -> Select[Any]:
    """Lock the lease's task and read what the checks and scoring need in one statement: the
    caller's assignment, the task's slot columns and kind, the slice's size and images, the
    project's quality settings, the gold mask to score against, and whether the key is taken
    by another answer."""
    tasks, assignments, slices = table_of(Task), table_of(Assignment), table_of(Slice)
    projects = table_of(Project)
    other = assignments.alias("other")
    key_reused = (
        exists().where(
            other.c.user_id == bindparam("user"),
            other.c.idempotency_key == bindparam("key"),
            other.c.id != bindparam("lease"),
        )
        if with_key
        else literal(False)
    )
    stats, gold = table_of(RaterStats), table_of(GoldVersion)
    cases = table_of(Case)
    crowd_viewing = (
        core_select(cases.c.consent_crowd_viewing)
        .where(cases.c.id == slices.c.case_id)
        .scalar_subquery()
    )
    gold_mask = (
        core_select(gold.c.mask_key).where(gold.c.id == tasks.c.gold_version_id).scalar_subquery()
    )
    # The rater's last answer in any project: three projects' leases answered in a burst are
    # as hurried as three of one project's.
    last_answer = (
        core_select(func.max(stats.c.updated_at))
        .where(stats.c.user_id == bindparam("user"))
        .scalar_subquery()
    )
    return (
        core_select(
            tasks.c.id.label("task_id"),
            tasks.c.state,
            tasks.c.full_until,
            tasks.c.kind,
            tasks.c.project_id,
            tasks.c.slice_id,
            tasks.c.gold_version_id,
            gold_mask.label("gold_mask_key"),
            tasks.c.repeat_of_id,
            (slices.c.crop_x1 - slices.c.crop_x0).label("width"),
            (slices.c.crop_y1 - slices.c.crop_y0).label("height"),
            slices.c.image_keys,
            crowd_viewing.label("crowd_viewing"),
            projects.c.min_gold,
            projects.c.min_sensitivity,
            projects.c.min_lesion_ppv,
            projects.c.fast_ms,
            projects.c.repeat_rate,
            projects.c.repeat_gap,
            projects.c.gold_reveals,
            assignments.c.id.label("assignment_id"),
            assignments.c.state.label("assignment_state"),
            assignments.c.leased_at,
            assignments.c.lease_expires_at,
            assignments.c.idempotency_key,
            assignments.c.request_sha256,
            assignments.c.expert,
            key_reused.label("key_reused"),
            suspended_in(tasks.c.project_id).label("suspended"),
            last_answer.label("last_answer"),
        )
        .select_from(
            assignments.join(tasks, tasks.c.id == assignments.c.task_id)
            .join(slices, slices.c.id == tasks.c.slice_id)
            .join(projects, projects.c.id == tasks.c.project_id)
        )
        .where(assignments.c.id == bindparam("lease"), assignments.c.user_id == bindparam("user"))
        .with_for_update(of=tasks)
    )


@cache
def _insert_statement() -> ReturningInsert[tuple[int]]:
    annotations = table_of(Annotation)
    return insert(annotations).returning(annotations.c.id)


@cache
def _answered_statement() -> Update:
    """Mark the caller's assignment submitted, with the request's key and fingerprint."""
    assignments = table_of(Assignment)
    return (
        update(assignments)
        .where(assignments.c.id == bindparam("answered"))
        .values(
            state=const(AssignmentState.submitted),
            submitted_at=bindparam("answered_at"),
            idempotency_key=bindparam("answer_key"),
            request_sha256=bindparam("answer_sha256"),
        )
    )
