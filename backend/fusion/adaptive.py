"""Adaptive redundancy in the database: what a crowd task does next after its fusion
(``settle``), and where a project's tasks stand. The rule itself is ``fusion.redundancy``."""

from dataclasses import dataclass

from sqlalchemy import case, func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from backend.core.db import serialize_writers, table_of
from backend.core.errors import NotFound
from backend.fusion.models import FusionResult
from backend.fusion.redundancy import Decision, RedundancyPolicy, decide
from backend.projects.models import Project
from backend.tasks.models import Task, TaskKind, TaskState
from backend.tasks.slots import refresh_slots

TASKS = table_of(Task)


def policy_of(project: Project) -> RedundancyPolicy:
    """The project's adaptive-redundancy settings."""
    return RedundancyPolicy(project.min_labels, project.max_labels, project.max_uncertainty)


def locked_tasks(session: Session, task_ids: list[int]) -> dict[int, Task]:
    """The tasks, read fresh and locked against concurrent submissions (in id order)."""
    if not task_ids:
        return {}
    serialize_writers(session)
    query = (
        select(Task)
        .where(col(Task.id).in_(task_ids))
        .order_by(col(Task.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {task.id or 0: task for task in session.exec(query)}


def settle(
    session: Session,
    task: Task,
    result: FusionResult | None,
    policy: RedundancyPolicy,
    usable: int | None = None,
) -> Decision | None:
    """Apply adaptive redundancy to a crowd task from its fused ``result`` (None: no label
    was made): a complete task retires (stays complete), asks for more labels (reopened with
    a higher ``required_labels``) or goes to the experts' review queue; the decision is stored
    on the result. ``usable``: the answers that count (default: those the result fused).
    A task whose label was withdrawn (``result.withdrawn``) goes back to collecting answers
    from the review queue too; tasks in any other state are left alone (None). The caller
    holds the task's lock. Idempotent: the same result on the same task decides the same,
    and a reopened task is no longer complete."""
    withdrawn = result is not None and result.withdrawn
    reviewable = task.state is TaskState.review and withdrawn
    if task.kind is not TaskKind.normal or not (task.state is TaskState.complete or reviewable):
        return None
    assert task.id is not None
    if usable is not None:
        labels = usable
    else:
        labels = 0 if result is None else len(result.annotation_ids)
    certainty = 0.0 if result is None or result.uncertainty is None else result.uncertainty
    decision = decide(labels, certainty, policy)
    if result is not None:
        result.decision = decision.value
        session.add(result)
    if decision in (Decision.wait, Decision.extend):
        # Answers of raters left out (excluded) took slots but are not labels.
        missing = policy.min_labels - labels if decision is Decision.wait else 1
        values = {"required_labels": task.submitted_labels + missing, "state": TaskState.open}
        session.execute(update(TASKS).where(TASKS.c.id == task.id).values(**values))
        refresh_slots(session, task.id)
    elif decision is Decision.escalate:
        session.execute(update(TASKS).where(TASKS.c.id == task.id).values(state=TaskState.review))
    return decision


@dataclass(frozen=True)
class RedundancySummary:
    """Where a project's crowd tasks stand under adaptive redundancy."""

    policy: RedundancyPolicy
    retired: int  # complete: enough labels and a confident fused label (or not fused yet)
    labels_per_retired: float | None  # mean labels of those (None: none yet)
    open: int
    asking_for_more: int  # open tasks reopened for more labels than min_labels
    in_review: int  # uncertain after max_labels: in the experts' review queue


def redundancy_summary(session: Session, project_id: int) -> RedundancySummary:
    """How many labels the project's retired crowd tasks took, and how many tasks wait for
    more labels or for an expert (one grouped query)."""
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"Project {project_id} does not exist")
    reopened = func.sum(case((col(Task.required_labels) > project.min_labels, 1), else_=0))
    rows = session.execute(
        sa_select(col(Task.state), func.count(), func.avg(col(Task.submitted_labels)), reopened)
        .where(col(Task.project_id) == project_id, col(Task.kind) == TaskKind.normal)
        .group_by(col(Task.state))
    ).all()
    by_state = {TaskState(state): (count, mean, more) for state, count, mean, more in rows}
    retired = by_state.get(TaskState.complete, (0, None, 0))
    opened = by_state.get(TaskState.open, (0, None, 0))
    return RedundancySummary(
        policy=policy_of(project),
        retired=retired[0],
        labels_per_retired=None if retired[1] is None else float(retired[1]),
        open=opened[0],
        asking_for_more=int(opened[2] or 0),
        in_review=by_state.get(TaskState.review, (0, None, 0))[0],
    )
