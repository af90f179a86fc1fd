"""Celery jobs of fusion: ``fusion.fuse_task`` and ``fusion.fuse_project``. They take ids,
commit their own transaction, and are idempotent (``fuse_task`` returns the stored version
when nothing changed; a project fusion is a new run by design)."""

from backend.core.db import transaction
from backend.fusion import FUSE_PROJECT, FUSE_TASK, service
from backend.worker import celery_app, job_resources


def fuse_task(task_id: int) -> int | None:
    """Fuse one task; the id of its (new or unchanged) latest fused version, or None."""
    engine, storage, relay = job_resources()
    with transaction(engine, relay) as session:
        result = service.fuse_task(session=session, storage=storage, task_id=task_id)
        return None if result is None else result.id


def fuse_project(project_id: int) -> int:
    """Fuse a whole project; the id of the new fusion run."""
    engine, storage, relay = job_resources()
    with transaction(engine, relay) as session:
        run = service.fuse_project(session=session, storage=storage, project_id=project_id)
        assert run.id is not None
        return run.id


fuse_task_job = celery_app.task(name=FUSE_TASK)(fuse_task)
fuse_project_job = celery_app.task(name=FUSE_PROJECT)(fuse_project)
