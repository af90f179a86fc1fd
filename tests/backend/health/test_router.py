"""``GET /api/health`` on a migrated, an unmigrated and an unreachable database."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from backend import __version__
from backend.auth import service as auth
from backend.auth.models import UserRole
from backend.core.config import Settings
from backend.core.db import create_db_engine
from backend.core.errors import SchemaNotCurrent
from backend.core.migrations import head_revision, upgrade
from backend.main import create_app
from tests.factories import PASSWORD, create_token


def _admin_token(engine: Engine) -> dict[str, str]:
    with Session(engine) as session:
        admin = auth.create_user(
            session=session, email="admin@example.org", password=PASSWORD, role=UserRole.admin
        )
        secret = create_token(session, admin, "health")
        session.commit()
    return {"Authorization": f"Bearer {secret}"}


def test_health_reports_database_and_revision_to_admins_only(db_engine: Engine) -> None:
    upgrade(db_engine)
    bearer = _admin_token(db_engine)
    with TestClient(create_app(Settings(), engine=db_engine)) as client:
        anonymous = client.get("/api/health")
        response = client.get("/api/health", headers=bearer)
    # Anyone learns that it is up; nothing about where its database lives.
    assert anonymous.status_code == 200
    assert anonymous.json() == {"status": "ok", "version": __version__, "database": None}
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
    assert body == {"status": "degraded", "version": __version__, "database": None}


def test_health_is_503_when_database_is_unreachable() -> None:
    # Port 9 (discard) has no PostgreSQL: the connection is refused at once.
    engine = create_db_engine("postgresql+psycopg://nobody:secret@127.0.0.1:9/none")
    client = TestClient(create_app(Settings(), engine=engine))
    response = client.get("/api/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["database"] is None
    # Admin credentials cannot be checked either; the answer is the same, with no crash.
    flaky = client.get("/api/health", headers={"Authorization": "Bearer x"})
    assert flaky.status_code == 503
    assert "secret" not in response.text + flaky.text
