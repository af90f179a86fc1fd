"""The Celery app: queues ``default`` (backend jobs) and ``gpu`` (ML jobs, sent by name).

The backend never imports torch: ML work is sent with ``send_task("ml.<verb>", ...)`` and runs
in a worker started on the ``gpu`` queue from the ``ml`` package. The embedded default uses a
SQLite-backed broker that needs no server; production uses Redis.
"""

from celery import Celery
from kombu import Queue  # type: ignore[attr-defined]

from backend.core.config import Settings, get_settings

QUEUES = ("default", "gpu")
# How often a worker started with --beat relays the outbox.
OUTBOX_RELAY_SECONDS = 30.0


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
        include=["backend.fusion.jobs"],
        # With --beat: send the outbox rows their committing process did not (core.outbox).
        beat_schedule={
            "relay-outbox": {"task": "system.relay_outbox", "schedule": OUTBOX_RELAY_SECONDS}
        },
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
    )
    return app


celery_app = create_celery(get_settings())


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
