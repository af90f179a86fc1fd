"""Fusing a project's or a task's volunteer answers and storing versioned results."""

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from backend.annotations.models import Annotation
from backend.core.db import on_rollback
from backend.core.errors import NotFound
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.fusion import crowd
from backend.fusion.models import FusionResult, FusionRun, FusionScope
from backend.fusion.redundancy import uncertainty
from backend.fusion.staple import posterior_from_rates
from backend.imaging.preprocess import encode_png
from backend.quality import service as quality
from backend.tasks.models import Assignment, Task, TaskKind

METHOD = "crowd_staple"
# Rates for a rater the project's latest run has not seen and gold has not scored.
DEFAULT_RATES = (0.8, 0.99)
DEFAULT_PRIOR = 0.02


@dataclass(frozen=True)
class Answer:
    annotation_id: int
    user_id: int
    mask_key: str


def _answers(
    session: Session, project_id: int, excluded: set[int], task_ids: list[int] | None = None
) -> dict[int, tuple[int, list[Answer]]]:
    """Volunteers' answers to the project's crowd tasks, by task: (slice id, answers); experts'
    answers and those of excluded (suspended) raters are left out."""
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
        .where(col(Task.project_id) == project_id, col(Task.kind) == TaskKind.normal)
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
    marked: NDArray[np.bool_],
) -> FusionResult:
    """Version ``version`` of the task's fused label."""
    key = f"fusion/{task_id}/v{version}.png"
    storage.put(key, soft_png(posterior))
    on_rollback(session, lambda: storage.delete(key))
    result = FusionResult(
        run_id=run.id or 0,
        task_id=task_id,
        slice_id=slice_id,
        version=version,
        soft_key=key,
        hard_pixels=int(np.count_nonzero(posterior >= 0.5)),
        annotation_ids=[a.annotation_id for a in answers],
        raters=[a.user_id for a in answers],
        uncertainty=uncertainty(posterior, marked),
    )
    session.add(result)
    return result


def _priors(session: Session, project_id: int) -> tuple[dict[int, quality.RaterPrior], set[int]]:
    """The raters' Beta priors from their gold record, and who is suspended."""
    priors = quality.rater_priors(session, project_id)
    return priors, {user_id for user_id, prior in priors.items() if prior.excluded}


def fuse_project(
    *,
    session: Session,
    storage: Storage,
    project_id: int,
    min_answers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> FusionRun:
    """Fuse every crowd task of a project with at least ``min_answers`` volunteer answers,
    rates estimated jointly over all of them (gold priors; suspended raters left out); each
    task gets a new version of its fused label."""
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
    session.add(run)
    session.flush()
    last = _last_versions(session, project_id)  # one query, not one per task
    for n, (task_id, (slice_id, given)) in enumerate(answers.items()):
        assert fused is not None
        marked = _marked(slices[n].votes)
        version = last.get(task_id, 0) + 1
        _store(session, storage, run, task_id, version, slice_id, given, fused.posterior(n), marked)
        if progress is not None:
            progress(n + 1, len(answers))
    run.finished_at = utcnow()
    session.add(run)
    session.flush()
    return run


def fuse_task(*, session: Session, storage: Storage, task_id: int) -> FusionResult | None:
    """Fuse one task's volunteer answers with the rates of its project's latest project-wide
    run (raters it has not seen: their gold record, else defaults). Idempotent: when the
    latest version fused the same answers with the same rates, it is returned as it is.
    None when the task has no volunteer answer."""
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound(f"Task {task_id} does not exist")
    priors, excluded = _priors(session, task.project_id)
    found = _answers(session, task.project_id, excluded, [task_id]).get(task_id)
    if found is None:
        return None
    slice_id, given = found
    source = session.exec(
        select(FusionRun)
        .where(FusionRun.project_id == task.project_id, FusionRun.scope == FusionScope.project)
        .order_by(col(FusionRun.id).desc())
    ).first()
    rates: dict[str, Any] = dict(source.rater_rates) if source else {}
    prior = source.prior if source else DEFAULT_PRIOR
    chosen = {}
    for a in given:
        if str(a.user_id) in rates:
            chosen[str(a.user_id)] = rates[str(a.user_id)]
        elif a.user_id in priors:
            prior_of = priors[a.user_id]
            chosen[str(a.user_id)] = [prior_of.sensitivity.mean, prior_of.specificity.mean]
        else:
            chosen[str(a.user_id)] = list(DEFAULT_RATES)
    latest = next(iter(results(session, task_id)), None)
    if latest is not None and latest.annotation_ids == [a.annotation_id for a in given]:
        previous = session.get(FusionRun, latest.run_id)
        if previous is not None and previous.rater_rates == chosen and previous.prior == prior:
            return latest
    votes = _votes(storage, given)
    posterior = posterior_from_rates(
        votes,
        [chosen[str(a.user_id)][0] for a in given],
        [chosen[str(a.user_id)][1] for a in given],
        prior,
    )
    run = FusionRun(
        project_id=task.project_id,
        scope=FusionScope.task,
        method=METHOD,
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
    marked = _marked(votes)
    version = 1 if latest is None else latest.version + 1
    result = _store(session, storage, run, task_id, version, slice_id, given, posterior, marked)
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
