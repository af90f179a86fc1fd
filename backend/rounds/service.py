"""Rounds: starting one (choosing its slices and setting the queue's priorities), closing its
labelling, the hand-over between the stage jobs, their progress and their recovery.

The stage jobs (``rounds.fuse_round``, ``ml.train_round``, ``ml.score_pool``) *claim* the
round before working: in one transaction they check that the round is at their stage and
that no other job holds it (a heartbeat younger than ``STALE_SECONDS``), and write their
token and a heartbeat. A second delivery of the same job while the first runs finds the
round held and returns; a delivery after the holder's worker died finds the heartbeat stale
and takes over. Progress reports carry the token, so a job that lost its round stops. A
job that finishes moves the round to the next stage and defers the next job (outbox) in
the same transaction, so a stage is never half-finished: either the next one is queued or
the round is still where it was. ``rounds.resume_stalled`` (beat) re-sends the jobs of
stalled rounds; ``resume`` does it on request after an error.
"""

import io
import uuid
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import update
from sqlmodel import Session, col, select

from backend.core.errors import Conflict, InvalidInput, NotFound
from backend.core.outbox import defer
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.imaging.models import Case, Slice
from backend.projects.models import Project
from backend.rounds import FUSE_ROUND, SCORE_POOL, TRAIN_ROUND
from backend.rounds.models import JOB_STAGES, ModelStatus, ModelVersion, Round, RoundStatus
from backend.tasks.models import Task, TaskKind, TaskState
from ml import selection

# A job's heartbeat older than this: its worker is gone and another may take the round over.
STALE_SECONDS = 120.0
# Stage -> the job that runs it.
STAGE_JOBS = {
    RoundStatus.fusing: FUSE_ROUND,
    RoundStatus.training: TRAIN_ROUND,
    RoundStatus.scoring: SCORE_POOL,
}
# Strategies that need a model's scores; without them a round starts cold.
SCORED = frozenset({"entropy", "bald", "bald_diverse"})
# The queue order of a task no round has chosen is its brain share (0..1, as imported); a
# round's chosen tasks come first, at 1 + (1 .. 0).
CHOSEN_BASE = 1.0


def _project(session: Session, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"Project {project_id} does not exist")
    return project


def get_round(session: Session, round_id: int, *, lock: bool = False) -> Round:
    query = select(Round).where(Round.id == round_id)
    found = session.exec(query.with_for_update() if lock else query).first()
    if found is None:
        raise NotFound(f"Round {round_id} does not exist")
    return found


def rounds_of(session: Session, project_id: int) -> list[Round]:
    _project(session, project_id)
    return list(
        session.exec(
            select(Round).where(Round.project_id == project_id).order_by(col(Round.number))
        )
    )


def model_of(session: Session, round_: Round) -> ModelVersion | None:
    """The round's trained model (ready or promoted), if it has one yet."""
    return session.exec(
        select(ModelVersion)
        .where(
            ModelVersion.round_id == round_.id,
            col(ModelVersion.status).in_([ModelStatus.ready, ModelStatus.promoted]),
        )
        .order_by(col(ModelVersion.id).desc())
    ).first()


# -- the pool and the selection ---------------------------------------------------------


@dataclass(frozen=True)
class PoolRow:
    slice_id: int
    task_id: int
    case_id: int
    case_public_id: str
    index: int
    box: tuple[int, int, int, int]  # the slice's crop: x0, y0, x1, y1 (what volunteers see)
    candidate_fraction: float | None
    brain_fraction: float


def pool_rows(session: Session, project: Project) -> list[PoolRow]:
    """The unlabelled pool: slices whose crowd task is still open, of cases not held out."""
    rows = session.exec(
        select(Slice, Task.id, Case.public_id)
        .join(Task, col(Task.slice_id) == col(Slice.id))
        .join(Case, col(Case.id) == col(Slice.case_id))
        .where(
            Task.project_id == project.id,
            Task.kind == TaskKind.normal,
            Task.state == TaskState.open,
        )
        .order_by(col(Slice.id))
    ).all()
    held = set(project.holdout_cases)
    return [
        PoolRow(
            slice_id=s.id or 0,
            task_id=task_id or 0,
            case_id=s.case_id,
            case_public_id=public_id,
            index=s.index,
            box=(s.crop_x0, s.crop_y0, s.crop_x1, s.crop_y1),
            candidate_fraction=s.candidate_fraction,
            brain_fraction=s.brain_fraction,
        )
        for s, task_id, public_id in rows
        if public_id not in held
    ]


SCORE_NAMES = ("entropy", "bald", "count_variance")


def encode_scores(ids: NDArray[np.int64], scores: dict[str, NDArray[np.float64]]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, ids=ids, **scores)  # type: ignore[arg-type]
    return buffer.getvalue()


def decode_scores(data: bytes) -> tuple[NDArray[np.int64], dict[str, NDArray[np.float64]]]:
    with np.load(io.BytesIO(data)) as stored:
        return stored["ids"], {n: stored[n] for n in SCORE_NAMES if n in stored}


def build_pool(
    rows: list[PoolRow], scored: tuple[NDArray[np.int64], dict[str, NDArray[np.float64]]] | None
) -> selection.Pool:
    """The pool for ``ml.selection``; a slice the scores do not cover (imported after them)
    scores 0, and a slice without a measured candidate share gets the pool's mean."""
    known = [r.candidate_fraction for r in rows if r.candidate_fraction is not None]
    mean = float(np.mean(known)) if known else 0.0
    ids = np.array([r.slice_id for r in rows], dtype=np.int64)
    scores: dict[str, NDArray[np.float64]] = {}
    if scored is not None:
        scored_ids, values = scored
        position = {int(s): n for n, s in enumerate(scored_ids)}
        at = np.array([position.get(int(i), -1) for i in ids], dtype=np.int64)
        for name, column in values.items():
            padded = np.append(np.asarray(column, dtype=np.float64), 0.0)  # [-1] -> 0
            scores[name] = padded[at]
    return selection.Pool(
        ids=ids,
        cases=np.array([r.case_id for r in rows], dtype=np.int64),
        indices=np.array([r.index for r in rows], dtype=np.int64),
        foreground=np.array(
            [mean if r.candidate_fraction is None else r.candidate_fraction for r in rows],
            dtype=np.float64,
        ),
        scores=scores,
    )


def apply_priorities(session: Session, project: Project, chosen: list[int]) -> None:
    """Put the chosen slices' open tasks first in the queue, in order; every other open crowd
    task of the project goes back to its import priority (its brain share)."""
    now_chosen = selection.priorities(chosen, base=CHOSEN_BASE)
    tasks = session.exec(
        select(Task, Slice.brain_fraction)
        .join(Slice, col(Slice.id) == col(Task.slice_id))
        .where(
            Task.project_id == project.id,
            Task.kind == TaskKind.normal,
            Task.state == TaskState.open,
        )
        .with_for_update(of=Task)
    ).all()
    for task, brain_fraction in tasks:
        wanted = now_chosen.get(task.slice_id, brain_fraction)
        if task.priority != wanted:
            task.priority = wanted
            session.add(task)


def _latest_scores(
    session: Session, storage: Storage, project_id: int
) -> tuple[NDArray[np.int64], dict[str, NDArray[np.float64]]] | None:
    key = session.exec(
        select(Round.scores_key)
        .where(Round.project_id == project_id, col(Round.scores_key).is_not(None))
        .order_by(col(Round.number).desc())
    ).first()
    return None if key is None else decode_scores(storage.get(key))


# -- the round's life ------------------------------------------------------------------


def start_round(
    session: Session,
    storage: Storage,
    *,
    project_id: int,
    strategy: str,
    budget: int,
    config: str | None = None,
    minutes: float | None = None,
    seed: int | None = None,
) -> Round:
    """Open the project's next round, choose its ``budget`` slices with ``strategy`` (on the
    newest pool scores; ``cold_start`` when a scored strategy has none yet) and put them
    first in the queue; the round is then ``labelling``."""
    project = session.exec(
        select(Project).where(Project.id == project_id).with_for_update()
    ).first()
    if project is None:
        raise NotFound(f"Project {project_id} does not exist")
    if strategy not in selection.STRATEGIES:
        known = ", ".join(sorted(selection.STRATEGIES))
        raise InvalidInput(f"Unknown strategy {strategy!r}; known: {known}")
    if budget < 1:
        raise InvalidInput("The budget is at least one slice")
    running = session.exec(
        select(Round).where(Round.project_id == project_id, Round.status != RoundStatus.closed)
    ).first()
    if running is not None:
        raise Conflict(
            f"Round {running.number} of this project is still {running.status.value}; "
            "close it first"
        )
    rows = pool_rows(session, project)
    if not rows:
        raise Conflict("The project has no unlabelled slice left to choose from")
    previous = session.exec(
        select(Round.number)
        .where(Round.project_id == project_id)
        .order_by(col(Round.number).desc())
    ).first()
    number = (previous or 0) + 1
    scored = _latest_scores(session, storage, project_id) if strategy in SCORED else None
    used = strategy if strategy not in SCORED or scored is not None else "cold_start"
    pool = build_pool(rows, scored)
    round_seed = number if seed is None else seed
    chosen = selection.select(used, pool, budget, seed=round_seed)
    round_ = Round(
        project_id=project_id,
        number=number,
        status=RoundStatus.labelling,
        strategy=strategy,
        selected_by=used,
        budget=budget,
        seed=round_seed,
        config=config,
        minutes=minutes,
        selected=chosen,
        detail=f"{len(chosen)} slices chosen by {used}",
    )
    session.add(round_)
    apply_priorities(session, project, chosen)
    session.flush()
    return round_


def progress_of_labelling(session: Session, round_: Round) -> tuple[int, int]:
    """(chosen slices whose crowd task is done, chosen slices)."""
    if not round_.selected:
        return 0, 0
    done = session.exec(
        select(Task.id).where(
            col(Task.slice_id).in_(round_.selected),
            Task.kind == TaskKind.normal,
            Task.state != TaskState.open,
        )
    ).all()
    return len(done), len(round_.selected)


def close_labelling(session: Session, round_id: int) -> Round:
    """End the round's labelling: fuse, then train, then score (jobs, in that order)."""
    round_ = get_round(session, round_id, lock=True)
    if round_.status is not RoundStatus.labelling:
        raise Conflict(f"Round {round_.number} is {round_.status.value}, not labelling")
    _enter(session, round_, RoundStatus.fusing, "waiting for the fusion worker")
    return round_


def _enter(session: Session, round_: Round, stage: RoundStatus, detail: str) -> None:
    """Move the round to ``stage`` and queue its job (sent after the commit)."""
    round_.status = stage
    round_.progress, round_.eta_seconds, round_.detail = 0.0, None, detail
    round_.job_token, round_.heartbeat_at, round_.error = None, None, None
    round_.updated_at = utcnow()
    if stage is RoundStatus.closed:
        round_.progress, round_.closed_at = 100.0, utcnow()
    session.add(round_)
    if stage in STAGE_JOBS:
        assert round_.id is not None
        defer(session, STAGE_JOBS[stage], round_.id)


def resume(session: Session, round_id: int) -> Round:
    """Send the job of the round's stage again (after an error, or when its worker died)."""
    round_ = get_round(session, round_id, lock=True)
    if round_.status not in JOB_STAGES:
        raise Conflict(f"Round {round_.number} is {round_.status.value}: no job to resume")
    if round_.error is None and not _stale(round_):
        raise Conflict(f"Round {round_.number}'s {round_.status.value} job is running")
    _enter(session, round_, round_.status, "resumed")
    return round_


def _stale(round_: Round) -> bool:
    last = round_.heartbeat_at or round_.updated_at
    return utcnow() - last > timedelta(seconds=STALE_SECONDS)


def stalled(session: Session) -> list[Round]:
    """Rounds at a job stage whose job has not reported for ``STALE_SECONDS`` (and did not
    fail: a failure waits for ``resume``)."""
    waiting = session.exec(
        select(Round).where(col(Round.status).in_(JOB_STAGES), col(Round.error).is_(None))
    ).all()
    return [r for r in waiting if _stale(r)]


# -- what the stage jobs call ----------------------------------------------------------


def claim(session: Session, round_id: int, stage: RoundStatus) -> str | None:
    """Hold the round for a ``stage`` job: a token, or None when the round is not at that
    stage (the job already ran) or another live job holds it."""
    round_ = session.exec(select(Round).where(Round.id == round_id).with_for_update()).first()
    if round_ is None or round_.status is not stage:
        return None
    if round_.job_token is not None and not _stale(round_):
        return None
    token = uuid.uuid4().hex
    round_.job_token, round_.heartbeat_at, round_.error = token, utcnow(), None
    round_.progress, round_.eta_seconds = 0.0, None
    round_.detail = f"{stage.value} started"
    session.add(round_)
    return token


class LostRound(Exception):
    """The job's round was taken over by another job (this one's heartbeat went stale)."""


def report(
    session: Session,
    round_id: int,
    token: str,
    percent: float,
    eta_seconds: float | None,
    detail: str,
) -> None:
    """A job's progress and heartbeat; raises ``LostRound`` when the job no longer holds it."""
    done = session.execute(
        update(Round)
        .where(col(Round.id) == round_id, col(Round.job_token) == token)
        .values(
            progress=float(min(max(percent, 0.0), 100.0)),
            eta_seconds=eta_seconds,
            detail=detail[:300],
            heartbeat_at=utcnow(),
        )
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise LostRound(f"round {round_id} is held by another job now")


def held(session: Session, round_id: int, token: str) -> Round:
    """The round, locked, if the job still holds it (else ``LostRound``)."""
    round_ = get_round(session, round_id, lock=True)
    if round_.job_token != token:
        raise LostRound(f"round {round_id} is held by another job now")
    return round_


def finish_stage(session: Session, round_id: int, token: str, detail: str) -> Round:
    """The holding job is done: move the round to its next stage (and queue that job)."""
    round_ = held(session, round_id, token)
    order = list(RoundStatus)
    _enter(session, round_, order[order.index(round_.status) + 1], detail)
    return round_


def fail_stage(session: Session, round_id: int, token: str, error: str) -> None:
    """The holding job failed: the round stays at its stage with the error, to resume."""
    round_ = session.exec(select(Round).where(Round.id == round_id).with_for_update()).first()
    if round_ is None or round_.job_token != token:
        return
    round_.error, round_.job_token, round_.heartbeat_at = error[:2000], None, None
    round_.detail = f"{round_.status.value} failed"
    round_.updated_at = utcnow()
    session.add(round_)


# -- the learning curve ----------------------------------------------------------------


@dataclass(frozen=True)
class CurvePoint:
    round: int
    labels_used: int
    dice: float | None
    lesion_f1: float | None
    model_version_id: int


def learning_curve(session: Session, project_id: int) -> list[CurvePoint]:
    """Per round with a trained model: the labelled slices it used and its held-out Dice and
    lesion-wise F1 (None when the project holds no case out)."""
    points = []
    for round_ in rounds_of(session, project_id):
        model = model_of(session, round_)
        if model is None or model.id is None or round_.labels_used is None:
            continue
        points.append(
            CurvePoint(
                round=round_.number,
                labels_used=round_.labels_used,
                dice=model.metrics.get("dice"),
                lesion_f1=model.metrics.get("lesion_f1"),
                model_version_id=model.id,
            )
        )
    return points
