"""Problem reports are bounded (one per task, a few an hour) and their text is normalised; so
are pseudonyms (issue 33)."""

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from backend.auth.models import User
from backend.core.storage import Storage
from backend.core.text import normalise_text
from backend.tasks.models import TaskReport
from tests.backend.test_stalls import assert_error
from tests.factories import PASSWORD, create_tasks, signup

# Right-to-left override and isolate, zero-width space and joiner, byte order mark, a bell.
HOSTILE = "\u202egpj.exe\u202c \u2066x\u2069 a\u200bb\u200dc\ufeff\x07 cafe\u0301\nline two"


def _leases(client: TestClient, engine: Engine, storage: Storage, count: int) -> list[int]:
    with Session(engine) as session:
        create_tasks(session, storage, count=count)
        session.commit()
    signup(client, "reporter@example.org")
    leases = []
    for _ in range(count):
        leases.append(client.post("/api/tasks/next").json()["id"])
        client.post(f"/api/tasks/{leases[-1]}/skip")
    return leases


def _stored(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(TaskReport.note)).all())


def test_one_report_per_task_however_often_it_is_sent(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    (lease,) = _leases(client, migrated_engine, storage, 1)
    body = {"reason": "bad_image", "note": "dark"}
    assert client.post(f"/api/tasks/{lease}/report", json=body).status_code == 201
    for _ in range(5):
        again = client.post(f"/api/tasks/{lease}/report", json=body)
        assert_error(again, 409, "already_reported")
    assert _stored(migrated_engine) == ["dark"]


def test_reports_are_limited_per_hour(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    leases = _leases(client, migrated_engine, storage, 3)
    client.app.state.settings.reports_per_user_per_hour = 2  # type: ignore[attr-defined]
    body = {"reason": "unsure"}
    sent = [client.post(f"/api/tasks/{lease}/report", json=body) for lease in leases]
    assert [r.status_code for r in sent[:2]] == [201, 201]
    assert_error(sent[2], 429, "too_many_reports")
    assert 0 < int(sent[2].headers["retry-after"]) <= 3600
    assert len(_stored(migrated_engine)) == 2


def test_report_notes_lose_direction_and_invisible_characters(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    (lease,) = _leases(client, migrated_engine, storage, 1)
    sent = client.post(f"/api/tasks/{lease}/report", json={"reason": "other", "note": HOSTILE})
    assert sent.status_code == 201, sent.text
    expected = "gpj.exe x abc café\nline two"
    assert sent.json()["note"] == expected
    assert _stored(migrated_engine) == [expected]
    assert normalise_text(HOSTILE, newlines=False) == "gpj.exe x abc caféline two"


def test_pseudonyms_are_normalised_and_log_in_as_shown(client: TestClient) -> None:
    signed = client.post(
        "/api/auth/signup", json={"display_name": "\u202eAda\u200b Lovelace", "password": PASSWORD}
    )
    assert signed.status_code == 201, signed.text
    assert signed.json()["user"]["display_name"] == "Ada Lovelace"
    again = client.post(
        "/api/auth/login", json={"display_name": "Ada\ufeff Lovelace", "password": PASSWORD}
    )
    assert again.status_code == 200, again.text


def test_reserved_pseudonyms_are_refused(client: TestClient, migrated_engine: Engine) -> None:
    reserved = ["Admin", "ADMIN", " admin ", "Adm1n", "expert_team", "Expert Team", "mscrowd"]
    reserved += ["SiteAdmin", "AdminBot", "ModeratorTeam", "admins", "the admins"]
    reserved += ["MS-Crowd fan", "moderator", "staff", "support", "System", "root", "r00t"]
    reserved += ["admin42", "Sys.tem", "Supp0rt"]
    for name in reserved:
        refused = client.post("/api/auth/signup", json={"display_name": name, "password": PASSWORD})
        assert_error(refused, 422, "reserved_name")
    for name in ("badminton", "Rooted Otter", "Teamwork", "amber-otter-0042"):
        fine = client.post("/api/auth/signup", json={"display_name": name, "password": PASSWORD})
        assert fine.status_code == 201, (name, fine.text)
        client.cookies.clear()
    with Session(migrated_engine) as session:
        assert len(session.exec(select(User)).all()) == 4
