"""Sign-up, login, logout, CSRF on cookie sessions, bearer tokens, roles."""

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from backend.auth.deps import CSRF_COOKIE, SESSION_COOKIE
from backend.auth.models import Credential, User, UserRole
from backend.core.config import Settings
from backend.main import create_app
from tests.factories import PASSWORD, set_role, signup


def test_signup_creates_a_pseudonymous_volunteer_with_an_argon2_hash(
    client: TestClient, migrated_engine: Engine
) -> None:
    response = client.post(
        "/api/auth/signup", json={"email": "Ada@Example.org", "password": PASSWORD}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["user"]["role"] == "volunteer"
    assert body["user"]["email"] == "ada@example.org"
    assert "@" not in body["user"]["display_name"]
    cookie = response.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookie if c.startswith(f"{SESSION_COOKIE}="))
    assert "HttpOnly" in session_cookie
    assert "SameSite=lax" in session_cookie
    assert any(c.startswith(f"{CSRF_COOKIE}=") and "HttpOnly" not in c for c in cookie)
    with Session(migrated_engine) as session:
        user = session.exec(select(User)).one()
        assert user.password_hash.startswith("$argon2id$")
        # Only a digest of the session secret is stored.
        stored = session.exec(select(Credential)).one()
        assert stored.secret_sha256 != client.cookies[SESSION_COOKIE]
    assert client.get("/api/auth/me").json()["display_name"] == body["user"]["display_name"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "a@b.org", "password": "short"}, "password"),
        ({"email": "a@b.org", "password": PASSWORD, "role": "admin"}, "role"),
        ({"email": "a@b.org", "password": PASSWORD, "display_name": "x"}, "display_name"),
    ],
)
def test_signup_rejects_bad_input(client: TestClient, payload: dict[str, str], field: str) -> None:
    response = client.post("/api/auth/signup", json=payload)
    assert response.status_code == 422
    body = response.json()
    assert [e["loc"] for e in body["errors"]] == [["body", field]]
    # A sentence a person can read, and nothing of what was submitted echoed back.
    assert body["detail"].startswith(f"{field}: ")
    assert PASSWORD not in response.text
    assert "input" not in body["errors"][0]


def test_duplicate_email_is_a_conflict(client: TestClient) -> None:
    signup(client, "dup@example.org")
    response = client.post(
        "/api/auth/signup", json={"email": "DUP@example.org", "password": PASSWORD}
    )
    assert response.status_code == 409
    assert "already exists" in response.json()["detail"]


def test_login_logout_round_trip(client: TestClient) -> None:
    signup(client, "lo@example.org")
    client.cookies.clear()
    assert client.get("/api/auth/me").status_code == 401
    wrong = client.post("/api/auth/login", json={"email": "lo@example.org", "password": "nope"})
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "Wrong login name or password"
    ok = client.post("/api/auth/login", json={"email": "lo@example.org", "password": PASSWORD})
    assert ok.status_code == 200
    csrf = ok.json()["csrf_token"]
    assert client.get("/api/auth/me").status_code == 200
    # Without the CSRF header a cookie-authenticated POST is refused.
    assert client.post("/api/auth/logout").status_code == 403
    assert client.post("/api/auth/logout", headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    # The old cookie no longer works even if a client kept it.
    assert client.get("/api/auth/me").status_code == 401


def test_bearer_token_for_scripts_needs_no_csrf(client: TestClient) -> None:
    signup(client, "script@example.org")
    response = client.post("/api/auth/tokens", json={"name": "export script"})
    assert response.status_code == 201
    token = response.json()["token"]
    # Every token expires: 90 days unless asked otherwise, a year at most.
    expires = datetime.fromisoformat(response.json()["expires_at"])
    assert timedelta(days=89) < expires - datetime.now(UTC) <= timedelta(days=90)
    assert (
        client.post("/api/auth/tokens", json={"name": "x", "expires_in_days": 366}).status_code
        == 422
    )
    assert (
        client.post("/api/auth/tokens", json={"name": "x", "expires_in_days": None}).status_code
        == 422
    )
    client.cookies.clear()
    del client.headers["X-CSRF-Token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/auth/me", headers=bearer).json()["email"] == "script@example.org"
    # A token cannot mint further tokens (a leaked one must not breed).
    minted = client.post("/api/auth/tokens", json={"name": "child"}, headers=bearer)
    assert minted.status_code == 403
    assert client.post("/api/auth/logout", headers=bearer).status_code == 204
    assert client.get("/api/auth/me", headers=bearer).status_code == 401
    assert (
        client.get("/api/auth/me", headers={"Authorization": "Bearer nonsense"}).status_code == 401
    )


def test_expired_session_is_refused(client: TestClient, migrated_engine: Engine) -> None:
    signup(client, "old@example.org")
    with Session(migrated_engine) as session:
        credential = session.exec(select(Credential)).one()
        assert credential.expires_at is not None
        credential.expires_at = credential.expires_at - timedelta(days=365)
        session.add(credential)
        session.commit()
    response = client.get("/api/auth/me")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_only_admins_create_projects(client: TestClient, migrated_engine: Engine) -> None:
    signup(client, "vol@example.org")
    body = {"name": "round-1", "min_labels": 5, "gold_rate": 0.2}
    assert client.post("/api/projects", json=body).status_code == 403
    set_role(migrated_engine, UserRole.admin)
    created = client.post("/api/projects", json=body)
    assert created.status_code == 201
    assert created.json()["min_labels"] == 5
    assert client.post("/api/projects", json=body).status_code == 409
    bad = client.post("/api/projects", json={"name": "x y", "gold_rate": 2})
    assert bad.status_code == 422
    listed = client.get("/api/projects").json()
    assert [p["name"] for p in listed] == ["round-1"]
    assert listed[0]["tasks_open"] == 0


def test_owners_list_and_revoke_their_tokens_only(client: TestClient) -> None:
    signup(client, "owner@example.org")
    made = [client.post("/api/auth/tokens", json={"name": f"t{i}"}).json() for i in range(3)]
    listed = client.get("/api/auth/tokens").json()
    assert [t["name"] for t in listed] == ["t0", "t1", "t2"]
    assert all("token" not in t for t in listed)  # the secret is shown once only
    assert client.delete(f"/api/auth/tokens/{made[1]['id']}").status_code == 204
    assert [t["name"] for t in client.get("/api/auth/tokens").json()] == ["t0", "t2"]
    bearer = {"Authorization": f"Bearer {made[1]['token']}"}
    assert client.get("/api/auth/me", headers=bearer).status_code == 401
    # Revoking twice, or someone else's token, is "not found" (ids are not confirmed).
    assert client.delete(f"/api/auth/tokens/{made[1]['id']}").status_code == 404
    client.cookies.clear()
    signup(client, "other@example.org")
    assert client.delete(f"/api/auth/tokens/{made[0]['id']}").status_code == 404
    assert client.get("/api/auth/tokens").json() == []
    assert client.delete("/api/auth/tokens/99999999999").status_code == 422


def test_token_count_is_capped(
    settings_env: pytest.MonkeyPatch, migrated_engine: Engine, app_settings: Settings
) -> None:
    settings = app_settings.model_copy(update={"max_tokens_per_user": 2})
    with TestClient(create_app(settings, engine=migrated_engine)) as client:
        signup(client, "many@example.org")
        for name in ("a", "b"):
            assert client.post("/api/auth/tokens", json={"name": name}).status_code == 201
        refused = client.post("/api/auth/tokens", json={"name": "c"})
        assert refused.status_code == 409
        assert "revoke one" in refused.json()["detail"]
