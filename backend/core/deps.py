"""Request-scoped dependencies shared by every router, as ``Annotated`` aliases."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from backend.core.config import Settings
from backend.core.db import clear_undo, run_undo
from backend.core.storage import Storage


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: commit when the endpoint returns, roll back when it raises."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            run_undo(session)
            raise
        clear_undo(session)


def get_settings_dep(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def get_storage(request: Request) -> Storage:
    """The app's blob storage."""
    storage: Storage = request.app.state.storage
    return storage


# scope="function": the commit happens before the response is sent, so a client never sees a
# success whose transaction then fails.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StorageDep = Annotated[Storage, Depends(get_storage)]
