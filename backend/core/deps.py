"""Request-scoped dependencies shared by every router, as ``Annotated`` aliases.

Dependencies that do no I/O are ``async def``: FastAPI runs sync ones in the thread pool, and
each such hop cost more than the work (issue 18's profile: 16 % of a request in hand-offs).
"""

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, TypeVar

import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlmodel import Session

from backend.core.config import Settings
from backend.core.db import transaction
from backend.core.outbox import Relay
from backend.core.security import HashingGate
from backend.core.storage import Storage

T = TypeVar("T")
U = TypeVar("U")


class Database:
    """Runs a request's whole database part in one transaction on one worker thread.

    For the hot endpoints: FastAPI would otherwise hop to the thread pool for the session,
    the caller's authentication, the endpoint and the commit separately (issue 18's profile:
    a hop costs more than most statements). The function returns before the response is
    sent, so the client never sees a success whose commit then fails.
    """

    def __init__(self, engine: Engine, relay: Relay | None = None) -> None:
        self.engine = engine
        self.relay = relay

    async def run(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` in a fresh transaction, committed when it returns."""
        return await anyio.to_thread.run_sync(self._run, work)

    async def run_then(self, work: Callable[[Session], T], then: Callable[[T], U]) -> U:
        """``then(work(session))``: ``then`` (reading a file, say) runs on the same worker
        thread after the transaction has ended, so it neither holds a connection nor costs a
        second thread hop."""
        return await anyio.to_thread.run_sync(lambda: then(self._run(work)))

    def _run(self, work: Callable[[Session], T]) -> T:
        with transaction(self.engine, self.relay) as session:
            return work(session)


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: commit when the endpoint returns, roll back when it raises."""
    with transaction(request.app.state.engine, request.app.state.relay) as session:
        yield session


def app_state(name: str, kind: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency handing out one of the objects the app factory put on ``app.state``.

    Async: it does no I/O, and FastAPI runs sync dependencies in the thread pool.
    """

    async def dependency(request: Request) -> T:
        value = getattr(request.app.state, name)
        assert isinstance(value, kind), f"app.state.{name} is not a {kind.__name__}"
        return value

    dependency.__name__ = f"app_state_{name}"
    return dependency


# scope="function": the commit happens before the response is sent, so a client never sees a
# success whose transaction then fails.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(app_state("settings", Settings))]
# The few endpoints that must not hold a connection throughout (password checks run between
# two short transactions) take the engine instead of a session.
EngineDep = Annotated[Engine, Depends(app_state("engine", Engine))]
DatabaseDep = Annotated[Database, Depends(app_state("database", Database))]
HashingDep = Annotated[HashingGate, Depends(app_state("hashing", HashingGate))]
StorageDep = Annotated[Storage, Depends(app_state("storage", Storage))]
