"""What every command of the ``mscrowd`` command line shares: a clean error exit, the migrated
database, a transaction whose domain errors become messages."""

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from sqlalchemy import Engine
from sqlmodel import Session

import backend.models  # noqa: F401  (every table: foreign keys resolve in any command)
from backend.core.config import Settings, get_settings
from backend.core.db import create_db_engine, transaction
from backend.core.errors import DomainError, SchemaNotCurrent
from backend.core.migrations import ensure_current


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error; the exit (code 1) for the caller to raise."""
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code=1)


def migrated_engine(settings: Settings) -> Engine:
    """An engine on the configured database, or a clean exit when it is not migrated."""
    engine = create_db_engine(settings.database_url)
    try:
        ensure_current(engine)
    except SchemaNotCurrent as exc:
        engine.dispose()
        raise fail(exc.message) from exc
    return engine


@contextmanager
def unit_of_work() -> Iterator[tuple[Settings, Session]]:
    """A transaction on the configured, migrated database; domain errors exit with a message."""
    settings = get_settings()
    engine = migrated_engine(settings)
    try:
        with transaction(engine) as session:
            yield settings, session
    except DomainError as exc:
        raise fail(exc.message) from exc
    finally:
        engine.dispose()
