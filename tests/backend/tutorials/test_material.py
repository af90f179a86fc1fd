"""Tutorial material never becomes crowd work, gold or held out, and what may not be material
is refused."""

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from backend.core.errors import Conflict
from backend.core.storage import Storage
from backend.projects import service as projects
from backend.projects.models import Project
from backend.quality import gold
from backend.tasks.models import Task, TaskState
from backend.tutorials import material
from backend.tutorials.models import MaterialKind, TutorialSlice
from tests.backend.tutorials.material import create_tutorial_case
from tests.factories import create_case_row, create_project


def test_material_is_never_crowd_work_gold_or_held_out(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        case, shown = create_tutorial_case(session, storage)
        project_id = case.project_id
        tasks = session.exec(select(Task).where(Task.project_id == project_id)).all()
        assert tasks
        assert {t.state for t in tasks} == {TaskState.retired}
        kinds = {row.kind for row in session.exec(select(TutorialSlice)).all()}
        assert kinds == {MaterialKind.lesion, MaterialKind.empty, MaterialKind.mimic}
        # The gold pool passes it over; an expert cannot make one of its slices gold.
        assert gold.seed_gold(session=session, storage=storage, project_id=project_id) == 0
        lesion_slice = next(i for i, s in shown.items() if s.reference.any())
        with pytest.raises(Conflict, match="tutorial material"):
            gold.approve_reference(
                session=session, storage=storage, slice_id=lesion_slice, expert_id=None
            )
        found = session.get(Project, project_id)
        assert found is not None
        with pytest.raises(Conflict) as refused:
            projects.set_holdout(
                session=session, project_name=found.name, case_ids=[case.public_id]
            )
        assert refused.value.code == "case_is_tutorial"


def test_held_out_and_unreferenced_cases_are_refused_as_material(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project = create_project(session)
        bare = create_case_row(session, project)
        with pytest.raises(Conflict) as refused:
            material.use_case(
                session=session,
                storage=storage,
                project_name=project.name,
                public_id=bare.public_id,
            )
        assert refused.value.code == "no_reference"
        bare.reference_voxels = 10
        project.holdout_cases = [bare.public_id]
        session.add_all([bare, project])
        session.flush()
        with pytest.raises(Conflict) as held:
            material.use_case(
                session=session,
                storage=storage,
                project_name=project.name,
                public_id=bare.public_id,
            )
        assert held.value.code == "case_held_out"
