"""Database engine creation for every supported dialect."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlmodel import Session, SQLModel, create_engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def create_db_engine(
    url: str, *, pool_size: int = 5, max_overflow: int = 10, idle_ping_seconds: float | None = None
) -> Engine:
    """An engine for ``url``; SQLite files get their folder, foreign keys and WAL."""
    parsed = make_url(url)
    pool: dict[str, Any] = {"pool_size": pool_size, "max_overflow": max_overflow}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        else:
            pool = {}  # an in-memory database lives in one connection (SingletonThreadPool)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, **pool)
    _ping_when_idle(engine, IDLE_PING_SECONDS if idle_ping_seconds is None else idle_ping_seconds)
    return engine


# A pooled connection unused for longer than this is checked with a round trip before use.
IDLE_PING_SECONDS = 10.0


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """SQLAlchemy's ``pool_pre_ping``, for connections that sat idle only.

    A database restart or a dropped connection shows up after a quiet spell, not between two
    requests a few milliseconds apart; pinging on every checkout cost a round trip per request
    (issue 18). A failed ping raises ``DisconnectionError``, on which the pool throws the
    connection away and opens a fresh one, as with ``pool_pre_ping``.
    """

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _taken(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned_at")
        if returned is None or time.monotonic() - returned < idle_seconds:
            return  # new (just connected) or busy: it worked moments ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"idle connection failed its ping: {exc}") from exc


def table_of(model: type[SQLModel]) -> Table:
    """The table of a table model, for statements written in SQLAlchemy Core."""
    table = getattr(model, "__table__", None)
    assert isinstance(table, Table), f"{model.__name__} is not a table model"
    return table


def pooled_connections(engine: Engine) -> int | None:
    """How many connections the engine's pool keeps open (None: no fixed pool)."""
    size = getattr(engine.pool, "size", None)
    return size() if callable(size) else None


def on_rollback(session: Session, undo: Callable[[], None]) -> None:
    """Run ``undo`` if this session's transaction is rolled back (e.g. delete a stored blob)."""
    session.info.setdefault("undo", []).append(undo)


def run_undo(session: Session) -> None:
    """Run and forget the undo actions registered on ``session`` (after a rollback)."""
    for undo in reversed(session.info.pop("undo", [])):
        undo()


def clear_undo(session: Session) -> None:
    """Forget the undo actions (after a successful commit)."""
    session.info.pop("undo", None)


def serialize_writers(session: Session) -> None:
    """On SQLite, take the database write lock now, before reading what we will change.

    PostgreSQL uses row locks (``FOR UPDATE``) instead. SQLite has no row locks: a no-op UPDATE
    starts the write transaction at once, so concurrent writers queue (busy_timeout) instead of
    deciding on a stale read.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("UPDATE projects SET id = id WHERE 1 = 0"))


@contextmanager
def transaction(
    engine: Engine, relay: Callable[[list[Any]], None] | None = None
) -> Iterator[Session]:
    """One unit of work: commit when the block ends, roll back (and undo blobs) when it raises.

    Jobs deferred in it (``core.outbox.defer``) go to ``relay`` after the commit; without a
    relay they wait in the outbox for the periodic one.
    """
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            run_undo(session)
            session.info.pop("outbox", None)
            raise
        clear_undo(session)
        deferred = session.info.pop("outbox", None)
        if deferred and relay is not None:
            relay(deferred)


def refresh_statistics(engine: Engine, *tables: str) -> None:
    """ANALYZE ``tables`` after a bulk load, so the planner sees their real sizes at once
    instead of after the next autovacuum (on a new table without statistics PostgreSQL took
    the open-task queue for a handful of rows and sorted it on every lease)."""
    with engine.begin() as connection:
        for table in tables:
            connection.exec_driver_sql(f'ANALYZE "{table}"')
