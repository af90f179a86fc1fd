"""Celery jobs of fusion. They take ids, commit their own transaction, and are idempotent
(``fuse_task`` and ``refuse_rater`` return the stored versions when nothing changed; an
unconditional project fusion is a new run by design, a conditional one does nothing when the
rates are fresh)."""

from backend.core.config import get_settings
from backend.core.db import transaction
from backend.core.outbox import defer
from backend.fusion import FUSE_PROJECT, FUSE_TASK, REFRESH_RATES, REFUSE_RATER, service
from backend.fusion.consensus import score_consensus
from backend.gamification import CONFIRM_TASK
from backend.worker import celery_app, job_resources


def fuse_task(task_id: int) -> int | None:
    """Fuse one task; the id of its (new or unchanged) newest fused version, or None."""
    engine, storage, relay = job_resources()
    with transaction(engine, relay) as session:
        result = service.fuse_task(session=session, storage=storage, task_id=task_id)
        # Agreement with the consensus, the check gold alone cannot give (quality.consistency).
        score_consensus(session=session, storage=storage, task_id=task_id)
        if result is not None:
            defer(session, CONFIRM_TASK, task_id)  # points by agreement (gamification)
        return None if result is None else result.id


def fuse_project(project_id: int, stale_after: int | None = None) -> int | None:
    """Fuse a whole project; the id of the new fusion run. With ``stale_after``, only when at
    least that many tasks were fused complete since its latest run (None: not stale)."""
    engine, storage, relay = job_resources()
    with transaction(engine, relay) as session:
        if stale_after is None:
            run = service.fuse_project(session=session, storage=storage, project_id=project_id)
        else:
            found = service.fuse_project_if_stale(
                session=session, storage=storage, project_id=project_id, every=stale_after
            )
            if found is None:
                return None
            run = found
        assert run.id is not None
        return run.id


def refuse_rater(project_id: int, user_id: int) -> list[int]:
    """Re-fuse the project's tasks the rater answered with the exclusions in force now
    (``service.refuse_rater``); the ids of their newest versions."""
    engine, storage, relay = job_resources()
    with transaction(engine, relay) as session:
        fused = service.refuse_rater(
            session=session, storage=storage, project_id=project_id, user_id=user_id
        )
        return [result.id or 0 for result in fused]


def refresh_rates() -> list[int]:
    """Beat: send a conditional ``fusion.fuse_project`` for every project with at least
    ``Settings.fuse_project_every`` tasks fused complete since its latest project run; the
    projects sent."""
    engine, _storage, relay = job_resources()
    every = get_settings().fuse_project_every
    with transaction(engine, relay) as session:
        stale = service.stale_projects(session, every)
        for project_id in stale:
            defer(session, FUSE_PROJECT, project_id, every)
    return stale


fuse_task_job = celery_app.task(name=FUSE_TASK)(fuse_task)
fuse_project_job = celery_app.task(name=FUSE_PROJECT)(fuse_project)
refuse_rater_job = celery_app.task(name=REFUSE_RATER)(refuse_rater)
refresh_rates_job = celery_app.task(name=REFRESH_RATES)(refresh_rates)
