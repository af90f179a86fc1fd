"""Sign-up, login, logout, CSRF on cookie sessions, bearer tokens, roles."""

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from backend.auth.deps import CSRF_COOKIE, SESSION_COOKIE
from backend.auth.models import Credential, User, UserRole
from backend.auth.service import MAX_FAILED_LOGINS
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
    assert field in response.text


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
    assert wrong.json()["detail"] == "Wrong email or password"
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
    client.cookies.clear()
    del client.headers["X-CSRF-Token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/auth/me", headers=bearer).json()["email"] == "script@example.org"
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
    body = {"name": "round-1", "redundancy": 5, "gold_rate": 0.2}
    assert client.post("/api/projects", json=body).status_code == 403
    set_role(migrated_engine, UserRole.admin)
    created = client.post("/api/projects", json=body)
    assert created.status_code == 201
    assert created.json()["redundancy"] == 5
    assert client.post("/api/projects", json=body).status_code == 409
    bad = client.post("/api/projects", json={"name": "x y", "gold_rate": 2})
    assert bad.status_code == 422
    listed = client.get("/api/projects").json()
    assert [p["name"] for p in listed] == ["round-1"]
    assert listed[0]["tasks_open"] == 0


def test_repeated_wrong_passwords_lock_the_account_for_a_while(
    client: TestClient, migrated_engine: Engine
) -> None:
    signup(client, "target@example.org")
    client.cookies.clear()
    wrong = {"email": "target@example.org", "password": "guess-guess"}
    for _ in range(MAX_FAILED_LOGINS):
        assert client.post("/api/auth/login", json=wrong).status_code == 401
    # Locked: even the right password waits, and the answer says for how long.
    right = {"email": "target@example.org", "password": PASSWORD}
    locked = client.post("/api/auth/login", json=right)
    assert locked.status_code == 429
    assert "try again in 15 min" in locked.json()["detail"]
    with Session(migrated_engine) as session:
        user = session.exec(select(User)).one()
        assert user.locked_until is not None
        user.locked_until = user.locked_until - timedelta(minutes=16)
        session.add(user)
        session.commit()
    assert client.post("/api/auth/login", json=right).status_code == 200
    # Unknown emails get the same answer as wrong passwords.
    unknown = client.post("/api/auth/login", json={"email": "nobody@example.org", "password": "x"})
    assert unknown.json() == {"detail": "Wrong email or password"}
