"""The Celery app: queues ``default`` (backend jobs) and ``gpu`` (ML jobs, sent by name).

The backend never imports torch: ML work is sent with ``send_task("ml.<verb>", ...)`` and runs
in a worker started on the ``gpu`` queue from the ``ml`` package. The embedded default uses a
SQLite-backed broker that needs no server; production uses Redis.
"""

from functools import cache
from typing import TYPE_CHECKING

from celery import Celery
from kombu import Queue  # type: ignore[attr-defined]

from backend.core.config import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from backend.core.outbox import Relay
    from backend.core.storage import Storage

QUEUES = ("default", "gpu")
# How often a worker started with --beat relays the outbox and looks for stalled rounds.
OUTBOX_RELAY_SECONDS = 30.0
RESUME_ROUNDS_SECONDS = 60.0
# How often it looks for projects whose pooled fusion rates are stale.
REFRESH_RATES_SECONDS = 300.0
# How often it deletes the login and sign-up throttle rows that no longer count.
PRUNE_THROTTLE_SECONDS = 3600.0
# Modules whose jobs the backend worker runs; a worker consuming ``gpu`` adds ``ml.jobs``.
BACKEND_JOBS = [
    "backend.fusion.jobs",
    "backend.gamification.jobs",
    "backend.quality.jobs",
    "backend.releases.jobs",
    "backend.rounds.jobs",
]
ML_JOBS = "ml.jobs"


def create_celery(settings: Settings) -> Celery:
    """A Celery app configured from ``settings``."""
    if settings.broker_is_embedded:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = Celery("mscrowd", broker=settings.broker_url, backend=settings.result_backend)
    app.conf.update(
        task_queues=[Queue(name) for name in QUEUES],  # type: ignore[no-untyped-call]
        task_default_queue="default",
        # Jobs are named domain.verb; everything under ml.* needs the GPU worker.
        task_routes={"ml.*": {"queue": "gpu"}},
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A job is acknowledged when done, so a worker killed mid-job hands it to another.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        result_expires=24 * 3600,
        # Modules whose jobs a worker runs (imported when the worker starts).
        include=list(BACKEND_JOBS),
        # With --beat: send the outbox rows their committing process did not (core.outbox),
        # re-send the jobs of rounds whose worker died (rounds.service), delete the
        # throttle rows that no longer count (auth.throttle.prune), and refit the pooled
        # fusion rates of projects where they are stale (fusion.jobs.refresh_rates).
        beat_schedule={
            "relay-outbox": {"task": "system.relay_outbox", "schedule": OUTBOX_RELAY_SECONDS},
            "resume-rounds": {
                "task": "rounds.resume_stalled",
                "schedule": RESUME_ROUNDS_SECONDS,
            },
            "prune-throttle": {
                "task": "system.prune_throttle",
                "schedule": PRUNE_THROTTLE_SECONDS,
            },
            "refresh-fusion-rates": {
                "task": "fusion.refresh_rates",
                "schedule": REFRESH_RATES_SECONDS,
            },
        },
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
    )
    return app


celery_app = create_celery(get_settings())


@cache
def job_resources() -> "tuple[Engine, Storage, Relay]":
    """The database engine, storage and outbox relay a worker process's jobs share (jobs
    commit their own transactions and relay the jobs they defer right after)."""
    from backend.audit import service as audit
    from backend.core.db import create_db_engine
    from backend.core.outbox import Relay, celery_sender
    from backend.core.storage import Storage

    audit.install()  # rater actions in jobs leave their audit entry too
    settings = get_settings()
    engine = create_db_engine(settings.database_url)
    return engine, Storage(settings.storage_url), Relay(engine, celery_sender(settings))


@celery_app.task(name="system.ping")  # type: ignore[untyped-decorator]
def ping() -> str:
    """Round-trip check for health probes and tests."""
    return "pong"


@celery_app.task(name="system.relay_outbox")  # type: ignore[untyped-decorator]
def relay_outbox() -> int:
    """Send the outbox rows older than ``outbox.RELAY_AFTER``; the number sent."""
    from backend.core.db import create_db_engine
    from backend.core.outbox import Relay

    settings = get_settings()
    engine = create_db_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        return Relay(engine, lambda name, args: celery_app.send_task(name, args=args)).relay()
    finally:
        engine.dispose()


@celery_app.task(name="system.prune_throttle")  # type: ignore[untyped-decorator]
def prune_throttle() -> int:
    """Delete the auth throttle rows that no longer count (``throttle.prune``); how many."""
    from backend.auth import throttle
    from backend.core.db import create_db_engine, transaction
    from backend.core.timeutil import utcnow

    settings = get_settings()
    engine = create_db_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        with transaction(engine) as session:
            return throttle.prune(session, throttle.Policy.from_settings(settings), utcnow())
    finally:
        engine.dispose()
