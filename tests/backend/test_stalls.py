"""No request stalls the server (issue 33): hostile bodies are refused before they cost much,
and every refusal, 413 and 500 included, is ``ErrorRead`` JSON with the security headers.

Each test here sends a request that was reproduced on the old code: a made-up bearer token
with 3 MB of negative run lengths (25 s of validation), 3.7 MB of unknown JSON keys at login
(9 s), a 65-byte PNG declaring 16384 x 16384 pixels (a 500), and an unhandled error (a plain
text 500 without headers).
"""

import base64
import json
import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from backend.annotations.masks import InvalidMask, decode_png
from backend.auth import service as auth
from backend.auth.models import UserRole
from backend.core.storage import Storage
from backend.main import MAX_BODY_BYTES
from tests.factories import (
    HEIGHT,
    PASSWORD,
    WIDTH,
    create_tasks,
    create_token,
    png_bomb,
    signup,
)

# Timed or loading both cores: run alone (make test's second pytest run), not beside
# another xdist worker.
pytestmark = pytest.mark.solo

NEGATIVE_RUNS = {"encoding": "rle", "width": WIDTH, "height": HEIGHT, "counts": [-1] * 1_000_000}


def _json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _post(client: TestClient, path: str, body: bytes, **headers: str) -> httpx.Response:
    return client.post(path, content=body, headers={"Content-Type": "application/json", **headers})


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """``response`` is the ``ErrorRead`` of ``status`` and ``code``, with the headers."""
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    body: dict[str, Any] = response.json()
    # ``href`` only where there is somewhere to go (the tutorial, for qualification_required).
    assert set(body) - {"href"} == {"detail", "code", "errors"}
    assert body["code"] == code
    return body


def _lease(client: TestClient, engine: Engine, storage: Storage) -> int:
    with Session(engine) as session:
        create_tasks(session, storage, count=2)
        session.commit()
    signup(client, "stall@example.org")
    lease: int = client.post("/api/tasks/next").json()["id"]
    return lease


def test_a_made_up_token_is_refused_before_its_body_is_read(client: TestClient) -> None:
    body = _json({"mask": NEGATIVE_RUNS})
    assert len(body) > 3_000_000
    started = time.perf_counter()
    response = _post(client, "/api/tasks/1/annotations", body, Authorization="Bearer x")
    # The old code validated the body first: 25 s, then a 422 listing 50 of 1,000,000 errors.
    assert_error(response, 401, "not_authenticated")
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize(
    "path", ["/api/tasks/1/annotations", "/api/quality/slices/1/gold"], ids=["submit", "gold"]
)
def test_large_bodies_are_not_even_parsed_for_strangers(client: TestClient, path: str) -> None:
    # Not JSON at all: parsed first, as before, it would be a 422.
    body = b"{" + b"x" * 3_000_000
    assert_error(_post(client, path, body, Authorization="Bearer x"), 401, "not_authenticated")
    chunked = client.post(path, content=iter([body]), headers={"Content-Type": "application/json"})
    assert_error(chunked, 401, "not_authenticated")


def test_a_volunteer_s_bad_runs_cost_one_error(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    lease = _lease(client, migrated_engine, storage)
    url = f"/api/tasks/{lease}/annotations"
    # Over the mask route's limit (from max_mask_bytes): refused as it arrives.
    assert_error(_post(client, url, _json({"mask": NEGATIVE_RUNS})), 413, "body_too_large")
    # Within it: the first bad run stops validation (fail_fast), not 100,000 errors built.
    runs = {**NEGATIVE_RUNS, "counts": [-1] * 100_000}
    refused = assert_error(_post(client, url, _json({"mask": runs})), 422, "invalid_input")
    assert [e["loc"] for e in refused["errors"]] == [["body", "mask", "rle", "counts", 0]]
    # Unknown fields by the thousand: one error says how many.
    junk = {"mask": {**runs, "counts": [WIDTH * HEIGHT]}} | {f"k{i}": 1 for i in range(5000)}
    many = assert_error(_post(client, url, _json(junk)), 422, "invalid_input")
    assert len(many["errors"]) == 1
    assert "5000 unknown fields" in many["detail"]
    # The lease survived it all.
    mask = {"encoding": "rle", "width": WIDTH, "height": HEIGHT, "counts": [WIDTH * HEIGHT]}
    assert client.post(url, json={"mask": mask}).status_code == 201


def test_login_refuses_megabytes_of_keys_before_parsing(client: TestClient) -> None:
    keys = {f"k{i:06d}": 0 for i in range(320_000)} | {"email": "a@b.org", "password": "x"}
    body = _json(keys)
    assert len(body) > 3_500_000
    started = time.perf_counter()
    assert_error(_post(client, "/api/auth/login", body), 413, "body_too_large")
    assert time.perf_counter() - started < 2
    # Within the auth routes' small limit, still one error for all the unknown keys.
    few = _json({f"k{i}": 0 for i in range(300)} | {"email": "a@b.org", "password": "x"})
    refused = assert_error(_post(client, "/api/auth/login", few), 422, "invalid_input")
    assert len(refused["errors"]) == 1
    # A long unknown key is named, not echoed in full.
    long_key = _json({"k" * 3000: 0, "email": "a@b.org", "password": "x"})
    named = assert_error(_post(client, "/api/auth/login", long_key), 422, "invalid_input")
    assert len(named["errors"][0]["loc"][-1]) <= 64
    assert len(named["detail"]) < 200


def test_a_declared_body_over_the_limit_is_a_json_413_even_unread(client: TestClient) -> None:
    # Logout never reads its body; Starlette then answered its own plain-text 413, outside
    # every middleware of ours (no JSON, no security headers).
    body = b"{" + b" " * MAX_BODY_BYTES + b"}"
    assert_error(_post(client, "/api/auth/logout", body), 413, "body_too_large")


def test_a_submission_must_be_json(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    lease = _lease(client, migrated_engine, storage)
    response = client.post(
        f"/api/tasks/{lease}/annotations", content=b"mask=1", headers={"Content-Type": "text/plain"}
    )
    assert_error(response, 415, "unsupported_media_type")


def test_a_png_bomb_is_refused_by_its_declared_size(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    bomb = base64.b64encode(png_bomb()).decode()
    with pytest.raises(InvalidMask, match="16384x16384"):
        decode_png(bomb, width=WIDTH, height=HEIGHT, max_bytes=10_000)
    lease = _lease(client, migrated_engine, storage)
    sent = client.post(
        f"/api/tasks/{lease}/annotations", json={"mask": {"encoding": "png", "data": bomb}}
    )
    assert "16384x16384" in assert_error(sent, 422, "invalid_mask")["detail"]
    # The expert's gold painting decodes masks the same way.
    with Session(migrated_engine) as session:
        (task,) = create_tasks(session, storage, count=1)
        expert = auth.create_user(session=session, email="ex@example.org", password=PASSWORD)
        expert.role = UserRole.expert
        token = create_token(session, expert)
        session.commit()
        slice_id = task.slice_id
    gold = client.post(
        f"/api/quality/slices/{slice_id}/gold",
        json={"source": "expert", "mask": {"encoding": "png", "data": bomb}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_error(gold, 422, "invalid_mask")


def test_an_unhandled_error_is_a_json_500_that_says_nothing(client: TestClient) -> None:
    def boom() -> None:
        raise RuntimeError(f"internal state at {hex(id(client))}")

    client.app.add_api_route("/api/boom", boom)  # type: ignore[attr-defined]
    with TestClient(client.app, raise_server_exceptions=False) as quiet:
        response = quiet.get("/api/boom")
    body = assert_error(response, 500, "internal_error")
    assert "0x" not in response.text
    assert "internal state" not in body["detail"]
    assert response.headers["cache-control"] == "no-store"
