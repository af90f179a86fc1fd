"""``GET /api/health`` on a migrated, an unmigrated and an unreachable database."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from backend.core.config import Settings
from backend.core.db import create_db_engine
from backend.core.errors import SchemaNotCurrent
from backend.core.migrations import head_revision, upgrade
from backend.main import create_app


def test_health_reports_database_and_revision(db_engine: Engine) -> None:
    upgrade(db_engine)
    with TestClient(create_app(Settings(), engine=db_engine)) as client:
        response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == {
        "dialect": db_engine.dialect.name,
        "name": db_engine.url.database,
        "reachable": True,
        "revision": head_revision(),
        "head": head_revision(),
        "schema_current": True,
        "error": None,
    }


def test_app_refuses_to_start_on_unmigrated_database(db_engine: Engine) -> None:
    app = create_app(Settings(), engine=db_engine)
    with pytest.raises(SchemaNotCurrent, match="mscrowd migrate"), TestClient(app):
        pass


def test_health_is_degraded_when_schema_is_behind(db_engine: Engine) -> None:
    # Without the lifespan (no `with`), the app serves even though startup would refuse.
    client = TestClient(create_app(Settings(), engine=db_engine))
    body = client.get("/api/health").json()
    assert body["status"] == "degraded"
    assert body["database"]["reachable"] is True
    assert body["database"]["revision"] is None


def test_health_is_503_when_database_is_unreachable() -> None:
    # Port 9 (discard) has no PostgreSQL: the connection is refused at once.
    engine = create_db_engine("postgresql+psycopg://nobody:secret@127.0.0.1:9/none")
    client = TestClient(create_app(Settings(), engine=engine))
    response = client.get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"]["reachable"] is False
    assert "secret" not in response.text
