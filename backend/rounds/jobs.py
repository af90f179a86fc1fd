"""The rounds' backend jobs: ``rounds.fuse_round`` (the fusing stage) and
``rounds.resume_stalled`` (beat: re-send the jobs of rounds whose worker died), and what
every stage job shares (``run_stage``, ``Reporter``; the ML worker's ``ml.train_round`` and
``ml.score_pool`` use them too)."""

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from backend.core.db import transaction
from backend.fusion import service as fusion
from backend.rounds import FUSE_ROUND, RESUME_STALLED
from backend.rounds import service as rounds
from backend.rounds.models import Round, RoundStatus
from backend.worker import celery_app, job_resources

log = logging.getLogger(__name__)


class Reporter:
    """A stage job's progress: written to the round at most every ``every`` seconds (and
    always at 100 %); raises ``rounds.LostRound`` when another job took the round over."""

    def __init__(self, engine: Engine, round_id: int, token: str, every: float = 2.0) -> None:
        self.engine, self.round_id, self.token, self.every = engine, round_id, token, every
        self.last = -math.inf

    def __call__(self, percent: float, eta_seconds: float | None, detail: str) -> None:
        now = time.monotonic()
        if now - self.last < self.every and percent < 100.0:
            return
        self.last = now
        with transaction(self.engine) as session:
            rounds.report(session, self.round_id, self.token, percent, eta_seconds, detail)


def run_stage(
    round_id: int, stage: RoundStatus, work: Callable[[Round, Reporter], tuple[str, Any]]
) -> str:
    """Claim the round for ``stage``, run ``work(round, reporter)`` -> (detail, finish), then
    ``finish(session, round)`` and the move to the next stage in one transaction; a failure
    is recorded on the round (to resume) and raised."""
    engine, _storage, relay = job_resources()
    with transaction(engine) as session:
        token = rounds.claim(session, round_id, stage)
    if token is None:
        return "nothing to do"
    reporter = Reporter(engine, round_id, token)
    try:
        with Session(engine) as session:
            round_ = rounds.get_round(session, round_id)
        detail, finish = work(round_, reporter)
        with transaction(engine, relay) as session:
            held = rounds.held(session, round_id, token)
            finish(session, held)
            rounds.finish_stage(session, round_id, token, detail)
    except rounds.LostRound:
        return "taken over by another job"
    except Exception as exc:
        with transaction(engine) as session:
            rounds.fail_stage(session, round_id, token, f"{stage.value} failed: {exc}")
        raise
    return detail


def fuse_round(round_id: int) -> str:
    """Fuse the round's project and hand the round to training; what happened, in words
    (a no-op when the round is not fusing or another live job holds it)."""

    def work(round_: Round, _report: Reporter) -> tuple[str, Any]:
        engine, storage, _relay = job_resources()
        with transaction(engine) as session:
            run = fusion.fuse_project(
                session=session, storage=storage, project_id=round_.project_id
            )
        return f"fused {run.slices} slice(s); waiting for training", lambda *_: None

    return run_stage(round_id, RoundStatus.fusing, work)


def resume_stalled() -> int:
    """Re-send the stage job of every round whose job stopped reporting; how many."""
    engine, _storage, relay = job_resources()
    with transaction(engine, relay) as session:
        stalled = rounds.stalled(session)
        for round_ in stalled:
            assert round_.id is not None
            log.warning("round %s: %s job stalled, sent again", round_.id, round_.status.value)
            rounds.resume(session, round_.id)
    return len(stalled)


fuse_round_job = celery_app.task(name=FUSE_ROUND)(fuse_round)
resume_stalled_job = celery_app.task(name=RESUME_STALLED)(resume_stalled)
