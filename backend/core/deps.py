"""Request-scoped dependencies shared by every router, as ``Annotated`` aliases.

Dependencies that do no I/O are ``async def``: FastAPI runs sync ones in the thread pool, and
each such hop cost more than the work (issue 18's profile: 16 % of a request in hand-offs).
"""

from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlmodel import Session

from backend.core.config import Settings
from backend.core.db import transaction
from backend.core.security import HashingGate
from backend.core.storage import Storage

T = TypeVar("T")


class Database:
    """Runs a request's whole database part in one transaction on one worker thread.

    For the hot endpoints: FastAPI would otherwise hop to the thread pool for the session,
    the caller's authentication, the endpoint and the commit separately (issue 18's profile:
    a hop costs more than most statements). The function returns before the response is
    sent, so the client never sees a success whose commit then fails.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def run(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` in a fresh transaction, committed when it returns."""
        return await anyio.to_thread.run_sync(self._run, work)

    def _run(self, work: Callable[[Session], T]) -> T:
        with transaction(self.engine) as session:
            return work(session)


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: commit when the endpoint returns, roll back when it raises."""
    with transaction(request.app.state.engine) as session:
        yield session


async def get_engine(request: Request) -> Engine:
    """The app's engine, for the few endpoints that must not hold a connection throughout
    (password checks run between two short transactions)."""
    engine: Engine = request.app.state.engine
    return engine


async def get_database(request: Request) -> Database:
    """The app's one-hop transaction runner."""
    database: Database = request.app.state.database
    return database


async def get_hashing(request: Request) -> HashingGate:
    """The app's bound on concurrent password hashing."""
    gate: HashingGate = request.app.state.hashing
    return gate


async def get_settings_dep(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_storage(request: Request) -> Storage:
    """The app's blob storage."""
    storage: Storage = request.app.state.storage
    return storage


# scope="function": the commit happens before the response is sent, so a client never sees a
# success whose transaction then fails.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
EngineDep = Annotated[Engine, Depends(get_engine)]
DatabaseDep = Annotated[Database, Depends(get_database)]
HashingDep = Annotated[HashingGate, Depends(get_hashing)]
StorageDep = Annotated[Storage, Depends(get_storage)]
