"""The queue mixes cases: a volunteer's consecutive tasks come from different cases (and so
are never neighbouring slices of one case) while other cases have open tasks for them."""

import numpy as np
from sqlalchemy import Engine
from sqlmodel import Session

from backend.auth import service as auth
from backend.auth.models import User
from backend.core.storage import Storage
from backend.imaging.models import Slice
from backend.imaging.preprocess import encode_png
from backend.projects.models import Project
from backend.tasks import service
from backend.tasks.models import Task
from backend.tasks.order import RANKED, queue_priority
from tests.factories import HEIGHT, PASSWORD, WIDTH, create_case_row, create_project, submit

LEASE = 600


def _cases(
    session: Session, storage: Storage, project: Project, slices: list[int]
) -> dict[int, tuple[int, int]]:
    """Cases of ``slices[i]`` slices each, with brain shares rising to the middle slice as in
    a real brain; tasks at their import priority. Task id -> (case number, slice index)."""
    where: dict[int, tuple[int, int]] = {}
    for number, count in enumerate(slices):
        case = create_case_row(session, project)
        assert case.id is not None
        for index in range(count):
            key = f"cases/{case.public_id}/axial/{index:04d}/flair.png"
            storage.put(key, encode_png(np.full((HEIGHT, WIDTH), index, dtype=np.uint8)))
            brain = 0.2 + 0.7 * (1 - abs(index - count / 2) / (count / 2))
            slice_ = Slice(
                case_id=case.id,
                index=index,
                crop_x0=0,
                crop_y0=0,
                crop_x1=WIDTH,
                crop_y1=HEIGHT,
                image_keys={"flair": key},
                brain_fraction=brain,
            )
            session.add(slice_)
            session.flush()
            assert slice_.id is not None
            task = Task(
                project_id=project.id,
                slice_id=slice_.id,
                required_labels=2,
                priority=queue_priority(slice_.id),
            )
            session.add(task)
            session.flush()
            assert task.id is not None
            where[task.id] = (number, index)
    return where


def _walk(session: Session, storage: Storage, user: User) -> list[int]:
    """The tasks ``user`` gets, answering each, until the queue has none for them."""
    got = []
    while (lease := service.next_task(session=session, user=user, lease_seconds=LEASE)) is not None:
        got.append(lease.task.id)
        submit(session, storage, user, lease)
    return got


def test_the_import_order_scrambles_slice_ids() -> None:
    values = [queue_priority(i) for i in range(1, 5001)]
    assert len(set(values)) == len(values)  # no ties
    assert all(0.0 <= v < RANKED for v in values)  # below every slice a round chose
    # Neighbouring ids (a case's neighbouring slices) land far apart in the queue.
    assert min(abs(a - b) for a, b in zip(values, values[1:], strict=False)) > 0.1


def test_consecutive_tasks_come_from_different_cases(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project = create_project(session, min_labels=2, gold_rate=0.0, gold_schedule=[])
        where = _cases(session, storage, project, [12, 9, 7])
        first, second = (
            auth.create_user(session=session, email=f"m{i}@example.org", password=PASSWORD)
            for i in range(2)
        )
        for user in (first, second):
            got = _walk(session, storage, user)
            assert sorted(got) == sorted(where)  # every task, once
            for k in range(1, len(got)):
                (case_a, index_a), (case_b, index_b) = where[got[k - 1]], where[got[k]]
                others_open = {where[t][0] for t in got[k:]} - {case_a}
                if others_open:
                    assert case_a != case_b, (k, where[got[k - 1]], where[got[k]])
                # Never neighbouring slices of one case in a row, even once only one is left.
                assert not (case_a == case_b and abs(index_a - index_b) <= 1), (k, got)


def test_a_prefetch_comes_from_another_case(migrated_engine: Engine, storage: Storage) -> None:
    with Session(migrated_engine) as session:
        project = create_project(session, min_labels=2, gold_rate=0.0, gold_schedule=[])
        where = _cases(session, storage, project, [6, 6])
        user = auth.create_user(session=session, email="p@example.org", password=PASSWORD)
        held = service.next_task(session=session, user=user, lease_seconds=LEASE)
        assert held is not None
        ahead = service.next_task(session=session, user=user, lease_seconds=LEASE, after=held.id)
        assert ahead is not None
        assert where[held.task.id][0] != where[ahead.task.id][0]
        # A reload still gets the held task first (the oldest live lease).
        again = service.next_task(session=session, user=user, lease_seconds=LEASE)
        assert again is not None
        assert again.task.id == held.task.id


def test_one_case_left_is_still_served(migrated_engine: Engine, storage: Storage) -> None:
    with Session(migrated_engine) as session:
        project = create_project(session, min_labels=2, gold_rate=0.0, gold_schedule=[])
        where = _cases(session, storage, project, [5])
        user = auth.create_user(session=session, email="o@example.org", password=PASSWORD)
        assert sorted(_walk(session, storage, user)) == sorted(where)


def test_a_rounds_chosen_slices_come_first_even_from_one_case(
    migrated_engine: Engine, storage: Storage
) -> None:
    """Mixing yields to active learning: the slices a round chose (priority RANKED and up)
    are served in the round's order although they share a case."""
    with Session(migrated_engine) as session:
        project = create_project(session, min_labels=2, gold_rate=0.0, gold_schedule=[])
        where = _cases(session, storage, project, [8, 8])
        chosen = [t for t, (case, index) in where.items() if case == 0 and index in (1, 4, 6)]
        for rank, task_id in enumerate(chosen):
            task = session.get(Task, task_id)
            assert task is not None
            task.priority = RANKED + 1 - rank / 10
            session.add(task)
        session.flush()
        user = auth.create_user(session=session, email="r@example.org", password=PASSWORD)
        assert _walk(session, storage, user)[:3] == chosen


def test_gold_mixes_like_the_queue(migrated_engine: Engine, storage: Storage) -> None:
    """Attack (issue 34 red team): gold that ignored the mixing rule came from the case of the
    previous task when the queue never did, which gave it away wherever a case can be told
    (its crop size). The gold draw prefers another case too, and still serves gold when only
    the last case has some."""
    from backend.quality import gold
    from tests.backend.quality.test_gold import _square_masks, create_case

    with Session(migrated_engine) as session:
        project = create_project(session, min_labels=2, gold_rate=1.0, gold_schedule=[])
        case_of: dict[int, int] = {}
        for number in range(2):
            for slice_ in create_case(session, storage, project, _square_masks(4)):
                assert slice_.id is not None
                gold.approve_reference(
                    session=session, storage=storage, slice_id=slice_.id, expert_id=None
                )
                case_of[slice_.id] = number
        user = auth.create_user(session=session, email="g@example.org", password=PASSWORD)
        cases = []
        while lease := service.next_task(session=session, user=user, lease_seconds=LEASE):
            cases.append(case_of[lease.task.slice_id])
            service.release(session=session, user_id=user.id or 0, lease_id=lease.id)
        assert len(cases) == 8  # every gold slice, once
        assert cases == [cases[0], 1 - cases[0]] * 4  # alternating while both cases have gold
