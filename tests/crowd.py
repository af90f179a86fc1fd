"""A scripted crowd for tests, benchmarks and scripts: volunteers who take leases from the
queue and draw (a version of) each slice's reference mask, then the complete tasks fused as
the worker does. Shared by the release tests, ``bench/releases.py`` and
``scripts/release_overlay.py``."""

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from backend.annotations.masks import RleMask, encode_rle
from backend.auth.models import User
from backend.core.db import transaction
from backend.core.storage import Storage
from backend.fusion import service as fusion
from backend.imaging.models import Slice
from backend.quality.gold import read_mask
from backend.tasks import service as tasks
from backend.tasks.models import Task, TaskState
from backend.tasks.service import RaterSuspended
from tests.factories import submit

# How a volunteer draws: (the slice's reference mask, the volunteer's place in the crowd).
Drawing = Callable[[NDArray[np.bool_], int], NDArray[np.bool_]]


def mask_rle(mask: NDArray[np.generic]) -> RleMask:
    height, width = mask.shape
    return RleMask(
        encoding="rle", width=width, height=height, counts=encode_rle(mask.astype(np.uint8))
    )


def copy_reference(reference: NDArray[np.bool_], _volunteer: int) -> NDArray[np.bool_]:
    return reference


def reference_of(storage: Storage, item: Slice) -> NDArray[np.bool_]:
    """The slice's reference mask (all background where the case came without one)."""
    if item.reference_key:
        return read_mask(storage, item.reference_key)
    return np.zeros((item.height, item.width), dtype=bool)


def label(
    engine: Engine,
    storage: Storage,
    volunteers: Sequence[User],
    *,
    per_volunteer: int | None = None,
    draw: Drawing = copy_reference,
) -> int:
    """Each volunteer in turn answers up to ``per_volunteer`` leases (None: until the queue
    has nothing for them or the rules suspend them); the number of answers."""
    answered = 0
    for place, user in enumerate(volunteers):
        taken = 0
        while per_volunteer is None or taken < per_volunteer:
            with transaction(engine) as session:
                try:
                    lease = tasks.next_task(session=session, user=user, lease_seconds=600)
                except RaterSuspended:
                    lease = None  # the rules caught a scripted volunteer: the others go on
                if lease is None:
                    break
                item = session.get_one(Slice, lease.task.slice_id)
                mask = draw(reference_of(storage, item), place)
                submit(session, storage, user, lease, mask=mask_rle(mask))
            taken += 1
            answered += 1
    return answered


def fuse_complete(engine: Engine, storage: Storage, project_id: int | None = None) -> int:
    """Fuse every complete task (of one project, or all), one transaction each; how many."""
    query = select(Task.id).where(Task.state == TaskState.complete)
    if project_id is not None:
        query = query.where(Task.project_id == project_id)
    with Session(engine) as session:
        complete = session.exec(query.order_by(col(Task.id))).all()
    for task_id in complete:
        with transaction(engine) as session:
            fusion.fuse_task(session=session, storage=storage, task_id=task_id or 0)
    return len(complete)
