"""Projects: create, list with progress counts."""

from pydantic import ValidationError
from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend.core.db import table_of
from backend.core.errors import Conflict, InvalidInput, NotFound
from backend.core.timeutil import utcnow
from backend.imaging.models import Case, Slice
from backend.projects.models import Project
from backend.projects.schemas import ProjectCreate, ProjectRead
from backend.quality.models import GoldVersion
from backend.tasks.models import Assignment, AssignmentState, Task, TaskKind, TaskState


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


def set_holdout(*, session: Session, project_name: str, case_ids: list[str]) -> Project:
    """Hold a project's cases out for evaluating models (public ids; the list replaces the old
    one): their crowd tasks leave the queue (retired) and their gold is retired, since a
    held-out case is never trained on, never gold and never shown to volunteers; cases no
    longer held out get their unanswered crowd tasks back."""
    project = session.exec(select(Project).where(Project.name == project_name)).first()
    if project is None:
        raise NotFound(f"No project called {project_name!r}")
    cases = dict(
        session.exec(select(Case.public_id, Case.id).where(Case.project_id == project.id)).all()
    )
    unknown = sorted(set(case_ids) - set(cases))
    if unknown:
        raise InvalidInput(f"Not cases of {project_name!r}: {', '.join(unknown)}")
    teaching = session.exec(
        select(Case.public_id).where(
            Case.project_id == project.id, col(Case.public_id).in_(case_ids), col(Case.tutorial)
        )
    ).all()
    if teaching:
        raise Conflict(
            f"Tutorial material cannot be held out: {', '.join(sorted(teaching))}",
            code="case_is_tutorial",
        )
    held = {cases[c] for c in case_ids}
    freed = {cases[c] for c in project.holdout_cases if c in cases} - held
    in_held = col(Task.slice_id).in_(select(Slice.id).where(col(Slice.case_id).in_(held)))
    in_freed = col(Task.slice_id).in_(select(Slice.id).where(col(Slice.case_id).in_(freed)))
    session.execute(
        update(table_of(Task))
        .where(
            col(Task.project_id) == project.id,
            in_held,
            col(Task.state).in_([TaskState.open, TaskState.review]),
        )
        .values(state=TaskState.retired)
    )
    # Leases held on them end now: their images and answers are no longer the volunteer's.
    held_tasks = select(Task.id).where(col(Task.project_id) == project.id, in_held)
    session.execute(
        update(table_of(Assignment))
        .where(
            col(Assignment.task_id).in_(held_tasks),
            col(Assignment.state) == AssignmentState.active,
        )
        .values(state=AssignmentState.skipped, lease_expires_at=utcnow())
    )
    gold = select(Slice.id).where(col(Slice.case_id).in_(held))
    session.execute(
        update(table_of(GoldVersion))
        .where(col(GoldVersion.slice_id).in_(gold), col(GoldVersion.retired_at).is_(None))
        .values(retired_at=utcnow())
    )
    # Crowd tasks of cases let back in reopen when no gold replaced them.
    current_gold = select(GoldVersion.slice_id).where(col(GoldVersion.retired_at).is_(None))
    session.execute(
        update(table_of(Task))
        .where(
            col(Task.project_id) == project.id,
            in_freed,
            col(Task.kind) == TaskKind.normal,
            col(Task.state) == TaskState.retired,
            col(Task.submitted_labels) < col(Task.required_labels),
            col(Task.slice_id).not_in(current_gold),
        )
        .values(state=TaskState.open)
    )
    project.holdout_cases = list(case_ids)
    session.add(project)
    session.flush()
    return project
