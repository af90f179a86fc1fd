"""Projects: create, list with progress counts."""

from pydantic import ValidationError
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend.core.errors import Conflict, InvalidInput
from backend.imaging.models import Case
from backend.projects.models import Project
from backend.projects.schemas import ProjectCreate, ProjectRead
from backend.tasks.models import Task, TaskKind, TaskState


def create(*, session: Session, project_in: ProjectCreate) -> Project:
    """A new project; ``Conflict`` when the name is taken."""
    if session.exec(select(Project.id).where(Project.name == project_in.name)).first():
        raise Conflict(f"A project called {project_in.name!r} already exists")
    project = Project.model_validate(project_in)
    session.add(project)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create won the race for the name
        raise Conflict(f"A project called {project_in.name!r} already exists") from exc
    return project


def get_or_create(
    *,
    session: Session,
    name: str,
    min_labels: int | None = None,
    max_labels: int | None = None,
    gold_rate: float | None = None,
) -> Project:
    """The project called ``name``, created with the given settings when it does not exist."""
    project = session.exec(select(Project).where(Project.name == name)).first()
    if project is not None:
        return project
    fields = {
        "name": name,
        "min_labels": min_labels,
        "max_labels": max_labels,
        "gold_rate": gold_rate,
    }
    try:
        project_in = ProjectCreate.model_validate(
            {k: v for k, v in fields.items() if v is not None}
        )
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"Invalid project settings ({problems})") from exc
    return create(session=session, project_in=project_in)


def list_with_progress(*, session: Session) -> list[ProjectRead]:
    """Every project with its case count and open/complete counts of its crowd (normal)
    tasks; gold and repeat tasks are not counted, so the figures say nothing about them."""
    cases = dict(
        session.exec(select(Case.project_id, func.count()).group_by(col(Case.project_id))).all()
    )
    tasks: dict[tuple[int, str], int] = {
        (project_id, str(state)): count
        for project_id, state, count in session.exec(
            select(Task.project_id, Task.state, func.count())
            .where(Task.kind == TaskKind.normal)
            .group_by(col(Task.project_id), col(Task.state))
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
