"""Bearer tokens carry scopes, and consent is given in a browser session only (issue 33)."""

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from backend.auth import consent, tokens
from backend.auth import service as auth
from backend.auth.deps import required_scope
from backend.auth.models import Credential, TokenScope, UserRole
from backend.core.migrations import downgrade, upgrade
from backend.core.storage import Storage
from tests.backend.test_stalls import assert_error
from tests.factories import PASSWORD, create_tasks, create_token, signup


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _token(client: TestClient, **body: object) -> tuple[dict[str, str], list[str]]:
    made = client.post("/api/auth/tokens", json={"name": "script", **body})
    assert made.status_code == 201, made.text
    return _bearer(made.json()["token"]), made.json()["scopes"]


def test_a_token_does_what_its_scopes_say(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        create_tasks(session, storage, count=3)
        session.commit()
    signup(client, "scoped@example.org")
    default, scopes = _token(client)
    assert scopes == ["read", "tasks"]  # none asked: a labelling script's
    read_only, scopes = _token(client, scopes=["read"])
    assert scopes == ["read"]
    tasks_only, _ = _token(client, scopes=["tasks"])
    assert client.post("/api/auth/tokens", json={"name": "x", "scopes": ["all"]}).status_code == 422
    listed = client.get("/api/auth/tokens").json()
    assert [t["scopes"] for t in listed] == [["read", "tasks"], ["read"], ["tasks"]]
    client.cookies.clear()
    del client.headers["X-CSRF-Token"]

    lease = client.post("/api/tasks/next", headers=default)
    assert lease.status_code == 200, lease.text
    assert client.get("/api/auth/me", headers=default).status_code == 200
    assert_error(client.post("/api/tasks/next", headers=read_only), 403, "insufficient_scope")
    assert_error(client.get("/api/auth/me", headers=tasks_only), 403, "insufficient_scope")
    skipped = client.post(f"/api/tasks/{lease.json()['id']}/skip", headers=tasks_only)
    assert skipped.status_code == 204
    mask = {"encoding": "rle", "width": 24, "height": 16, "counts": [24 * 16]}
    refused = client.post("/api/tasks/1/annotations", json={"mask": mask}, headers=read_only)
    assert_error(refused, 403, "insufficient_scope")
    # Any token may withdraw itself.
    assert client.post("/api/auth/logout", headers=read_only).status_code == 204


def test_staff_changes_need_the_manage_scope(client: TestClient, migrated_engine: Engine) -> None:
    with Session(migrated_engine) as session:
        admin = auth.create_user(session=session, email="adm@example.org", password=PASSWORD)
        admin.role = UserRole.admin
        labelling = create_token(session, admin, scopes=[TokenScope.tasks, TokenScope.read])
        managing = create_token(session, admin, scopes=[TokenScope.manage])
        session.commit()
    body = {"name": "scoped-project"}
    refused = client.post("/api/projects", json=body, headers=_bearer(labelling))
    assert_error(refused, 403, "insufficient_scope")
    assert client.post("/api/projects", json=body, headers=_bearer(managing)).status_code == 201


def test_consent_is_given_in_a_browser_not_by_a_token(
    client: TestClient, migrated_engine: Engine
) -> None:
    signed = client.post(
        "/api/auth/signup", json={"email": "agree@example.org", "password": PASSWORD}
    )
    client.headers["X-CSRF-Token"] = signed.json()["csrf_token"]
    bearer, _ = _token(client)
    client.cookies.clear()
    del client.headers["X-CSRF-Token"]
    version = {"version": consent.VERSION}
    refused = client.post("/api/auth/consent", json=version, headers=bearer)
    assert_error(refused, 403, "session_required")
    assert client.get("/api/auth/me", headers=bearer).json()["consent_version"] is None


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/api/projects", TokenScope.read),
        ("HEAD", "/api/health", TokenScope.read),
        ("POST", "/api/tasks/next", TokenScope.tasks),
        ("POST", "/api/tasks/3/report", TokenScope.tasks),
        ("POST", "/api/auth/logout", None),
        ("POST", "/api/auth/consent", None),
        ("POST", "/api/quality/slices/1/gold", TokenScope.manage),
        ("DELETE", "/api/auth/tokens/1", TokenScope.manage),
    ],
)
def test_the_scope_of_each_kind_of_request(
    method: str, path: str, scope: TokenScope | None
) -> None:
    assert required_scope(method, path) == scope


def test_the_migration_scopes_old_tokens_and_merges_duplicate_reports(
    migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        (task,) = create_tasks(session, storage, count=1)
        user = auth.create_user(session=session, email="old@example.org", password=PASSWORD)
        create_token(session, user)
        tokens.open_session(session=session, user=user, hours=1)
        session.commit()
        ids = {"task": task.id, "slice": task.slice_id, "user": user.id, "at": datetime.now(UTC)}
    downgrade(migrated_engine, "0012")
    with migrated_engine.begin() as connection:
        for note in ("first", "again", "and again"):
            connection.execute(
                text(
                    "INSERT INTO task_reports (task_id, slice_id, user_id, reason, note, "
                    "created_at) VALUES (:task, :slice, :user, 'other', :note, :at)"
                ),
                {**ids, "note": note},
            )
    upgrade(migrated_engine)
    with Session(migrated_engine) as session:
        scopes = {c.kind.value: c.scopes for c in session.exec(select(Credential)).all()}
        notes = session.exec(text("SELECT note FROM task_reports")).all()  # type: ignore[call-overload]
    assert scopes == {"token": "tasks read", "session": None}
    assert [n for (n,) in notes] == ["first"]
