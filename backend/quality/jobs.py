"""Celery jobs of quality control: ``quality.refill_gold``. They take ids, commit their own
transaction, and are idempotent."""

from sqlmodel import Session, col, func, select

from backend.core.db import transaction
from backend.core.storage import Storage
from backend.imaging.models import Case, Slice
from backend.quality import gold_pool
from backend.quality.models import GoldVersion
from backend.quality.service import REFILL_GOLD
from backend.worker import celery_app, job_resources


def refilled_since(session: Session, project_id: int, slice_id: int) -> bool:
    """Whether the project gained gold after ``slice_id``'s gold was retired (a second run of
    the refill, or an expert's own addition, has already made up for it)."""
    retired = session.exec(
        select(func.max(GoldVersion.retired_at)).where(GoldVersion.slice_id == slice_id)
    ).one()
    if retired is None:
        return True  # not retired: nothing to make up for
    newer = session.exec(
        select(GoldVersion.id)
        .join(Slice, col(Slice.id) == col(GoldVersion.slice_id))
        .join(Case, col(Case.id) == col(Slice.case_id))
        .where(Case.project_id == project_id, col(GoldVersion.created_at) >= retired)
    ).first()
    return newer is not None


def refill_gold(project_id: int, slice_id: int) -> int | None:
    """After gold slice ``slice_id`` was retired for being revealed to enough volunteers:
    approve the next candidate of its stratum, once. The new gold slice's id, or None when
    nothing was added (already refilled, or no candidate left)."""
    engine, storage, relay = job_resources()
    with transaction(engine, relay) as session:
        return refill_after(session, storage, project_id, slice_id)


def refill_after(session: Session, storage: Storage, project_id: int, slice_id: int) -> int | None:
    """The job's work in a transaction of the caller's (see ``refill_gold``)."""
    if refilled_since(session, project_id, slice_id):
        return None
    stratum = gold_pool.slice_stratum(session=session, slice_id=slice_id, storage=storage)
    added = gold_pool.refill(session, storage, project_id, stratum)
    return None if added is None else added.slice_id


refill_gold_job = celery_app.task(name=REFILL_GOLD)(refill_gold)
