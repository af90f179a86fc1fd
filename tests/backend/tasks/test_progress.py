"""The studio's counters from the server: answers today and in all, skips and reports apart,
the same after a reload (a new request) and refused for a day offset no clock has."""

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from backend.annotations.models import Annotation
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.tasks.progress import day_start
from tests.factories import create_tasks, rle, signup


def _answer(client: TestClient, key: str) -> None:
    lease = client.post("/api/tasks/next").json()
    body = {"mask": rle().model_dump(), "duration_ms": 6000}
    stored = client.post(
        f"/api/tasks/{lease['id']}/annotations", json=body, headers={"Idempotency-Key": key}
    )
    assert stored.status_code == 201, stored.text


def test_answers_count_skips_and_reports_do_not(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        create_tasks(session, storage, count=6)
        session.commit()
    signup(client, "counter@example.org")
    empty = client.get("/api/tasks/progress")
    assert empty.status_code == 200
    assert empty.json() == {
        "answers": 0,
        "answers_today": 0,
        "skipped": 0,
        "skipped_today": 0,
        "reported": 0,
    }
    _answer(client, "one")
    _answer(client, "two")
    lease = client.post("/api/tasks/next").json()
    assert client.post(f"/api/tasks/{lease['id']}/skip").status_code == 204
    lease = client.post("/api/tasks/next").json()
    reported = client.post(f"/api/tasks/{lease['id']}/report", json={"reason": "artefact"})
    assert reported.status_code == 201
    counts = client.get("/api/tasks/progress", params={"utc_offset": 120}).json()
    assert counts == {
        "answers": 2,
        "answers_today": 2,
        "skipped": 2,  # the skip and the report: slices given back, never answers
        "skipped_today": 2,
        "reported": 1,
    }
    # An answer from two days ago counts in all, not today; the same on every reload.
    with Session(migrated_engine) as session:
        first = session.exec(select(Annotation).order_by(col(Annotation.id))).first()
        assert first is not None
        first.created_at = utcnow() - timedelta(days=2)
        session.add(first)
        session.commit()
    for _reload in range(2):
        again = client.get("/api/tasks/progress")
        assert (again.json()["answers"], again.json()["answers_today"]) == (2, 1)
    assert again.headers["cache-control"] == "no-store"  # personal: never kept by a browser


def test_the_day_starts_at_the_callers_midnight() -> None:
    now = datetime(2025, 3, 10, 23, 30, tzinfo=UTC)
    assert day_start(0, now) == datetime(2025, 3, 10, tzinfo=UTC)
    # Berlin in winter (UTC+1): it is 00:30 on the 11th there, a day that began at 23:00 UTC.
    assert day_start(60, now) == datetime(2025, 3, 10, 23, tzinfo=UTC)
    # New York (UTC-5): 18:30 on the 10th, since 05:00 UTC.
    assert day_start(-300, now) == datetime(2025, 3, 10, 5, tzinfo=UTC)


def test_progress_needs_a_sign_in_and_a_real_offset(client: TestClient) -> None:
    refused = client.get("/api/tasks/progress")
    assert refused.status_code == 401
    assert refused.json()["code"] == "not_authenticated"
    signup(client, "offset@example.org")
    for bad in ("900", "-721", "noon"):
        invalid = client.get("/api/tasks/progress", params={"utc_offset": bad})
        assert invalid.status_code == 422
        assert invalid.json()["code"] == "invalid_input"
