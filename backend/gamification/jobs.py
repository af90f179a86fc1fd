"""Celery jobs of gamification: they take ids, commit their own transaction, and are
idempotent (the ledger's unique indexes: an award or a correction is never written twice)."""

from backend.core.db import transaction
from backend.core.timeutil import utcnow
from backend.gamification import CONFIRM_TASK, RATER_CHANGED, confirm
from backend.worker import celery_app, job_resources


def confirm_task(task_id: int) -> int:
    """Award a fused task's answers by agreement with its label; the ledger rows written."""
    engine, storage, relay = job_resources()
    with transaction(engine, relay) as session:
        return confirm.confirm_task(session, task_id, utcnow(), storage)


def rater_changed(project_id: int, user_id: int) -> int:
    """Reverse a suspended rater's points in the project and set their board visibility;
    the corrections written."""
    engine, _storage, relay = job_resources()
    with transaction(engine, relay) as session:
        return confirm.rater_changed(session, project_id, user_id, utcnow())


confirm_task_job = celery_app.task(name=CONFIRM_TASK)(confirm_task)
rater_changed_job = celery_app.task(name=RATER_CHANGED)(rater_changed)
