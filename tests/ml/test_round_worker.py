"""A real ML worker (``mscrowd worker --queues gpu --device cpu``) killed in the middle of a
round's training: the round stays at its stage, the half-trained version stays registered as
``training``; once the round's heartbeat is stale, ``rounds.resume_stalled`` sends the job
again, a new worker marks the orphan failed (interrupted), trains a fresh version and the
round goes on to scoring and closes. PostgreSQL and Redis, as in production."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TypeVar

import pytest
import redis
from sqlalchemy import update
from sqlmodel import Session, col, select

from backend.core.config import Settings, get_settings
from backend.core.db import transaction
from backend.core.timeutil import utcnow
from backend.imaging.models import Slice
from backend.quality import gold
from backend.quality.models import GoldSource
from backend.rounds import jobs as round_jobs
from backend.rounds import service as rounds
from backend.rounds.models import ModelStatus, ModelVersion, Round, RoundStatus
from backend.worker import create_celery, job_resources
from tests.ml.conftest import Setup

T = TypeVar("T")


@contextmanager
def ml_worker(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """A worker on the ``gpu`` queue in its own process group (SIGKILL reaches its pool)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSCROWD_")}
    env |= {
        "MSCROWD_DATABASE_URL": settings.database_url,
        "MSCROWD_BROKER_URL": settings.broker_url,
        "MSCROWD_DATA_DIR": str(settings.data_dir),
        "MSCROWD_STORAGE_URL": settings.storage_url,
    }
    command = [sys.executable, "-m", "backend", "worker", "--queues", "gpu", "--device", "cpu"]
    process = subprocess.Popen(
        [*command, "--loglevel", "WARNING"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 180) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what}: not after {timeout} s")


@pytest.mark.postgres
def test_a_worker_killed_mid_training_is_resumed_with_the_registry_intact(
    setup: Setup, redis_url: str, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("MSCROWD_BROKER_URL", redis_url)
    get_settings.cache_clear()
    job_resources.cache_clear()
    settings = get_settings()
    create_celery(settings).control.purge()
    # A job a killed worker left unacknowledged comes back after the visibility timeout (an
    # hour); one from an earlier run of this test must not meet this run's round ids.
    redis.Redis.from_url(redis_url).delete("unacked", "unacked_index")
    engine, storage = setup.engine, setup.storage
    with transaction(engine) as session:  # labels: four expert gold slices of the first case
        slices = session.exec(select(Slice).where(col(Slice.reference_pixels) > 0)).all()
        for slice_ in [s for s in slices if s.reference_key][:4]:
            mask = gold.read_mask(storage, slice_.reference_key or "")
            gold.set_gold(
                session=session,
                storage=storage,
                slice_id=slice_.id or 0,
                mask=mask.astype("uint8"),
                source=GoldSource.reference,
                expert_id=None,
            )
        started = rounds.start_round(
            session,
            storage,
            project_id=setup.project_id,
            strategy="random",
            budget=2,
            config="tiny",
            minutes=0.1,
        )
        rounds.close_labelling(session, started.id or 0, force=True)  # trains on gold
    round_id = started.id or 0

    def version(status: ModelStatus) -> ModelVersion | None:
        with Session(engine) as session:
            return session.exec(
                select(ModelVersion).where(
                    ModelVersion.round_id == round_id, ModelVersion.status == status
                )
            ).first()

    def the_round() -> Round:
        with Session(engine) as session:
            return session.get_one(Round, round_id)

    with ml_worker(settings) as first:
        round_jobs.fuse_round(round_id)  # in process; it sends ml.train_round to the worker
        wait_for("training under way", lambda: the_round().progress > 0 or None, 120)
        orphan = version(ModelStatus.training)
        assert orphan is not None
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=20)
    killed = the_round()
    assert killed.status is RoundStatus.training
    assert killed.job_token is not None  # still held by the dead job
    assert version(ModelStatus.training) == orphan

    with transaction(engine) as session:  # nothing resumes a round whose heartbeat is fresh
        assert rounds.stalled(session) == []
        session.execute(
            update(Round)
            .where(col(Round.id) == round_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=rounds.STALE_SECONDS + 1))
        )
    with ml_worker(settings):
        assert round_jobs.resume_stalled() == 1
        closed = wait_for(
            "the round closed", lambda: the_round() if the_round().status == "closed" else None
        )
    assert closed.error is None
    assert closed.scores_key is not None
    assert storage.exists(closed.scores_key)
    with Session(engine) as session:
        versions = session.exec(
            select(ModelVersion).where(ModelVersion.project_id == setup.project_id)
        ).all()
    # The registry: the orphan marked failed (interrupted), one good version, nothing else.
    assert len(versions) == 2
    failed = next(v for v in versions if v.id == orphan.id)
    assert failed.status is ModelStatus.failed
    assert failed.error is not None
    assert "interrupted" in failed.error
    assert failed.weights_key is None
    (good,) = [v for v in versions if v.id != orphan.id]
    assert good.status is ModelStatus.promoted
    assert good.weights_key is not None
    assert storage.exists(good.weights_key)
    assert closed.labels_used == 4
