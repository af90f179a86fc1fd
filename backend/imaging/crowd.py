"""The crowd tasks of an imported case (one per slice), opened only when its consent allows
crowd viewing."""

from sqlmodel import Session

from backend.imaging.models import Case, Slice
from backend.projects.models import Project
from backend.tasks.models import Task, TaskKind, TaskState
from backend.tasks.order import queue_priority


def add_crowd_tasks(session: Session, project: Project, case: Case, slices: list[Slice]) -> int:
    """Open a crowd task per slice of a case whose consent allows crowd viewing (none
    otherwise: such a case stays with experts); the tasks added."""
    if not case.consent_crowd_viewing:
        return 0
    # A held-out case evaluates models: its slices are never crowd tasks (nor gold).
    state = TaskState.retired if case.public_id in project.holdout_cases else TaskState.open
    for item in slices:
        assert item.id is not None
        assert project.id is not None
        session.add(
            Task(
                project_id=project.id,
                slice_id=item.id,
                kind=TaskKind.normal,
                state=state,
                required_labels=project.min_labels,
                # Until a model ranks them: a scramble of the slice id (backend.tasks.order).
                priority=queue_priority(item.id),
            )
        )
    return len(slices)
