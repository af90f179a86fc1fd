"""Pooled connections: a connection that died while idle is replaced, not handed out."""

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from backend.core.db import create_db_engine

pytestmark = pytest.mark.postgres


def _kill_pooled_connection(engine: Engine, pg_server: Engine) -> None:
    """Use one connection, return it to the pool, then end its server process."""
    with engine.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with pg_server.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_a_connection_killed_while_idle_is_replaced(pg_url: str, pg_server: Engine) -> None:
    engine = create_db_engine(pg_url, pool_size=1, max_overflow=0, idle_ping_seconds=0)
    try:
        _kill_pooled_connection(engine, pg_server)
        with engine.connect() as connection:  # pinged, found dead, replaced
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_a_busy_connection_is_not_pinged(pg_url: str, pg_server: Engine) -> None:
    # The other side of the trade: within the idle window no round trip is spent, so a
    # connection killed in that window fails its next use (and the pool then drops it).
    engine = create_db_engine(pg_url, pool_size=1, max_overflow=0, idle_ping_seconds=3600)
    try:
        _kill_pooled_connection(engine, pg_server)
        with pytest.raises(OperationalError), engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()
