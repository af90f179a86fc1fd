"""Projects: create, list with progress counts."""

from sqlalchemy import func
from sqlmodel import Session, col, select

from backend.core.errors import Conflict
from backend.imaging.models import Case
from backend.projects.models import Project
from backend.projects.schemas import ProjectCreate, ProjectRead
from backend.tasks.models import Task, TaskState


def create(*, session: Session, project_in: ProjectCreate) -> Project:
    """A new project; ``Conflict`` when the name is taken."""
    if session.exec(select(Project.id).where(Project.name == project_in.name)).first():
        raise Conflict(f"A project called {project_in.name!r} already exists")
    project = Project.model_validate(project_in)
    session.add(project)
    session.flush()
    return project


def list_with_progress(*, session: Session) -> list[ProjectRead]:
    """Every project with its case count and open/complete task counts."""
    cases = dict(
        session.exec(select(Case.project_id, func.count()).group_by(col(Case.project_id))).all()
    )
    tasks: dict[tuple[int, str], int] = {
        (project_id, str(state)): count
        for project_id, state, count in session.exec(
            select(Task.project_id, Task.state, func.count()).group_by(
                col(Task.project_id), col(Task.state)
            )
        ).all()
    }
    projects = session.exec(select(Project).order_by(col(Project.id))).all()
    return [
        ProjectRead(
            **p.model_dump(),
            cases=cases.get(p.id, 0),
            tasks_open=tasks.get((p.id, TaskState.open), 0),
            tasks_complete=tasks.get((p.id, TaskState.complete), 0),
        )
        for p in projects
        if p.id is not None
    ]
