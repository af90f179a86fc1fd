"""What the volunteer studio needs of the API beyond leasing and submitting: consent before the
first task, pseudonym-only accounts, skip, problem reports (seen by experts) and a prefetched
next task."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from backend.auth import consent
from backend.auth.models import User, UserRole
from backend.core.config import Settings
from backend.core.storage import Storage
from backend.main import create_app
from backend.tasks.models import Assignment, AssignmentState, TaskReport
from tests.factories import PASSWORD, create_tasks, rle, set_role, signup


def _seed(engine: Engine, storage: Storage, **kwargs: int) -> list[int]:
    with Session(engine) as session:
        tasks = create_tasks(session, storage, **kwargs)
        session.commit()
        return [t.id for t in tasks if t.id is not None]


@pytest.fixture
def second(migrated_engine: Engine, app_settings: Settings) -> Iterator[TestClient]:
    """Another browser (its own cookie jar) on the same app and database."""
    with TestClient(create_app(app_settings, engine=migrated_engine)) as other:
        yield other


def _task_of(engine: Engine, lease_id: int) -> int:
    with Session(engine) as session:
        lease = session.get(Assignment, lease_id)
        assert lease is not None
        return lease.task_id


def test_volunteers_accept_the_current_consent_before_their_first_task(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    _seed(migrated_engine, storage, count=2)
    text = client.get("/api/auth/consent").json()  # shown before signing in, too
    assert text["version"] == consent.VERSION
    assert any("research datasets" in point for point in text["points"])
    signed = client.post("/api/auth/signup", json={"email": "c@example.org", "password": PASSWORD})
    client.headers["X-CSRF-Token"] = signed.json()["csrf_token"]
    assert signed.json()["user"]["consent_current"] is False
    refused = client.post("/api/tasks/next")
    assert refused.status_code == 403
    assert "consent" in refused.json()["detail"]
    old = client.post("/api/auth/consent", json={"version": "2020-01-01"})
    assert old.status_code == 409  # a text the person was not shown is never recorded
    assert client.get("/api/auth/me").json()["consent_version"] is None
    agreed = client.post("/api/auth/consent", json={"version": consent.VERSION})
    assert agreed.status_code == 200
    me = client.get("/api/auth/me").json()
    assert me["consent_current"] is True
    assert me["consent_version"] == consent.VERSION
    assert me["consent_at"] is not None
    assert client.post("/api/tasks/next").status_code == 200
    # Staff work under their institution's agreements: no consent screen for them.
    with Session(migrated_engine) as session:
        user = session.exec(select(User)).one()
        user.consent_version = None
        session.add(user)
        session.commit()
    assert client.post("/api/tasks/next").status_code == 403
    set_role(migrated_engine, UserRole.expert)
    assert client.post("/api/tasks/next").status_code == 200


def test_a_pseudonym_alone_is_an_account(client: TestClient, second: TestClient) -> None:
    signed = client.post(
        "/api/auth/signup", json={"display_name": "Lesion Hunter", "password": PASSWORD}
    )
    assert signed.status_code == 201, signed.text
    assert signed.json()["user"]["display_name"] == "Lesion Hunter"
    assert signed.json()["user"]["email"] is None
    # Neither a pseudonym nor an email: nothing to log in with.
    nameless = second.post("/api/auth/signup", json={"password": PASSWORD})
    assert nameless.status_code == 422
    assert "pseudonym" in nameless.text
    taken = second.post(
        "/api/auth/signup", json={"display_name": "lesion hunter", "password": PASSWORD}
    )
    assert taken.status_code == 409
    logged = second.post(
        "/api/auth/login", json={"display_name": "LESION HUNTER", "password": PASSWORD}
    )
    assert logged.status_code == 200
    assert logged.json()["user"]["display_name"] == "Lesion Hunter"
    wrong = second.post(
        "/api/auth/login", json={"display_name": "Lesion Hunter", "password": "x" * 12}
    )
    assert wrong.status_code == 401
    both = second.post(
        "/api/auth/login",
        json={"display_name": "Lesion Hunter", "email": "a@b.org", "password": PASSWORD},
    )
    assert both.status_code == 422


def test_an_account_with_both_names_logs_in_with_either(client: TestClient) -> None:
    body = {"email": "both@example.org", "display_name": "Both Names", "password": PASSWORD}
    assert client.post("/api/auth/signup", json=body).status_code == 201
    for name in ({"email": "BOTH@example.org"}, {"display_name": "both names"}):
        assert (
            client.post("/api/auth/login", json={**name, "password": PASSWORD}).status_code == 200
        )


def test_skip_frees_the_slot_at_once_and_never_serves_the_task_again(
    client: TestClient, second: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    (task_id,) = _seed(migrated_engine, storage, count=1, required_labels=1)
    signup(client, "s1@example.org")
    signup(second, "s2@example.org")
    lease = client.post("/api/tasks/next").json()["id"]
    assert second.post("/api/tasks/next").status_code == 204  # the one slot is held
    assert second.post(f"/api/tasks/{lease}/skip").status_code == 404  # not theirs
    assert client.post(f"/api/tasks/{lease}/skip").status_code == 204
    other = second.post("/api/tasks/next")
    assert other.status_code == 200  # at once, not after the lease would have expired
    assert _task_of(migrated_engine, other.json()["id"]) == task_id
    assert client.post("/api/tasks/next").status_code == 204  # not offered again to the skipper
    late = client.post(f"/api/tasks/{lease}/annotations", json={"mask": rle().model_dump()})
    assert late.status_code == 409
    assert "skipped" in late.json()["detail"]
    done = second.post(
        f"/api/tasks/{other.json()['id']}/annotations", json={"mask": rle().model_dump()}
    )
    assert done.status_code == 201
    assert second.post(f"/api/tasks/{other.json()['id']}/skip").status_code == 409
    with Session(migrated_engine) as session:
        states = {a.state for a in session.exec(select(Assignment))}
    assert states == {AssignmentState.skipped, AssignmentState.submitted}


def test_problem_reports_release_the_lease_and_reach_experts(
    client: TestClient, second: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    _seed(migrated_engine, storage, count=2, required_labels=1)
    signup(client, "r1@example.org")
    lease = client.post("/api/tasks/next").json()["id"]
    bad = client.post(f"/api/tasks/{lease}/report", json={"reason": "broken"})
    assert bad.status_code == 422
    long = client.post(f"/api/tasks/{lease}/report", json={"reason": "other", "note": "x" * 501})
    assert long.status_code == 422
    report = client.post(
        f"/api/tasks/{lease}/report", json={"reason": "artefact", "note": "  motion ringing  "}
    )
    assert report.status_code == 201
    assert report.json()["note"] == "motion ringing"
    assert client.post("/api/tasks/next").json()["id"] != lease  # released, and not again
    assert client.get("/api/reports").status_code == 403  # volunteers do not see the list
    signup(second, "expert@example.org")
    with Session(migrated_engine) as session:
        expert = session.exec(select(User).where(User.email == "expert@example.org")).one()
        expert.role = UserRole.expert
        session.add(expert)
        session.commit()
    listed = second.get("/api/reports").json()
    assert len(listed) == 1
    (row,) = listed
    assert row["reason"] == "artefact"
    assert row["reporter"] == client.get("/api/auth/me").json()["display_name"]
    assert row["case_public_id"]
    assert row["axis"] == "axial"
    assert row["resolved_at"] is None
    assert second.get("/api/reports", params={"project_id": row["project_id"] + 1}).json() == []
    resolved = second.post(f"/api/reports/{row['id']}/resolve")
    assert resolved.status_code == 200
    assert resolved.json()["resolved_at"] is not None
    assert second.get("/api/reports").json() == []
    assert len(second.get("/api/reports", params={"unresolved": False}).json()) == 1
    assert second.post("/api/reports/999/resolve").status_code == 404
    with Session(migrated_engine) as session:
        assert len(session.exec(select(TaskReport)).all()) == 1


def test_the_next_task_is_prefetched_while_the_volunteer_paints(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    _seed(migrated_engine, storage, count=3)
    signup(client, "p@example.org")
    current = client.post("/api/tasks/next").json()["id"]
    ahead = client.post("/api/tasks/next", params={"after": current}).json()["id"]
    assert ahead != current
    assert _task_of(migrated_engine, ahead) != _task_of(migrated_engine, current)
    # Asked again (a reload), the same two leases: never a third.
    assert client.post("/api/tasks/next").json()["id"] == current
    assert client.post("/api/tasks/next", params={"after": current}).json()["id"] == ahead
    stored = client.post(f"/api/tasks/{current}/annotations", json={"mask": rle().model_dump()})
    assert stored.status_code == 201
    assert client.post("/api/tasks/next").json()["id"] == ahead  # the prefetched one is next
    with Session(migrated_engine) as session:
        assert len(session.exec(select(Assignment)).all()) == 2
