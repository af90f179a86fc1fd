"""Fusing a project's or a task's volunteer answers and storing versioned results."""

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from sqlalchemy import case, func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from backend.annotations.models import Annotation
from backend.core.db import on_rollback, serialize_writers, table_of
from backend.core.errors import NotFound
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.fusion import crowd
from backend.fusion.models import FusionResult, FusionRun, FusionScope
from backend.fusion.redundancy import Decision, RedundancyPolicy, decide, uncertainty
from backend.fusion.staple import posterior_from_rates
from backend.imaging.preprocess import encode_png
from backend.projects.models import Project
from backend.quality import service as quality
from backend.quality.models import GoldVersion
from backend.tasks.models import Assignment, Task, TaskKind, TaskState
from backend.tasks.service import refresh_slots

# Crowd STAPLE with rates pooled over the project, and the outline rule the project's gold
# chose (``crowd.choose_outline``): stored as "crowd_staple/<rule>".
METHOD = "crowd_staple"
# Rates for a rater the project's latest run has not seen and gold has not scored.
DEFAULT_RATES = (0.8, 0.99)
DEFAULT_PRIOR = 0.02
TASKS = table_of(Task)


@dataclass(frozen=True)
class Answer:
    annotation_id: int
    user_id: int
    mask_key: str


def _answers(
    session: Session,
    project_id: int,
    excluded: set[int],
    task_ids: list[int] | None = None,
    kind: TaskKind = TaskKind.normal,
) -> dict[int, tuple[int, list[Answer]]]:
    """Volunteers' answers to the project's tasks of ``kind`` (crowd tasks by default), by
    task: (slice id, answers); experts' answers and those of excluded (suspended) raters are
    left out."""
    query = (
        sa_select(
            col(Task.id),
            col(Task.slice_id),
            col(Annotation.id),
            col(Annotation.user_id),
            col(Annotation.mask_key),
        )
        .join(Annotation, col(Annotation.task_id) == col(Task.id))
        .join(
            Assignment,
            (col(Assignment.task_id) == col(Task.id))
            & (col(Assignment.user_id) == col(Annotation.user_id)),
        )
        .where(col(Task.project_id) == project_id, col(Task.kind) == kind)
        .where(col(Assignment.expert).is_(False))
        .order_by(col(Task.id), col(Annotation.id))
    )
    if task_ids is not None:
        query = query.where(col(Task.id).in_(task_ids))
    found: dict[int, tuple[int, list[Answer]]] = {}
    for task_id, slice_id, annotation_id, user_id, key in session.execute(query):
        if user_id in excluded:
            continue
        found.setdefault(task_id, (slice_id, []))[1].append(Answer(annotation_id, user_id, key))
    return found


def _votes(storage: Storage, answers: list[Answer]) -> NDArray[np.bool_]:
    return np.array([quality.read_mask(storage, a.mask_key) for a in answers])


def _marked(votes: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Pixels any rater marked ([R, H, W] -> [H, W])."""
    return cast(NDArray[np.bool_], np.any(votes, axis=0))


def soft_png(posterior: NDArray[np.float64]) -> bytes:
    """The soft label as an 8-bit PNG: round(255 * P(lesion))."""
    return encode_png(np.rint(np.clip(posterior, 0, 1) * 255).astype(np.uint8))


def read_soft(storage: Storage, key: str) -> NDArray[np.float64]:
    """A stored soft label back as P(lesion) (to 1/255)."""
    with Image.open(io.BytesIO(storage.get(key))) as image:
        return np.asarray(image, dtype=np.float64) / 255.0


def _store(
    session: Session,
    storage: Storage,
    run: FusionRun,
    task_id: int,
    version: int,
    slice_id: int,
    answers: list[Answer],
    posterior: NDArray[np.float64],
    votes: NDArray[np.bool_],
) -> FusionResult:
    """Version ``version`` of the task's fused label, from STAPLE's ``posterior`` and the
    answers' ``votes``: the soft label stored follows the run's outline rule, and the
    uncertainty (for adaptive redundancy) is STAPLE's, which says whether lesions exist."""
    soft = crowd.outlined(posterior, votes.mean(axis=0), outline_of(run))
    key = f"fusion/{task_id}/v{version}.png"
    storage.put(key, soft_png(soft))
    on_rollback(session, lambda: storage.delete(key))
    result = FusionResult(
        run_id=run.id or 0,
        task_id=task_id,
        slice_id=slice_id,
        version=version,
        soft_key=key,
        hard_pixels=int(np.count_nonzero(soft >= 0.5)),
        annotation_ids=[a.annotation_id for a in answers],
        raters=[a.user_id for a in answers],
        uncertainty=uncertainty(posterior, _marked(votes)),
    )
    session.add(result)
    return result


def _priors(session: Session, project_id: int) -> tuple[dict[int, quality.RaterPrior], set[int]]:
    """The raters' Beta priors from their gold record, and who is suspended."""
    priors = quality.rater_priors(session, project_id)
    return priors, {user_id for user_id, prior in priors.items() if prior.excluded}


def outline_of(run: FusionRun | None) -> crowd.Outline:
    """The outline rule a run used (its method "crowd_staple/<rule>"); STAPLE's own for runs
    from before the rule was recorded and when there is no run."""
    if run is None or "/" not in run.method:
        return crowd.Outline.staple
    return crowd.Outline(run.method.split("/", 1)[1])


def _rates_for(
    given: list[Answer], rates: dict[str, Any], priors: dict[int, quality.RaterPrior]
) -> dict[str, list[float]]:
    """Each answer's rater's [p, q]: from ``rates`` (a project run), else their gold record's
    means, else defaults."""
    chosen = {}
    for a in given:
        if str(a.user_id) in rates:
            chosen[str(a.user_id)] = list(rates[str(a.user_id)])
        elif a.user_id in priors:
            prior_of = priors[a.user_id]
            chosen[str(a.user_id)] = [prior_of.sensitivity.mean, prior_of.specificity.mean]
        else:
            chosen[str(a.user_id)] = list(DEFAULT_RATES)
    return chosen


def _posterior(
    votes: NDArray[np.bool_], given: list[Answer], chosen: dict[str, list[float]], prior: float
) -> NDArray[np.float64]:
    return posterior_from_rates(
        votes,
        [chosen[str(a.user_id)][0] for a in given],
        [chosen[str(a.user_id)][1] for a in given],
        prior,
    )


# Gold slices fused to choose the outline rule: the most recent ones, each with its first
# answers up to the project's max_labels (as a crowd task would have them).
GOLD_SLICES_SCANNED = 200


def _gold_examples(
    session: Session,
    storage: Storage,
    project: Project,
    excluded: set[int],
    rates: dict[str, Any],
    priors: dict[int, quality.RaterPrior],
    prior: float,
) -> list[crowd.GoldExample]:
    """The project's gold slices with at least ``min_labels`` volunteer answers, fused with
    the run's rates, beside their gold masks."""
    found = _answers(session, project.id or 0, excluded, kind=TaskKind.gold)
    chosen_tasks = sorted(
        (t for t, (_, given) in found.items() if len(given) >= project.min_labels), reverse=True
    )[:GOLD_SLICES_SCANNED]
    if not chosen_tasks:
        return []
    keys = dict(
        session.execute(
            sa_select(col(Task.id), col(GoldVersion.mask_key))
            .join(GoldVersion, col(GoldVersion.id) == col(Task.gold_version_id))
            .where(col(Task.id).in_(chosen_tasks))
        ).all()
    )
    examples = []
    for task_id in chosen_tasks:
        if task_id not in keys:
            continue
        given = found[task_id][1][: project.max_labels]
        votes = _votes(storage, given)
        posterior = _posterior(votes, given, _rates_for(given, rates, priors), prior)
        gold = quality.read_mask(storage, keys[task_id])
        examples.append(crowd.GoldExample(posterior, votes.mean(axis=0), gold))
    return examples


def policy_of(project: Project) -> RedundancyPolicy:
    """The project's adaptive-redundancy settings."""
    return RedundancyPolicy(project.min_labels, project.max_labels, project.max_uncertainty)


def _locked_tasks(session: Session, task_ids: list[int]) -> dict[int, Task]:
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
    session: Session, task: Task, result: FusionResult | None, policy: RedundancyPolicy
) -> Decision | None:
    """Apply adaptive redundancy to a crowd task from its fused ``result`` (None: no answer
    counts, every rater was left out): a complete task retires (stays complete), asks for
    more labels (reopened with a higher ``required_labels``) or goes to the experts' review
    queue; the decision is stored on the result. Tasks in any other state are left alone
    (None). The caller holds the task's lock. Idempotent: the same result on the same task
    decides the same, and a reopened task is no longer complete."""
    if task.state is not TaskState.complete or task.kind is not TaskKind.normal:
        return None
    assert task.id is not None
    labels = 0 if result is None else len(result.annotation_ids)
    decision = decide(labels, 0.0 if result is None else result.uncertainty, policy)
    if result is not None:
        result.decision = decision.value
        session.add(result)
    if decision in (Decision.wait, Decision.extend):
        # Answers of raters left out (suspended) took slots but are not labels.
        missing = policy.min_labels - labels if decision is Decision.wait else 1
        values = {"required_labels": task.submitted_labels + missing, "state": TaskState.open}
        session.execute(update(TASKS).where(TASKS.c.id == task.id).values(**values))
        refresh_slots(session, task.id)
    elif decision is Decision.escalate:
        session.execute(update(TASKS).where(TASKS.c.id == task.id).values(state=TaskState.review))
    return decision


def fuse_project(
    *,
    session: Session,
    storage: Storage,
    project_id: int,
    min_answers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> FusionRun:
    """Fuse every crowd task of a project with at least ``min_answers`` volunteer answers,
    rates estimated jointly over all of them (gold priors; suspended raters left out); the
    project's gold slices, fused the same way, choose the outline rule
    (``crowd.choose_outline``); each task gets a new version of its fused label, and complete
    ones are settled (``settle``) with the new rates."""
    priors, excluded = _priors(session, project_id)
    answers = {
        task_id: found
        for task_id, found in _answers(session, project_id, excluded).items()
        if len(found[1]) >= min_answers
    }
    slices = [
        crowd.CrowdSlice([a.user_id for a in given], _votes(storage, given))
        for _slice_id, given in answers.values()
    ]
    run = FusionRun(
        project_id=project_id,
        scope=FusionScope.project,
        method=METHOD,
        prior=DEFAULT_PRIOR,
        iterations=0,
        converged=True,
        slices=len(slices),
        excluded=sorted(excluded),
    )
    fused = crowd.crowd_staple(slices, priors=priors) if slices else None
    if fused is not None:
        run.prior, run.iterations, run.converged = fused.prior, fused.iterations, fused.converged
        run.rater_rates = {
            str(r): [fused.sensitivity[r], fused.specificity[r]] for r in fused.sensitivity
        }
    project = session.get_one(Project, project_id)
    examples = _gold_examples(
        session, storage, project, excluded, run.rater_rates, priors, run.prior
    )
    outline, run.outline_scores = crowd.choose_outline(examples)
    run.method = f"{METHOD}/{outline.value}"
    session.add(run)
    session.flush()
    last = _last_versions(session, project_id)  # one query, not one per task
    stored: dict[int, FusionResult] = {}
    for n, (task_id, (slice_id, given)) in enumerate(answers.items()):
        assert fused is not None
        version = last.get(task_id, 0) + 1
        stored[task_id] = _store(
            session,
            storage,
            run,
            task_id,
            version,
            slice_id,
            given,
            fused.posterior(n),
            slices[n].votes,
        )
        if progress is not None:
            progress(n + 1, len(answers))
    policy = policy_of(project)
    for task_id, task in _locked_tasks(session, list(answers)).items():
        settle(session, task, stored[task_id], policy)
    run.finished_at = utcnow()
    session.add(run)
    session.flush()
    return run


def fuse_task(*, session: Session, storage: Storage, task_id: int) -> FusionResult | None:
    """Fuse one task's volunteer answers with the rates of its project's latest project-wide
    run (raters it has not seen: their gold record, else defaults), and, when the task is
    complete, apply adaptive redundancy (``settle``). Idempotent: when the latest version
    fused the same answers with the same rates, it is returned as it is. None when the task
    has no volunteer answer."""
    task = _locked_tasks(session, [task_id]).get(task_id)
    if task is None:
        raise NotFound(f"Task {task_id} does not exist")
    policy = policy_of(session.get_one(Project, task.project_id))
    priors, excluded = _priors(session, task.project_id)
    found = _answers(session, task.project_id, excluded, [task_id]).get(task_id)
    if found is None:
        settle(session, task, None, policy)
        return None
    slice_id, given = found
    source = session.exec(
        select(FusionRun)
        .where(FusionRun.project_id == task.project_id, FusionRun.scope == FusionScope.project)
        .order_by(col(FusionRun.id).desc())
    ).first()
    rates: dict[str, Any] = dict(source.rater_rates) if source else {}
    prior = source.prior if source else DEFAULT_PRIOR
    method = f"{METHOD}/{outline_of(source).value}"
    chosen = _rates_for(given, rates, priors)
    latest = next(iter(results(session, task_id)), None)
    if latest is not None and latest.annotation_ids == [a.annotation_id for a in given]:
        previous = session.get(FusionRun, latest.run_id)
        if (
            previous is not None
            and previous.rater_rates == chosen
            and previous.prior == prior
            and previous.method == method
        ):
            settle(session, task, latest, policy)
            return latest
    votes = _votes(storage, given)
    posterior = _posterior(votes, given, chosen, prior)
    run = FusionRun(
        project_id=task.project_id,
        scope=FusionScope.task,
        method=method,
        prior=prior,
        iterations=0,
        converged=True,
        slices=1,
        rater_rates=chosen,
        excluded=sorted(excluded),
        finished_at=utcnow(),
    )
    session.add(run)
    session.flush()
    version = 1 if latest is None else latest.version + 1
    result = _store(session, storage, run, task_id, version, slice_id, given, posterior, votes)
    settle(session, task, result, policy)
    session.flush()
    return result


def _last_versions(session: Session, project_id: int) -> dict[int, int]:
    """The newest fused version of each task of the project that has one."""
    rows = session.execute(
        sa_select(col(FusionResult.task_id), func.max(FusionResult.version))
        .join(Task, col(Task.id) == col(FusionResult.task_id))
        .where(col(Task.project_id) == project_id)
        .group_by(col(FusionResult.task_id))
    ).all()
    return {int(task_id): int(version) for task_id, version in rows}


def results(session: Session, task_id: int) -> list[FusionResult]:
    """Every version of a task's fused label, newest first."""
    return list(
        session.exec(
            select(FusionResult)
            .where(FusionResult.task_id == task_id)
            .order_by(col(FusionResult.version).desc())
        ).all()
    )


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
