"""Jobs sent after their transaction commits: a transactional outbox.

A service that wants a job run once its changes are visible (a completed task to fuse) calls
``defer`` inside its transaction: that writes a row to ``job_outbox`` in the same transaction,
so the job exists exactly when the change does. After the commit, ``transaction`` hands the
deferred rows to the ``Relay``, which sends them to Celery by name and deletes them. If the
broker is down or the process dies between the commit and the send, the row stays, and the
periodic job ``system.relay_outbox`` (``Relay.relay``) sends it later. A job may therefore
arrive twice (sent, then the process died before the delete): every deferred job must be
idempotent, as the fusion jobs are.

Sending never fails the request that deferred it: its transaction has already committed.
"""

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import Engine, delete, insert, select
from sqlmodel import Field, Session, SQLModel

from backend.core.columns import created_at_field
from backend.core.config import Settings
from backend.core.timeutil import utcnow

log = logging.getLogger(__name__)

# How old a row must be before the periodic relay sends it: younger ones are still being sent
# by the process that committed them.
RELAY_AFTER = timedelta(seconds=30)


class OutboxJob(SQLModel, table=True):
    """A job to send once the transaction that wrote it has committed."""

    __tablename__ = "job_outbox"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)  # the Celery job's name, e.g. "fusion.fuse_task"
    args: list[Any] = Field(default_factory=list, sa_type=sa.JSON)
    created_at: datetime = created_at_field()


class Deferred(NamedTuple):
    id: int
    name: str
    args: list[Any]


OUTBOX = OutboxJob.__table__  # type: ignore[attr-defined]
_INSERT = insert(OUTBOX).returning(OUTBOX.c.id)


def defer(session: Session, name: str, *args: Any) -> None:
    """Have job ``name(*args)`` sent when this session's transaction commits."""
    values = {"name": name, "args": list(args), "created_at": utcnow()}
    job_id = session.execute(_INSERT, values).scalar_one()
    session.info.setdefault("outbox", []).append(Deferred(job_id, name, list(args)))


def take_deferred(session: Session) -> list[Deferred]:
    """The jobs deferred in this session's transaction, forgotten by the session."""
    deferred: list[Deferred] = session.info.pop("outbox", [])
    return deferred


Send = Callable[[str, list[Any]], object]


def celery_sender(settings: Settings) -> Send:
    """``send(name, args)`` through a Celery app for ``settings``, made on the first send (so a
    server that never sends a job never connects to the broker)."""
    made: list[Any] = []
    lock = threading.Lock()

    def send(name: str, args: list[Any]) -> object:
        with lock:
            if not made:
                from backend.worker import create_celery  # the app is made at first use

                made.append(create_celery(settings))
        return made[0].send_task(name, args=args)

    return send


class Relay:
    """Sends outbox rows with ``send(name, args)`` and deletes the ones it sent."""

    def __init__(self, engine: Engine, send: Send) -> None:
        self.engine = engine
        self.send = send

    def __call__(self, jobs: Sequence[Deferred]) -> None:
        """Send the jobs a transaction just committed; on a broker error the rest stay in the
        outbox for the periodic relay (logged, never raised)."""
        sent = []
        try:
            for job in jobs:
                self.send(job.name, job.args)
                sent.append(job.id)
        except Exception:
            log.warning("could not send %d job(s); the outbox relay will", len(jobs) - len(sent))
        self._forget(sent)

    def relay(self, *, older_than: timedelta = RELAY_AFTER, limit: int = 500) -> int:
        """Send the outbox rows older than ``older_than`` (those whose committing process did
        not send them); the number sent. Rows are locked (skipping ones another relay holds),
        sent, and deleted in one transaction, so two relays do not send the same row."""
        with self.engine.begin() as connection:
            query = (
                select(OUTBOX.c.id, OUTBOX.c.name, OUTBOX.c.args)
                .where(OUTBOX.c.created_at <= utcnow() - older_than)
                .order_by(OUTBOX.c.id)
                .limit(limit)
            )
            if connection.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = connection.execute(query).all()
            for row in rows:
                self.send(row.name, list(row.args))
            if rows:
                connection.execute(delete(OUTBOX).where(OUTBOX.c.id.in_([r.id for r in rows])))
        return len(rows)

    def _forget(self, ids: list[int]) -> None:
        if not ids:
            return
        try:
            with self.engine.begin() as connection:
                connection.execute(delete(OUTBOX).where(OUTBOX.c.id.in_(ids)))
        except Exception:  # sent but not deleted: the relay sends them again (idempotent jobs)
            log.warning("could not delete %d sent outbox row(s)", len(ids))
