"""The audit log: each action leaves its entry (an import with its de-identification report, an
account given a role, a privileged sign-in, consent, a suspension and a reinstatement), admins
page and filter it, nobody else reads it, and nobody can change or delete an entry, not even
with SQL through the app's own connection."""

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session, select

from backend.audit import service as audit
from backend.audit.models import AuditAction, AuditEntry
from backend.auth import service as auth
from backend.auth.models import User, UserRole
from backend.core.storage import Storage
from backend.imaging import dicom
from backend.imaging.service import CaseMeta, import_source
from backend.quality import service as quality
from tests.backend.imaging.test_dicom import _study
from tests.backend.quality.test_gold import _normal_tasks, create_case
from tests.factories import PASSWORD, create_project, signup


def _admin_client(client: TestClient, engine: Engine) -> TestClient:
    with Session(engine) as session:
        auth.create_user(
            session=session, email="root@example.org", password=PASSWORD, role=UserRole.admin
        )
        session.commit()
    admin = TestClient(client.app)
    signed = admin.post("/api/auth/login", json={"email": "root@example.org", "password": PASSWORD})
    assert signed.status_code == 200, signed.text
    admin.headers["X-CSRF-Token"] = signed.json()["csrf_token"]
    return admin


def test_actions_leave_entries_that_admins_read(
    client: TestClient, migrated_engine: Engine, storage: Storage, tmp_path: Path
) -> None:
    audit.install()
    admin = _admin_client(client, migrated_engine)
    signup(client, "volunteer@example.org")
    with Session(migrated_engine) as session:
        project = create_project(session, min_labels=1)
        slices = create_case(session, storage, project, [np.zeros((16, 24), bool)] * 3)
        _normal_tasks(session, project, slices)
        (study,) = dicom.scan(_study(tmp_path))
        imported = import_source(
            session=session,
            storage=storage,
            project=project,
            source=dicom.load_study(study),
            meta=CaseMeta("a test", "CC0"),
        )
        session.commit()
        project_id = project.id or 0
    lease = client.post("/api/tasks/next").json()  # one answer: a record to suspend
    width, height = lease["slice"]["width"], lease["slice"]["height"]
    empty = {"encoding": "rle", "width": width, "height": height, "counts": [width * height]}
    sent = client.post(f"/api/tasks/{lease['id']}/annotations", json={"mask": empty})
    assert sent.status_code == 201, sent.text
    with Session(migrated_engine) as session:
        volunteer = session.exec(select(User).where(User.email == "volunteer@example.org")).one()
        root = session.exec(select(User).where(User.email == "root@example.org")).one()
        volunteer_id, root_id = volunteer.id or 0, root.id or 0
        for suspend in (True, False):
            quality.set_suspension(
                session=session,
                project_id=project_id,
                user_id=volunteer_id,
                suspend=suspend,
                reason="spam answers" if suspend else "reviewed: honest",
                expert_id=root_id,
            )
            session.commit()
    page = admin.get("/api/audit?limit=200").json()
    actions = [row["action"] for row in page["rows"]]
    assert page["total"] == len(actions)
    for action in ("role_change", "login", "consent_change", "case_import", "suspension"):
        assert action in actions, action
    assert "reinstatement" in actions
    assert actions.index("reinstatement") < actions.index("suspension")  # newest first
    (entry,) = [r for r in page["rows"] if r["action"] == "case_import"]
    assert entry["object_id"] == imported.case_public_id
    assert entry["detail"]["slices"] == imported.slices
    assert entry["detail"]["deidentification"]["files"] == 36  # the report, counts only
    suspension = next(r for r in page["rows"] if r["action"] == "suspension")
    assert (suspension["object_type"], suspension["object_id"]) == ("rater", str(volunteer_id))
    assert suspension["actor_id"] == root_id
    assert suspension["detail"]["reason"] == "spam answers"
    login = next(r for r in page["rows"] if r["action"] == "login")
    assert (login["actor_id"], login["actor_role"]) == (root_id, "admin")
    # Filters: by action, by object, by time.
    only = admin.get("/api/audit?action=suspension").json()
    assert {r["action"] for r in only["rows"]} == {"suspension"}
    mine = admin.get(f"/api/audit?object_type=rater&object_id={volunteer_id}").json()
    assert {r["action"] for r in mine["rows"]} == {"suspension", "reinstatement"}
    later = admin.get("/api/audit", params={"since": "2999-01-01T00:00:00Z"}).json()
    assert later == {"total": 0, "offset": 0, "rows": []}
    # Bad input, with its reason; nobody but admins.
    assert admin.get("/api/audit?since=2026-01-01T00:00:00").status_code == 422
    bad = admin.get(
        "/api/audit", params={"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    )
    assert bad.status_code == 422
    assert admin.get("/api/audit?action=delete").status_code == 422
    assert client.get("/api/audit").status_code == 403
    assert TestClient(client.app).get("/api/audit").status_code == 401
    # No route changes the log.
    assert admin.delete("/api/audit").status_code == 405


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_log SET object_id = 'x'", "DELETE FROM audit_log"]
)
def test_entries_cannot_be_changed_or_deleted(migrated_engine: Engine, statement: str) -> None:
    with Session(migrated_engine) as session:
        audit.record(session, AuditAction.case_import, object_type="case", object_id="c1")
        session.commit()
    with pytest.raises(DatabaseError, match="append-only"), migrated_engine.begin() as c:
        c.execute(text(statement))
    if migrated_engine.dialect.name == "postgresql":
        with pytest.raises(DatabaseError, match="append-only"), migrated_engine.begin() as c:
            c.execute(text("TRUNCATE audit_log"))
    with Session(migrated_engine) as session:
        (entry,) = session.exec(select(AuditEntry)).all()
        assert entry.object_id == "c1"
