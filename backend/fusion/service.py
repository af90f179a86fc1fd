"""Fusing a project's or a task's volunteer answers into versioned fused labels, re-fusing a
rater's tasks when they are excluded or reinstated, and telling when pooled rates are stale.

Excluded raters (``quality.service.RaterPrior.excluded``: suspended, flagged for review) never
count: every fusion leaves their answers out, and ``refuse_rater`` re-fuses the tasks of a
rater whose exclusion changed, so the newest version of a task never carries an excluded
rater. A task left with fewer usable answers than a label needs (``usable_minimum``) gets a
withdrawn version (no label: nothing served, trained on or exported) and collects answers
again.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from backend.core.db import serialize_writers
from backend.core.errors import NotFound
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.fusion import crowd, labels, outlines
from backend.fusion.adaptive import locked_tasks, policy_of, settle
from backend.fusion.labels import Answer
from backend.fusion.models import FusionResult, FusionRun, FusionScope
from backend.fusion.redundancy import RedundancyPolicy
from backend.fusion.staple import posterior_from_rates
from backend.imaging.models import Slice
from backend.projects.models import Project
from backend.quality import gold as gold_versions
from backend.quality import service as quality
from backend.quality.models import GoldVersion
from backend.tasks.models import Task, TaskKind, TaskState

# Crowd STAPLE with rates pooled over the project, and the outline rule the project's gold
# chose (``outlines.choose_outline``): stored as "crowd_staple/<rule>".
METHOD = "crowd_staple"
# Rates for a rater the project's latest run has not seen and gold has not scored.
DEFAULT_RATES = (0.8, 0.99)
DEFAULT_PRIOR = 0.02
# The fewest volunteer answers a fused label is made from: one rater is no consensus.
MIN_ANSWERS = 2


def usable_minimum(project: Project) -> int:
    """The fewest usable answers a task's fused label is made from: ``MIN_ANSWERS``, or the
    project's ``min_labels`` when it asks for a single label."""
    return min(MIN_ANSWERS, project.min_labels)


def _priors(session: Session, project_id: int) -> tuple[dict[int, quality.RaterPrior], set[int]]:
    """The raters' Beta priors from their gold record, and who is excluded."""
    priors = quality.rater_priors(session, project_id)
    return priors, {user_id for user_id, prior in priors.items() if prior.excluded}


def regions(session: Session, slice_ids: list[int]) -> dict[int, int | None]:
    """Each slice's brain pixels on its image (the region gold specificity is counted over);
    None where no brain was measured."""
    columns = (Slice.id, Slice.brain_fraction, Slice.crop_x0, Slice.crop_x1, Slice.crop_y0)
    rows = session.execute(
        sa_select(*(col(c) for c in columns), col(Slice.crop_y1)).where(
            col(Slice.id).in_(slice_ids)
        )
    ).all()
    found: dict[int, int | None] = {}
    for slice_id, fraction, x0, x1, y0, y1 in rows:
        pixels = round(fraction * (x1 - x0) * (y1 - y0))
        found[int(slice_id)] = pixels if pixels > 0 else None
    return found


def _rates_for(
    given: list[Answer],
    rates: dict[str, Any],
    priors: dict[int, quality.RaterPrior],
    scale: Callable[[], float],
) -> dict[str, list[float]]:
    """Each answer's rater's [p, q]: from ``rates`` (a project run), else their gold record's
    means (specificity moved onto the near-vote scale, ``scale()`` being the slice's
    ``crowd.near_vote_scale``), else defaults."""
    chosen = {}
    for a in given:
        if str(a.user_id) in rates:
            chosen[str(a.user_id)] = list(rates[str(a.user_id)])
        elif a.user_id in priors:
            prior_of = priors[a.user_id]
            specificity = crowd.near_vote_specificity(prior_of.specificity, scale())
            chosen[str(a.user_id)] = [prior_of.sensitivity.mean, specificity.mean]
        else:
            chosen[str(a.user_id)] = list(DEFAULT_RATES)
    return chosen


def _posterior(
    stack: NDArray[np.bool_], given: list[Answer], chosen: dict[str, list[float]], prior: float
) -> NDArray[np.float64]:
    return posterior_from_rates(
        stack,
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
) -> list[outlines.GoldExample]:
    """The project's gold slices with at least ``min_labels`` volunteer answers, fused with
    the run's rates, beside their gold masks."""
    found = labels.answers(session, project.id or 0, excluded, kind=TaskKind.gold)
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
    pixels = regions(session, [found[t][0] for t in chosen_tasks])
    for task_id in chosen_tasks:
        if task_id not in keys:
            continue
        slice_id, given = found[task_id][0], found[task_id][1][: project.max_labels]
        stack = labels.votes(storage, given)
        scale = partial(crowd.near_vote_scale, stack, pixels.get(slice_id), prior)
        chosen = _rates_for(given, rates, priors, scale)
        posterior = _posterior(stack, given, chosen, prior)
        gold = gold_versions.read_mask(storage, keys[task_id])
        examples.append(outlines.GoldExample(posterior, stack.mean(axis=0), gold))
    return examples


def _latest_project_run(session: Session, project_id: int) -> FusionRun | None:
    return session.exec(
        select(FusionRun)
        .where(FusionRun.project_id == project_id, FusionRun.scope == FusionScope.project)
        .order_by(col(FusionRun.id).desc())
    ).first()


@dataclass(frozen=True)
class _Fusing:
    """What fusing a project's tasks one at a time shares: the project, its redundancy
    policy, the raters' priors and exclusions, and the rates, prior and method of the
    project run the tasks are fused with (the latest; defaults before the first)."""

    project: Project
    policy: RedundancyPolicy
    priors: dict[int, quality.RaterPrior]
    excluded: set[int]
    rates: dict[str, Any]
    prior: float
    method: str


def _fusing(session: Session, project: Project, source: FusionRun | None) -> _Fusing:
    priors, excluded = _priors(session, project.id or 0)
    return _Fusing(
        project=project,
        policy=policy_of(project),
        priors=priors,
        excluded=excluded,
        rates=dict(source.rater_rates) if source else {},
        prior=source.prior if source else DEFAULT_PRIOR,
        method=f"{METHOD}/{labels.outline_of(source).value}",
    )


def _task_run(session: Session, fusing: _Fusing, rates: dict[str, Any], slices: int) -> FusionRun:
    run = FusionRun(
        project_id=fusing.project.id or 0,
        scope=FusionScope.task,
        method=fusing.method,
        prior=fusing.prior,
        iterations=0,
        converged=True,
        slices=slices,
        rater_rates=rates,
        excluded=sorted(fusing.excluded),
        finished_at=utcnow(),
    )
    session.add(run)
    session.flush()
    return run


def _fuse_one(
    session: Session,
    storage: Storage,
    fusing: _Fusing,
    task: Task,
    found: tuple[int, list[Answer]] | None,
    latest: FusionResult | None,
) -> FusionResult | None:
    """Fuse one locked task's usable answers (``found``) with ``fusing``'s rates and settle it
    (``settle``); ``latest``: its newest version. Too few usable answers: a label newest so far
    is withdrawn (a new withdrawn version) and no label is made. Idempotent: when ``latest``
    already is what this would store, it is returned as it is. The task's newest version
    afterwards (None: it has none)."""
    assert task.id is not None
    given = [] if found is None else found[1]
    if len(given) < usable_minimum(fusing.project):
        if latest is not None and not latest.withdrawn:
            run = _task_run(session, fusing, {}, 0)
            latest = labels.withdraw(session, run, task.id, latest.version + 1, task.slice_id)
        settle(session, task, latest, fusing.policy, usable=len(given))
        return latest
    read: list[NDArray[np.bool_]] = []

    def stack_of() -> NDArray[np.bool_]:  # the masks are read once, and only when needed
        if not read:
            read.append(labels.votes(storage, given))
        return read[0]

    region = regions(session, [task.slice_id]).get(task.slice_id)
    chosen = _rates_for(
        given,
        fusing.rates,
        fusing.priors,
        lambda: crowd.near_vote_scale(stack_of(), region, fusing.prior),
    )
    if (
        latest is not None
        and not latest.withdrawn
        and latest.annotation_ids == [a.annotation_id for a in given]
    ):
        previous = session.get(FusionRun, latest.run_id)
        if (
            previous is not None
            and {r: previous.rater_rates.get(r) for r in chosen} == chosen
            and previous.prior == fusing.prior
            and previous.method == fusing.method
        ):
            settle(session, task, latest, fusing.policy)
            return latest
    stack = stack_of()
    posterior = _posterior(stack, given, chosen, fusing.prior)
    run = _task_run(session, fusing, chosen, 1)
    version = 1 if latest is None else latest.version + 1
    result = labels.store(
        session, storage, run, task.id, version, task.slice_id, given, posterior, stack
    )
    settle(session, task, result, fusing.policy)
    return result


def fuse_project(
    *,
    session: Session,
    storage: Storage,
    project_id: int,
    min_answers: int = MIN_ANSWERS,
    progress: Callable[[int, int], None] | None = None,
) -> FusionRun:
    """Fuse every crowd task of a project with at least ``min_answers`` usable volunteer
    answers, rates estimated jointly over all of them (gold priors; excluded raters left
    out); the project's gold slices, fused the same way, choose the outline rule
    (``outlines.choose_outline``); each task gets a new version of its fused label, and complete
    ones are settled (``settle``) with the new rates. A task left out whose newest label
    carries an excluded rater is fused alone with the new rates, or withdrawn."""
    priors, excluded = _priors(session, project_id)
    answers = {
        task_id: found
        for task_id, found in labels.answers(session, project_id, excluded).items()
        if len(found[1]) >= min_answers
    }
    pixels = regions(session, [slice_id for slice_id, _ in answers.values()])
    slices = [
        crowd.CrowdSlice([a.user_id for a in given], labels.votes(storage, given), pixels.get(s))
        for s, given in answers.values()
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
    outline, run.outline_scores = outlines.choose_outline(examples)
    run.method = f"{METHOD}/{outline.value}"
    session.add(run)
    session.flush()
    newest = labels.newest(session, project_id)  # one query, not one per task
    stale = [
        task_id
        for task_id, result in newest.items()
        if task_id not in answers and not result.withdrawn and excluded & set(result.raters)
    ]
    stored: dict[int, FusionResult] = {}
    for n, (task_id, (slice_id, given)) in enumerate(answers.items()):
        assert fused is not None
        version = newest[task_id].version + 1 if task_id in newest else 1
        stored[task_id] = labels.store(
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
    locked = locked_tasks(session, sorted([*answers, *stale]))
    for task_id in answers:
        settle(session, locked[task_id], stored[task_id], policy)
    if stale:
        fusing = _Fusing(project, policy, priors, excluded, run.rater_rates, run.prior, run.method)
        found = labels.answers(session, project_id, excluded, stale)
        for task_id in stale:
            task = locked[task_id]
            _fuse_one(session, storage, fusing, task, found.get(task_id), newest[task_id])
    run.finished_at = utcnow()
    session.add(run)
    session.flush()
    return run


def fuse_task(*, session: Session, storage: Storage, task_id: int) -> FusionResult | None:
    """Fuse one task's usable volunteer answers with the rates of its project's latest
    project-wide run (raters it has not seen: their gold record, else defaults), and, when
    the task is complete, apply adaptive redundancy (``settle``). Fewer usable answers than
    ``usable_minimum``: no label; a label newest so far is withdrawn. Idempotent: when the
    newest version fused the same answers with the same rates, it is returned as it is. The
    task's newest version afterwards (None: it has none)."""
    task = locked_tasks(session, [task_id]).get(task_id)
    if task is None:
        raise NotFound(f"Task {task_id} does not exist")
    project = session.get_one(Project, task.project_id)
    fusing = _fusing(session, project, _latest_project_run(session, task.project_id))
    found = labels.answers(session, task.project_id, fusing.excluded, [task_id])
    latest = next(iter(labels.results(session, task_id)), None)
    result = _fuse_one(session, storage, fusing, task, found.get(task_id), latest)
    session.flush()
    return result


def refuse_rater(
    *, session: Session, storage: Storage, project_id: int, user_id: int
) -> list[FusionResult]:
    """Re-fuse every crowd task of the project that the rater answered and that has a fused
    version, with the exclusions in force now (``refuse_tasks``): after an exclusion the
    newest version of each leaves the rater out (or is withdrawn when too few usable answers
    remain, the task collecting answers again); after a reinstatement it includes them again.
    Idempotent: a second call adds no version. Each such task's newest version afterwards."""
    return refuse_tasks(
        session=session,
        storage=storage,
        project_id=project_id,
        task_ids=labels.answered_by(session, project_id, user_id),
    )


def refuse_tasks(
    *, session: Session, storage: Storage, project_id: int, task_ids: list[int]
) -> list[FusionResult]:
    """Re-fuse the given crowd tasks of a project that have a fused version, with the
    answers and exclusions in force now (``fuse_task`` for each, in the caller's
    transaction); a complete task with no fused version and fewer answers than it needs
    (answers erased) collects answers again. Each re-fused task's newest version."""
    project = session.get(Project, project_id)
    if project is None:
        return []
    answered = locked_tasks(session, task_ids)
    newest = labels.newest(session, project_id, sorted(answered))  # read under the locks
    for task_id, task in answered.items():
        if task_id in newest or task.kind is not TaskKind.normal:
            continue
        if task.state is TaskState.complete and task.submitted_labels < task.required_labels:
            task.state = TaskState.open
            session.add(task)
    fusing = _fusing(session, project, _latest_project_run(session, project_id))
    found = labels.answers(session, project_id, fusing.excluded, sorted(newest))
    fused = []
    for task_id in sorted(newest):
        task, latest = answered[task_id], newest[task_id]
        result = _fuse_one(session, storage, fusing, task, found.get(task_id), latest)
        if result is not None:
            fused.append(result)
    session.flush()
    return fused


def completed_since_last_run(session: Session, project_id: int) -> int:
    """Crowd tasks of the project fused complete (a redundancy decision recorded) since its
    latest project-wide run: how stale its pooled rates are."""
    last = session.execute(
        sa_select(func.max(FusionRun.id)).where(
            col(FusionRun.project_id) == project_id, col(FusionRun.scope) == FusionScope.project
        )
    ).scalar_one()
    count = session.execute(
        sa_select(func.count(func.distinct(FusionResult.task_id)))
        .join(FusionRun, col(FusionRun.id) == col(FusionResult.run_id))
        .where(col(FusionRun.project_id) == project_id, col(FusionResult.run_id) > (last or 0))
        .where(col(FusionResult.decision).is_not(None))
    ).scalar_one()
    return int(count)


def stale_projects(session: Session, every: int) -> list[int]:
    """Projects with at least ``every`` crowd tasks fused complete since their latest project
    run (``completed_since_last_run``), in id order."""
    ids = session.exec(select(Project.id).order_by(col(Project.id))).all()
    return [p for p in ids if p is not None and completed_since_last_run(session, p) >= every]


def fuse_project_if_stale(
    *, session: Session, storage: Storage, project_id: int, every: int
) -> FusionRun | None:
    """``fuse_project`` when the project's pooled rates are stale (``every`` tasks fused
    complete since its latest run), else nothing (None). Runs of one project wait for each
    other (the project's row is locked), so a second request sent while the first ran finds
    the rates fresh and does nothing."""
    serialize_writers(session)
    held = session.exec(
        select(Project.id).where(Project.id == project_id).with_for_update(key_share=True)
    ).first()
    if held is None or completed_since_last_run(session, project_id) < every:
        return None
    return fuse_project(session=session, storage=storage, project_id=project_id)
