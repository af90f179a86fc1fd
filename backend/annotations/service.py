"""Storing a rater's mask for a leased task: validated, idempotent, and closing the lease."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from backend.annotations.masks import PngMask, RleMask, decode, to_png
from backend.annotations.models import Annotation
from backend.auth.models import User
from backend.core.db import on_rollback
from backend.core.errors import Conflict, InvalidInput
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.imaging.models import Slice
from backend.tasks.models import Assignment, AssignmentState, TaskState
from backend.tasks.service import lock_task, taken_slots


@dataclass(frozen=True)
class Submission:
    annotation: Annotation
    replayed: bool  # True when this was a retry of a submission already stored


class IdempotencyMismatch(InvalidInput):
    """An Idempotency-Key came back with a different request than it was first used for."""


def submit(
    *,
    session: Session,
    storage: Storage,
    user: User,
    task_id: int,
    mask_in: PngMask | RleMask,
    max_mask_bytes: int,
    idempotency_key: str | None,
    request_sha256: str | None = None,
    duration_ms: int | None,
    client_info: dict[str, Any],
    now: datetime | None = None,
) -> Submission:
    """Validate and store a mask as ``user``'s answer to a task they hold a lease on.

    The caller's right to answer is checked before the mask is decoded. A retry with the same
    idempotency key and request digest returns the stored annotation unchanged; the same key
    with another request is refused. A late submission after the lease expired is still
    accepted while a slot is free.
    """
    task = lock_task(session, task_id)
    now = now or utcnow()  # read after the lock: a wait for it must not make leases look fresh
    assert user.id is not None
    assert task.id is not None
    assignment = session.exec(
        select(Assignment).where(Assignment.task_id == task_id, Assignment.user_id == user.id)
    ).first()
    if assignment is not None and assignment.state is AssignmentState.submitted:
        stored = session.exec(
            select(Annotation).where(Annotation.task_id == task_id, Annotation.user_id == user.id)
        ).one()
        if idempotency_key is not None and assignment.idempotency_key == idempotency_key:
            # Answers stored before requests were fingerprinted (NULL) replay as before.
            stored_digest = assignment.request_sha256
            if stored_digest is not None and stored_digest != request_sha256:
                raise IdempotencyMismatch(
                    "This Idempotency-Key was already used with a different request; "
                    "use a new key for a new answer"
                )
            return Submission(stored, replayed=True)
        raise Conflict("You already labelled this task")
    if assignment is None:
        raise Conflict("This task is not leased to you; ask POST /api/tasks/next for one")
    if idempotency_key is not None:
        reused = session.exec(
            select(Assignment.id).where(
                Assignment.user_id == user.id,
                Assignment.idempotency_key == idempotency_key,
                Assignment.id != assignment.id,
            )
        ).first()
        if reused is not None:
            raise IdempotencyMismatch(
                "This Idempotency-Key was already used for another submission; use a new key"
            )
    if assignment.lease_expires_at <= now and (
        task.state is not TaskState.open
        or taken_slots(session, task.id, now) >= task.required_labels
    ):
        # The slot may have gone to someone else meanwhile; take it back only if one is free.
        raise Conflict("Your lease on this task expired and it was given to someone else")

    slice_ = session.get(Slice, task.slice_id)
    assert slice_ is not None
    mask = decode(mask_in, width=slice_.width, height=slice_.height, max_bytes=max_mask_bytes)
    key = f"annotations/{task_id}/{user.id}-{uuid.uuid4().hex}.png"
    storage.put(key, to_png(mask))
    on_rollback(session, lambda: storage.delete(key))
    annotation = Annotation(
        task_id=task_id,
        user_id=user.id,
        mask_key=key,
        lesion_pixels=int(mask.sum()),
        duration_ms=duration_ms,
        client_info=client_info,
        created_at=now,
    )
    session.add(annotation)
    assignment.state = AssignmentState.submitted
    assignment.submitted_at = now
    assignment.idempotency_key = idempotency_key
    assignment.request_sha256 = request_sha256
    session.add(assignment)
    session.flush()
    submitted = session.exec(
        select(func.count()).where(
            Assignment.task_id == task_id, Assignment.state == AssignmentState.submitted
        )
    ).one()
    if submitted >= task.required_labels:
        task.state = TaskState.complete
        session.add(task)
    return Submission(annotation, replayed=False)
