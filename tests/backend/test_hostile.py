"""Hostile and malformed input answers 4xx with a clear message, never 5xx or a crash.

Each case here reproduces a problem found on the foundation (issue 17) against the API of
each dialect; ``test_the_crash_payload_against_a_live_server`` sends the request that once
killed the server process to a real ``mscrowd serve``.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from backend.annotations.models import Annotation
from backend.auth import consent
from backend.auth.models import UserRole
from backend.core.storage import Storage
from backend.main import MAX_BODY_BYTES
from tests.factories import HEIGHT, PASSWORD, WIDTH, create_tasks, set_role, signup
from tests.live import CLI, cli_env, live_server

# The request that segfaulted the server: int64 runs that wrap around to W x H.
CRASH_COUNTS = [2**63 - 1, 2**63 - 1, 30303]


def _raw(client: TestClient, path: str, text: str) -> httpx.Response:
    return client.post(path, content=text, headers={"Content-Type": "application/json"})


def _lease(client: TestClient, engine: Engine, storage: Storage) -> int:
    with Session(engine) as session:
        create_tasks(session, storage, count=2)
        session.commit()
    signup(client, "hostile@example.org")
    task_id: int = client.post("/api/tasks/next").json()["id"]
    return task_id


@pytest.mark.parametrize(
    "counts",
    [CRASH_COUNTS, [2**63, 2**63, 1], [2**64 + WIDTH * HEIGHT], [-1, WIDTH * HEIGHT + 1]],
    ids=["int64-wrap", "beyond-int64", "beyond-uint64", "negative"],
)
def test_run_lengths_out_of_range_are_422(
    client: TestClient, migrated_engine: Engine, storage: Storage, counts: list[int]
) -> None:
    task_id = _lease(client, migrated_engine, storage)
    mask = {"encoding": "rle", "width": WIDTH, "height": HEIGHT, "counts": counts}
    response = client.post(f"/api/tasks/{task_id}/annotations", json={"mask": mask})
    assert response.status_code == 422
    assert "counts" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/auth/login", '{"email": "a@b.org", "password": NaN}'),
        ("/api/auth/signup", '{"email": "a@b.org", "password": Infinity}'),
    ],
)
def test_non_finite_numbers_are_422(client: TestClient, path: str, body: str) -> None:
    response = _raw(client, path, body)
    assert response.status_code == 422, response.text


def test_non_finite_numbers_in_a_submission_are_422(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    task_id = _lease(client, migrated_engine, storage)
    mask = json.dumps(
        {"encoding": "rle", "width": WIDTH, "height": HEIGHT, "counts": [WIDTH * HEIGHT]}
    )
    body = f'{{"mask": {mask}, "client_info": {{"zoom": NaN}}}}'
    response = _raw(client, f"/api/tasks/{task_id}/annotations", body)
    assert response.status_code == 422
    assert "client_info.zoom" in response.json()["detail"]


def test_projects_refuse_non_finite_rates_for_admins(
    client: TestClient, migrated_engine: Engine
) -> None:
    signup(client, "admin-nan@example.org")
    set_role(migrated_engine, UserRole.admin)
    for value in ("NaN", "Infinity", "-Infinity"):
        response = _raw(client, "/api/projects", f'{{"name": "p", "gold_rate": {value}}}')
        assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"/api/tasks/{2**40}/annotations"),
        ("POST", f"/api/tasks/{2**70}/annotations"),
        ("GET", f"/api/slices/{2**40}/images/flair.png"),
        ("GET", f"/api/slices/{2**70}/reference.png"),
        ("DELETE", f"/api/auth/tokens/{2**63}"),
        ("POST", f"/api/tasks/next?project_id={2**70}"),
        ("POST", "/api/tasks/next?project_id=-1"),
        ("GET", "/api/slices/0/images/flair.png"),
    ],
)
def test_ids_beyond_the_column_range_are_422(client: TestClient, method: str, path: str) -> None:
    signup(client, "ids@example.org")
    body = {"mask": {"encoding": "rle", "width": 1, "height": 1, "counts": [1]}}
    response = client.request(method, path, json=body if "annotations" in path else None)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "bad", ["nul\x00@example.org", "\ud800@example.org"], ids=["nul", "surrogate"]
)
def test_unstorable_text_is_422(client: TestClient, bad: str) -> None:
    # json.dumps writes both as escapes, which JSON allows and Python decodes.
    for path, body in [
        ("/api/auth/signup", {"email": bad, "password": PASSWORD}),
        ("/api/auth/login", {"email": bad, "password": PASSWORD}),
    ]:
        response = _raw(client, path, json.dumps(body))
        assert response.status_code == 422, response.text
        assert "email" in response.json()["detail"]
    signup(client, "text@example.org")
    token = _raw(client, "/api/auth/tokens", json.dumps({"name": "a\x00b"}))
    assert token.status_code == 422


def test_client_info_has_a_typed_bounded_shape(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    task_id = _lease(client, migrated_engine, storage)
    mask = {"encoding": "rle", "width": WIDTH, "height": HEIGHT, "counts": [WIDTH * HEIGHT]}
    for junk in [{"junk": "x" * 1000}, {"ui": "x" * 41}, {"viewport": [1, 2, 3]}]:
        response = client.post(
            f"/api/tasks/{task_id}/annotations", json={"mask": mask, "client_info": junk}
        )
        assert response.status_code == 422, junk
    ok = client.post(
        f"/api/tasks/{task_id}/annotations",
        json={"mask": mask, "client_info": {"ui": "studio", "viewport": [390, 844]}},
    )
    assert ok.status_code == 201
    with Session(migrated_engine) as session:
        stored = session.exec(select(Annotation.client_info)).one()
    assert stored == {"ui": "studio", "viewport": [390, 844]}


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"email": "a@b.org", "password": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


def test_a_chunked_body_is_cut_off_at_the_limit(client: TestClient) -> None:
    # No Content-Length: the limit is counted as the body streams in.
    response = client.post(
        "/api/auth/login",
        content=_chunks(MAX_BODY_BYTES + 1024 * 1024),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert len(response.content) < 200
    declared = client.post(
        "/api/auth/login",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Length": str(10**12)},
    )
    assert declared.status_code in (400, 413)


def test_validation_errors_never_echo_what_was_sent(client: TestClient) -> None:
    secret = "my secret password that is long" * 3
    response = client.post(
        "/api/auth/signup", json={"email": "bad", "password": secret, "display_name": "!"}
    )
    assert response.status_code == 422
    assert "secret" not in response.text
    assert "'bad'" not in response.text
    body = response.json()
    assert {tuple(e["loc"]) for e in body["errors"]} == {
        ("body", "email"),
        ("body", "display_name"),
    }
    assert all(set(e) == {"loc", "msg", "type"} for e in body["errors"])


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    for path in ("/", "/api/health", "/static/app.js", "/api/auth/me", "/nowhere"):
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
    # Personal API answers are never stored by a browser.
    assert client.get("/api/auth/me").headers["cache-control"] == "no-store"


def test_every_reproduction_of_issue_17_against_a_live_server(pg_url: str, tmp_path: Path) -> None:
    """The problems found on the foundation, each sent over HTTP to ``mscrowd serve`` on
    PostgreSQL, all answered 4xx or as specified, and the process alive at the end."""
    import subprocess

    from backend.core.db import create_db_engine

    data_dir = tmp_path / "var"
    env = cli_env(data_dir, MSCROWD_DATABASE_URL=pg_url)
    subprocess.run([*CLI, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    engine = create_db_engine(pg_url)
    with Session(engine) as session:
        create_tasks(session, Storage((data_dir / "storage").as_uri()), count=2)
        session.commit()
    engine.dispose()
    with live_server(env, "--no-worker") as (base, server), httpx.Client(base_url=base) as http:
        signed = http.post(
            "/api/auth/signup", json={"email": "v@example.org", "password": PASSWORD}
        )
        http.headers["X-CSRF-Token"] = signed.json()["csrf_token"]
        http.post("/api/auth/consent", json={"version": consent.VERSION}).raise_for_status()
        rle: dict[str, Any] = {"encoding": "rle", "width": WIDTH, "height": HEIGHT}
        # 1. The segfault payload, without and with a lease.
        crash = {"mask": {**rle, "counts": CRASH_COUNTS}}
        assert http.post("/api/tasks/1/annotations", json=crash).status_code == 422
        # 5. Leases only by POST.
        assert http.get("/api/tasks/next").status_code == 405
        task_id = http.post("/api/tasks/next").json()["id"]
        assert http.post(f"/api/tasks/{task_id}/annotations", json=crash).status_code == 422
        # 2. A chunked body is cut off; a 422 never echoes a password.
        streamed = http.post(
            "/api/auth/login",
            content=_chunks(MAX_BODY_BYTES + 1024 * 1024),
            headers={"Content-Type": "application/json"},
        )
        assert streamed.status_code == 413
        echoed = http.post("/api/auth/signup", json={"email": "x", "password": "hunter2hunter2"})
        assert echoed.status_code == 422
        assert "hunter2" not in echoed.text
        # 4. NaN, ids beyond the column, NUL bytes.
        nan = http.post(
            "/api/auth/login",
            content=b'{"email": "a@b.org", "password": NaN}',
            headers={"Content-Type": "application/json"},
        )
        assert nan.status_code == 422
        assert http.post(f"/api/tasks/{2**40}/annotations", json=crash).status_code == 422
        assert http.post(f"/api/tasks/next?project_id={2**70}").status_code == 422
        nul = http.post("/api/auth/login", json={"email": "a\x00@b.org", "password": "x"})
        assert nul.status_code == 422
        assert http.post("/api/auth/tokens", json={"name": "a\x00"}).status_code == 422
        # 7. Same key, different body: 422; tokens expire and cannot mint tokens.
        empty = {"mask": {**rle, "counts": [WIDTH * HEIGHT]}}
        key = {"Idempotency-Key": "k-1"}
        url = f"/api/tasks/{task_id}/annotations"
        assert http.post(url, json=empty, headers=key).status_code == 201
        assert http.post(url, json=empty, headers=key).status_code == 200
        painted = {"mask": {**rle, "counts": [0, WIDTH * HEIGHT]}}
        assert http.post(url, json=painted, headers=key).status_code == 422
        token = http.post("/api/auth/tokens", json={"name": "script"}).json()
        assert token["expires_at"]
        bearer = {"Authorization": f"Bearer {token['token']}"}
        assert http.post("/api/auth/tokens", json={"name": "x"}, headers=bearer).status_code == 403
        # 6. Headers on every answer; health tells anyone only that it is up.
        health = httpx.get(f"{base}/api/health")
        assert health.json()["database"] is None
        assert "frame-ancestors 'none'" in health.headers["content-security-policy"]
        assert health.headers["x-content-type-options"] == "nosniff"
        # 3. Guessing one account from elsewhere throttles that browser, not the owner's.
        with httpx.Client(base_url=base) as attacker:
            guesses = [
                attacker.post(
                    "/api/auth/login", json={"email": "v@example.org", "password": "guess-guess"}
                ).status_code
                for _ in range(8)
            ]
            unknown = [
                attacker.post(
                    "/api/auth/login", json={"email": "nobody@example.org", "password": "guess"}
                ).status_code
                for _ in range(8)
            ]
        assert guesses == unknown
        assert guesses[:5] == [401] * 5
        assert guesses[-1] == 429
        owner = http.post("/api/auth/login", json={"email": "v@example.org", "password": PASSWORD})
        assert owner.status_code == 200
        assert server.poll() is None, "the server process died"
