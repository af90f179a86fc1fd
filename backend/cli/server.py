"""``mscrowd migrate``, ``serve`` and ``worker``: the schema, the web server and the Celery
workers."""

import os
import signal
import subprocess
import sys
from typing import Annotated

import typer
import uvicorn
from sqlalchemy import Engine

from backend.cli.common import fail, migrated_engine
from backend.core.config import Settings, get_settings
from backend.core.db import create_db_engine
from backend.core.migrations import current_revision, upgrade


def _die_with_parent() -> None:
    # uvicorn re-raises SIGTERM after its graceful shutdown, so a `finally` may never run: ask
    # Linux to send the embedded worker SIGTERM when the server process ends, however it ends.
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def migrate(
    revision: Annotated[str, typer.Option(help="Alembic revision to upgrade to.")] = "head",
) -> None:
    """Create or upgrade the database schema."""
    settings = get_settings()
    engine = create_db_engine(settings.database_url)
    try:
        upgrade(engine, revision)
        where = engine.url.render_as_string(hide_password=True)
        typer.echo(f"Database {where} is at revision {current_revision(engine)}.")
    finally:
        engine.dispose()


# Connections left for migrations, Celery workers and psql beside the server processes.
RESERVED_CONNECTIONS = 10


def _check_connections(engine: Engine, settings: Settings, workers: int) -> None:
    """Refuse to start more processes than PostgreSQL has connections for."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as connection:
        limit = int(connection.exec_driver_sql("SHOW max_connections").scalar_one())
        reserved = int(
            connection.exec_driver_sql("SHOW superuser_reserved_connections").scalar_one()
        )
    per_process = settings.db_pool_size + settings.db_max_overflow
    available = limit - reserved - RESERVED_CONNECTIONS
    if workers * per_process > available:
        raise fail(
            f"{workers} worker(s) x {per_process} connections (MSCROWD_DB_POOL_SIZE + "
            f"MSCROWD_DB_MAX_OVERFLOW) exceed the {available} that PostgreSQL's "
            f"max_connections={limit} leaves; use fewer workers or smaller pools"
        )


def _build_missing_sprites(engine: Engine, settings: Settings) -> None:
    """Sprites of slices imported before them, before the first request: a slice whose first
    lease built its sprite would answer slower than one leased before, a timing a volunteer
    could read to tell a never-leased slice (not gold) from the rest. Once per upgrade; then
    a look at each slice's file."""
    from sqlmodel import Session

    from backend.core.storage import Storage
    from backend.imaging.sprite import missing_sprites

    with Session(engine) as session:
        built = missing_sprites(session, Storage(settings.storage_url))
    if built:
        typer.echo(f"Built {built} missing sprite(s).")


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    worker: Annotated[
        bool | None,
        typer.Option(help="Also run a Celery worker (default: when the broker is embedded)."),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes (each with its own connection pool).")
    ] = 1,
) -> None:
    """Serve the web app and API; the database must be migrated first."""
    settings = get_settings()
    engine = migrated_engine(settings)
    try:
        _check_connections(engine, settings, workers)
        _build_missing_sprites(engine, settings)
    finally:
        engine.dispose()
    child = None
    if worker if worker is not None else settings.embedded_worker:
        # The embedded default has no separate worker service; run one beside the server.
        command = [sys.executable, "-m", "backend", "worker", "--concurrency", "1", "--beat"]
        child = subprocess.Popen(command, preexec_fn=_die_with_parent)
    try:
        uvicorn.run(
            "backend.main:create_app",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers,
            timeout_keep_alive=settings.keep_alive_seconds,
            # Client addresses (for login throttling) come from X-Forwarded-For only when the
            # connection is from a proxy the admin named; otherwise anyone could pick theirs.
            proxy_headers=bool(settings.forwarded_allow_ips),
            forwarded_allow_ips=settings.forwarded_allow_ips or None,
        )
    finally:
        if child is not None:
            child.terminate()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


def _cuda_devices() -> int:
    """How many CUDA devices there are, counted without initialising CUDA in this process."""
    import torch

    # Not torch.cuda.is_available(): it calls cudaGetDeviceCount, which initialises the CUDA
    # driver here and "poisons" fork, so a process forked from this one fails with "Cannot
    # re-initialize CUDA in forked subprocess". device_count() asks NVML first (PyTorch
    # documents that it does not poison fork when NVML answers) and falls back to the CUDA
    # runtime only where NVML is missing; the solo pool below makes even that harmless.
    return torch.cuda.device_count()


def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues to consume.")] = "default,gpu",
    concurrency: Annotated[
        int,
        typer.Option(
            min=1, help="Worker processes (a worker on queue gpu runs one job at a time)."
        ),
    ] = 1,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    beat: Annotated[
        bool,
        typer.Option(help="Also run the periodic jobs (the outbox relay); in one worker only."),
    ] = False,
    device: Annotated[
        str, typer.Option(help="The ML jobs' device (queue gpu): auto, cpu or cuda.")
    ] = "auto",
) -> None:
    """Run a Celery worker (``default`` backend jobs; ``gpu`` for the ML worker)."""
    from backend.worker import BACKEND_JOBS, ML_JOBS, QUEUES, celery_app

    chosen = set(queues.split(","))
    unknown = chosen - set(QUEUES)
    if unknown:
        raise fail(f"unknown queue(s) {', '.join(sorted(unknown))}; known: {', '.join(QUEUES)}")
    if device not in ("auto", "cpu", "cuda"):
        raise fail(f"--device must be auto, cpu or cuda, not {device!r}")
    ml_worker = "gpu" in chosen
    if ml_worker:
        if concurrency > 1:
            raise fail(
                f"--concurrency {concurrency}: a worker on queue gpu runs one job at a time "
                "(--pool solo); run queue default in a worker of its own for more"
            )
        # The ML worker: its jobs (and torch) load in this process only, by module name; the
        # backend itself never imports ``ml``.
        celery_app.conf.include = [*BACKEND_JOBS, ML_JOBS]
        os.environ["MSCROWD_ML_DEVICE"] = device
        get_settings.cache_clear()
        if device == "cuda" and _cuda_devices() == 0:
            raise fail("--device cuda: no CUDA device here; use cpu or auto")
    argv = [
        "worker",
        f"--queues={queues}",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
    ]
    # The ML worker runs its jobs in this very process (--pool solo), never in a forked child:
    # CUDA does not survive a fork once the parent has touched it, and the parent imports
    # torch, MONAI and whatever they pull in (Celery imports ``ml.jobs`` before it forks), so
    # no fork at all is the only guarantee that holds whatever those imports do. Training
    # owns the GPU and runs one job at a time anyway. The embedded broker's single process
    # polling SQLite is plenty for the demo.
    if ml_worker or get_settings().broker_is_embedded:
        argv.append("--pool=solo")
    if beat:
        argv.append("--beat")
    celery_app.worker_main(argv)
