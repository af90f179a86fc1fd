"""Held-out cases: never served to volunteers, never gold, and back in the queue when
released."""

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from backend.auth import service as auth
from backend.core.errors import Conflict, InvalidInput, NotFound
from backend.core.storage import Storage
from backend.imaging.models import Case
from backend.projects import service as projects
from backend.quality import gold
from backend.quality.models import GoldVersion
from backend.tasks import service as tasks
from backend.tasks.models import Task, TaskState
from tests.backend.quality.test_gold import _normal_tasks, _square_masks, create_case
from tests.factories import PASSWORD, create_project, submit


def test_a_held_out_case_leaves_the_queue_and_gold_and_comes_back(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project = create_project(session, gold_rate=0.5, gold_schedule=[])
        slices = create_case(session, storage, project, _square_masks(6))
        gold.approve_reference(
            session=session, storage=storage, slice_id=slices[0].id or 0, expert_id=None
        )
        _normal_tasks(session, project, slices[1:])
        (case_id,) = session.exec(select(Case.public_id)).all()
        volunteer = auth.create_user(session=session, email="v@example.org", password=PASSWORD)
        held = tasks.next_task(session=session, user=volunteer, lease_seconds=60, draw=0.99)
        assert held is not None
        with pytest.raises(InvalidInput, match="nope"):
            projects.set_holdout(session=session, project_name=project.name, case_ids=["nope"])

        projects.set_holdout(session=session, project_name=project.name, case_ids=[case_id])
        assert {t.state for t in session.exec(select(Task))} == {TaskState.retired}
        assert all(v.retired_at for v in session.exec(select(GoldVersion)))
        assert tasks.next_task(session=session, user=volunteer, lease_seconds=60) is None
        # A lease held when the case was held out ends: no image, no answer.
        with pytest.raises(Conflict, match="withdrawn"):
            submit(session, storage, volunteer, held)
        with pytest.raises(NotFound):
            tasks.lease_image_key(
                session=session,
                lease_id=held.id,
                user_id=volunteer.id or 0,
                offset=0,
                contrast="flair",
            )
        with pytest.raises(Exception, match="held out"):
            gold.approve_reference(
                session=session, storage=storage, slice_id=slices[0].id or 0, expert_id=None
            )

        projects.set_holdout(session=session, project_name=project.name, case_ids=[])
        reopened = session.exec(select(Task).where(Task.state == TaskState.open)).all()
        assert {t.slice_id for t in reopened} == {s.id for s in slices[1:]}
        assert tasks.next_task(session=session, user=volunteer, lease_seconds=60) is not None
