"""The rounds' backend jobs: ``rounds.fuse_round`` (the fusing stage) and
``rounds.resume_stalled`` (beat: re-send the jobs of rounds whose worker died). Training and
scoring are the ML worker's (``ml.train_round``, ``ml.score_pool``), sent by name."""

import logging

from backend.core.db import transaction
from backend.fusion import service as fusion
from backend.rounds import FUSE_ROUND, RESUME_STALLED, service
from backend.rounds.models import RoundStatus
from backend.worker import celery_app, job_resources

log = logging.getLogger(__name__)


def fuse_round(round_id: int) -> str:
    """Fuse the round's project and hand the round to training; what happened, in words
    (a no-op when the round is not fusing or another live job holds it)."""
    engine, storage, relay = job_resources()
    with transaction(engine) as session:
        token = service.claim(session, round_id, RoundStatus.fusing)
    if token is None:
        return "nothing to do"
    try:
        with transaction(engine, relay) as session:
            round_ = service.get_round(session, round_id)
            run = fusion.fuse_project(
                session=session, storage=storage, project_id=round_.project_id
            )
            service.finish_stage(
                session, round_id, token, f"fused {run.slices} slice(s); waiting for training"
            )
    except service.LostRound:
        return "taken over by another job"
    except Exception as exc:
        with transaction(engine) as session:
            service.fail_stage(session, round_id, token, f"fusion failed: {exc}")
        raise
    return f"fused {run.slices} slice(s)"


def resume_stalled() -> int:
    """Re-send the stage job of every round whose job stopped reporting; how many."""
    engine, _storage, relay = job_resources()
    with transaction(engine, relay) as session:
        stalled = service.stalled(session)
        for round_ in stalled:
            assert round_.id is not None
            log.warning("round %s: %s job stalled, sent again", round_.id, round_.status.value)
            service.resume(session, round_.id)
    return len(stalled)


fuse_round_job = celery_app.task(name=FUSE_ROUND)(fuse_round)
resume_stalled_job = celery_app.task(name=RESUME_STALLED)(resume_stalled)
