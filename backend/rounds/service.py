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

import math
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from backend.core.db import serialize_writers
from backend.core.errors import Conflict, InvalidInput, NotFound
from backend.core.outbox import defer
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.fusion.models import FusionResult
from backend.imaging.models import Case, Slice
from backend.projects.models import Project
from backend.quality.models import GoldVersion
from backend.rounds import FUSE_ROUND, SCORE_POOL, TRAIN_ROUND, selection
from backend.rounds.models import JOB_STAGES, ModelStatus, ModelVersion, Round, RoundStatus
from backend.rounds.pool import apply_priorities, build_pool, latest_scores, pool_rows
from backend.tasks.models import Task, TaskKind, TaskState

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
    scored = latest_scores(session, storage, project_id) if strategy in SCORED else None
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


# Closing a round whose labelled share of its chosen slices is below this needs ``force``:
# its model would learn mostly from labels the round did not choose, and the learning curve
# would credit the round (and its strategy) with them.
CLOSE_SHARE = 0.5


class TooFewLabelled(Conflict):
    """Too few of the round's chosen slices are labelled to close it without ``force``."""


class RoundNotLabelling(Conflict):
    """The round's labelling is not open (already closed, or the round is past it)."""


@dataclass(frozen=True)
class Labelling:
    """What a round's model learns from: the round's chosen slices, how many of them are
    labelled and how many must be to close without ``force``; the project's labelled slices
    the model trains on (before training: would, were the round closed now; None when not
    known) and how many of those the round chose."""

    chosen: int
    labelled: int
    needed: int
    training: int | None
    training_chosen: int | None


def needed_to_close(chosen: int) -> int:
    """Labelled chosen slices a round of ``chosen`` slices needs to close without force."""
    return math.ceil(CLOSE_SHARE * chosen)


def training_slices(session: Session, project: Project) -> set[int]:
    """The slices a model trained now would learn from: those of complete crowd tasks (the
    fusing stage turns their answers into labels) and current gold, of cases not held out."""
    held = select(Case.id).where(
        Case.project_id == project.id, col(Case.public_id).in_(list(project.holdout_cases))
    )
    crowd = session.exec(
        select(Task.slice_id)
        .join(Slice, col(Slice.id) == col(Task.slice_id))
        .where(
            Task.project_id == project.id,
            Task.kind == TaskKind.normal,
            Task.state == TaskState.complete,
            col(Slice.case_id).not_in(held),
        )
    ).all()
    gold = session.exec(
        select(GoldVersion.slice_id)
        .join(Slice, col(Slice.id) == col(GoldVersion.slice_id))
        .join(Case, col(Case.id) == col(Slice.case_id))
        .where(
            Case.project_id == project.id,
            col(GoldVersion.retired_at).is_(None),
            col(Slice.case_id).not_in(held),
        )
    ).all()
    return {*crowd, *gold}


def labelling_of(session: Session, round_: Round) -> Labelling:
    """The round's ``Labelling``: from its model's snapshot once trained, else live."""
    labelled, chosen = progress_of_labelling(session, round_)
    model = model_of(session, round_)
    training: int | None
    training_chosen: int | None
    if model is not None:
        # The fused versions it trained on (``ml.jobs.train_version``'s snapshot).
        used = model.snapshot.get("fused_results")
        training = round_.labels_used
        training_chosen = None
        if used is not None:
            of_round = session.exec(
                select(FusionResult.slice_id).where(
                    col(FusionResult.id).in_(used),
                    col(FusionResult.slice_id).in_(round_.selected),
                )
            ).all()
            training_chosen = len(set(of_round))
    elif round_.status is RoundStatus.closed:
        training, training_chosen = round_.labels_used, None
    else:
        slices = training_slices(session, _project(session, round_.project_id))
        training, training_chosen = len(slices), len(slices & set(round_.selected))
    return Labelling(chosen, labelled, needed_to_close(chosen), training, training_chosen)


def close_labelling(session: Session, round_id: int, *, force: bool = False) -> Round:
    """End the round's labelling: fuse, then train, then score (jobs, in that order).
    Below ``CLOSE_SHARE`` of its chosen slices labelled it is refused (``TooFewLabelled``)
    unless ``force``. Two closes at once: one closes, the other finds it closed (on SQLite,
    whose ``FOR UPDATE`` is a no-op, through the database write lock taken first)."""
    serialize_writers(session)
    round_ = get_round(session, round_id, lock=True)
    if round_.status is not RoundStatus.labelling:
        raise RoundNotLabelling(f"Round {round_.number} is {round_.status.value}, not labelling")
    now = labelling_of(session, round_)
    early = now.labelled < now.needed
    if early and not force:
        raise TooFewLabelled(
            f"Only {now.labelled} of round {round_.number}'s {now.chosen} chosen slices are "
            f"labelled; closing needs {now.needed} ({CLOSE_SHARE:.0%}). Its model would train "
            f"on about {now.training} labelled slices, {now.training_chosen} of them chosen "
            "by this round. Close it with force to train anyway."
        )
    detail = "waiting for the fusion worker"
    if early:
        detail += f" (closed with {now.labelled} of {now.chosen} chosen slices labelled)"
    _enter(session, round_, RoundStatus.fusing, detail)
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
