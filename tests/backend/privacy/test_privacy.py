"""Consent scopes, case withdrawal and account erasure, attacked the way people would: a
volunteer holding a lease on a case as it is withdrawn or its consent taken back, replays of
old ids and URLs, a second withdrawal, a re-import of the same files, an erased account's
session and token, a wrong password. On PostgreSQL (the locks and cascades that matter)."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, text
from sqlmodel import Session, col, select

from backend.annotations.models import Annotation
from backend.audit.models import AuditAction, AuditEntry
from backend.auth import consent
from backend.auth.models import Credential, User, UserRole
from backend.core.config import Settings
from backend.core.db import create_db_engine, transaction
from backend.core.migrations import upgrade
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.fusion import labels
from backend.fusion import service as fusion
from backend.fusion.models import FusionResult
from backend.gamification.models import PointTotal
from backend.imaging import service as imaging
from backend.imaging.models import Case, ConsentScope, Slice
from backend.main import create_app
from backend.privacy.models import WithdrawnCase
from backend.projects.models import Project
from backend.rounds.models import LabelSource, ModelVersion
from backend.tasks import service as tasks
from backend.tasks.models import Assignment, Task, TaskKind, TaskState
from tests.backend.fusion.test_refuse import crowd
from tests.backend.quality.test_gold import _normal_tasks, create_case
from tests.factories import PASSWORD, create_project, create_token, rle

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    made = create_db_engine(pg_url)
    upgrade(made)
    yield made
    made.dispose()


@pytest.fixture
def store(tmp_path: Path) -> Storage:
    return Storage((tmp_path / "storage").as_uri())


@pytest.fixture
def api(
    engine: Engine, pg_url: str, settings_env: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[TestClient]:
    settings = Settings(database_url=pg_url, storage_url=(tmp_path / "storage").as_uri())
    with TestClient(create_app(settings, engine=engine)) as client:
        yield client


def bearer(engine: Engine, user_id: int, role: UserRole | None = None) -> dict[str, str]:
    with transaction(engine) as session:
        user = session.get_one(User, user_id)
        user.consent_version = consent.VERSION  # the consent gate has its own tests
        session.add(user)
        if role is not None:
            user.role = role
            session.add(user)
        return {"Authorization": f"Bearer {create_token(session, user)}"}


def admin(engine: Engine) -> dict[str, str]:
    from backend.auth import service as auth

    with transaction(engine) as session:
        made = auth.create_user(session=session, email="admin@example.org", password=PASSWORD)
        made.role = UserRole.admin
        session.add(made)
        session.flush()
        return {"Authorization": f"Bearer {create_token(session, made)}"}


def case_of(engine: Engine, task_id: int) -> Case:
    with Session(engine) as session:
        task = session.get_one(Task, task_id)
        return session.get_one(Case, session.get_one(Slice, task.slice_id).case_id)


def count(engine: Engine, table: str, where: str = "true") -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table} WHERE {where}")).one()[0])


def test_withdrawing_a_case_leaves_nothing_reachable_and_stops_every_later_use(
    engine: Engine, store: Storage, api: TestClient
) -> None:
    project_id, task_ids, volunteers, expert = crowd(engine, store, raters=3)
    case = case_of(engine, task_ids[0])
    # A slice still open, leased by a fourth volunteer as the withdrawal happens, a model
    # version trained on the case, and another case of the project that must stay whole.
    with transaction(engine) as session:
        project = session.get_one(Project, project_id)
        extra = Slice(
            case_id=case.id or 0, index=9, crop_x0=0, crop_y0=0, crop_x1=24, crop_y1=16,
            image_keys={}, brain_fraction=0.5,
        )  # fmt: skip
        session.add(extra)
        session.flush()
        (open_task,) = _normal_tasks(session, project, [extra])
        session.add(
            ModelVersion(
                project_id=project_id,
                labels=LabelSource.fused,
                snapshot={"cases": {case.public_id: 2}, "holdout": []},
            )
        )
    from backend.auth import service as auth

    with transaction(engine) as session:
        late = auth.create_user(session=session, email="late@example.org", password=PASSWORD)
        lease = tasks.next_task(session=session, user=late, lease_seconds=600)
        assert lease is not None
        assert lease.task.id == open_task.id
        held, late_id = lease.id, late.id or 0
        project = session.get_one(Project, project_id)
        (other,) = create_case(session, store, project, [np.zeros((16, 24), bool)])
        _normal_tasks(session, project, [other])
    late_headers = bearer(engine, late_id)
    expert_headers = bearer(engine, expert.id or 0, UserRole.expert)
    headers = admin(engine)
    with Session(engine) as session:
        slice_ids = list(session.exec(select(Slice.id).where(Slice.case_id == case.id)))
        masks = list(
            session.exec(select(Annotation.mask_key).where(col(Annotation.task_id).in_(task_ids)))
        )
    assert masks
    assert all(store.exists(k) for k in masks)
    assert store.list(f"cases/{case.public_id}")

    url = f"/api/privacy/cases/{case.public_id}/withdraw"
    wrong = api.post(url, json={"reason": "owner asked", "confirm": "x"}, headers=headers)
    assert (wrong.status_code, wrong.json()["code"]) == (422, "confirm_mismatch")
    assert api.post(url, json={"reason": "owner asked"}, headers=headers).status_code == 422
    body = {"reason": "x", "confirm": case.public_id}
    assert api.post(url, json=body, headers=late_headers).status_code == 403
    done = api.post(url, json={"reason": "owner asked", "confirm": case.public_id}, headers=headers)
    assert done.status_code == 200, done.text
    report = done.json()["report"]
    assert report["slices"] == 3
    assert report["tasks"] == 3
    assert report["active_leases"] == 1
    assert report["answers"] == 6
    assert report["model_versions_flagged"] == 1

    # Nothing of it is left in the database or storage...
    for table, where in [
        ("cases", f"id = {case.id}"),
        ("slices", f"case_id = {case.id}"),
        ("volumes", f"case_id = {case.id}"),
        ("tasks", f"id IN ({','.join(map(str, [*task_ids, open_task.id]))})"),
        ("annotations", f"task_id IN ({','.join(map(str, task_ids))})"),
        ("fusion_results", f"task_id IN ({','.join(map(str, task_ids))})"),
        ("assignments", f"id = {held}"),
    ]:
        assert count(engine, table, where) == 0, table
    assert store.list(f"cases/{case.public_id}") == []
    assert not any(store.exists(k) for k in masks)
    assert count(engine, "cases", f"project_id = {project_id}") == 1  # the other case stays
    # ... nor reachable through the API: old URLs, the held lease, the queue, the fused labels.
    for slice_id in slice_ids:
        got = api.get(f"/api/slices/{slice_id}/images/flair.png", headers=expert_headers)
        assert got.status_code == 404
    assert api.get(f"/api/fusion/tasks/{task_ids[0]}", headers=expert_headers).status_code == 404
    late_submit = api.post(
        f"/api/tasks/{held}/annotations", json={"mask": rle().model_dump()}, headers=late_headers
    )
    assert late_submit.status_code == 404, late_submit.text
    leased = api.post("/api/tasks/next", headers=late_headers)
    assert leased.status_code == 200
    with Session(engine) as session:
        got = session.get_one(Assignment, leased.json()["id"])
        assert session.get_one(Task, got.task_id).slice_id not in slice_ids
    # A second withdrawal and a consent change are told it is gone.
    again = api.post(url, json={"reason": "twice", "confirm": case.public_id}, headers=headers)
    assert (again.status_code, again.json()["code"]) == (404, "case_withdrawn")
    consent = api.put(
        f"/api/privacy/cases/{case.public_id}/consent", json={"scopes": []}, headers=headers
    )
    assert consent.status_code == 404
    # Later fusion runs and model versions lack it; the trained version is flagged.
    with transaction(engine) as session:
        run = fusion.fuse_project(session=session, storage=store, project_id=project_id)
        fused = session.exec(select(FusionResult.task_id).where(FusionResult.run_id == run.id))
        assert set(fused).isdisjoint(task_ids)
        version = session.exec(select(ModelVersion)).one()
        assert version.withdrawn_cases == [case.public_id]
        # The same files imported again are refused, not brought back.
        source = SimpleNamespace(name="again", fingerprint=case.source_sha256, report=None)
        outcome = imaging.import_source(
            session=session,
            storage=store,
            project=session.get_one(Project, project_id),
            source=cast(Any, source),
            meta=imaging.CaseMeta("test", "CC0"),
        )
        assert outcome.status == "skipped"
        assert "withdrawn" in outcome.message
        (entry,) = session.exec(
            select(AuditEntry).where(AuditEntry.action == AuditAction.withdrawal)
        ).all()
        assert entry.object_id == case.public_id
        assert entry.detail["answers"] == 6
        assert session.exec(select(WithdrawnCase)).one().public_id == case.public_id
    listed = api.get("/api/privacy/withdrawals", headers=headers).json()
    assert [w["public_id"] for w in listed] == [case.public_id]
    assert case.public_id not in [
        c["public_id"] for c in api.get("/api/privacy/cases", headers=headers).json()["rows"]
    ]


def test_consent_scopes_decide_crowd_tasks_and_a_lease_held_when_consent_is_taken_back(
    engine: Engine, store: Storage, api: TestClient
) -> None:
    from backend.auth import service as auth

    with transaction(engine) as session:
        project = create_project(session, min_labels=2)
        slices = create_case(session, store, project, [np.zeros((16, 24), bool)] * 3)
        case = session.get_one(Case, slices[0].case_id)
        case.allow(frozenset())  # imported as experts-only: no crowd tasks yet
        session.add(case)
        volunteer = auth.create_user(session=session, email="v@example.org", password=PASSWORD)
        other = auth.create_user(session=session, email="w@example.org", password=PASSWORD)
        public_id, volunteer_id, other_id = case.public_id, volunteer.id or 0, other.id or 0
        project_id, slice_ids = project.id or 0, [s.id or 0 for s in slices]
    headers, mine, theirs = admin(engine), bearer(engine, volunteer_id), bearer(engine, other_id)
    url = f"/api/privacy/cases/{public_id}/consent"
    assert api.post("/api/tasks/next", headers=mine).status_code == 204
    bad = api.put(url, json={"scopes": ["everything"]}, headers=headers)
    assert bad.status_code == 422
    extra = api.put(url, json={"scopes": [], "sneaky": 1}, headers=headers)
    assert extra.status_code == 422
    missing = api.put("/api/privacy/cases/nope/consent", json={"scopes": []}, headers=headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "case_not_found")
    assert api.put(url, json={"scopes": ["crowd_viewing"]}, headers=mine).status_code == 403

    granted = api.put(
        url, json={"scopes": ["crowd_viewing", "research_sharing"]}, headers=headers
    ).json()
    assert (granted["tasks_opened"], granted["after"]) == (3, ["crowd_viewing", "research_sharing"])
    leased = api.post("/api/tasks/next", headers=mine)
    assert leased.status_code == 200
    lease_id = leased.json()["id"]
    assert api.get(f"/api/tasks/{lease_id}/images/0/flair.png", headers=mine).status_code == 200
    # The other volunteer holds a check slice (gold) of the case and has a repeat due on it;
    # one crowd task is complete.
    with transaction(engine) as session:
        repeat = Task(
            project_id=project_id, slice_id=slice_ids[0], kind=TaskKind.repeat,
            required_labels=1, for_user_id=other_id, due_after=0,
        )  # fmt: skip
        gold = Task(project_id=project_id, slice_id=slice_ids[1], kind=TaskKind.gold)
        session.add_all([repeat, gold])
        session.flush()
        held = Assignment(
            task_id=gold.id or 0, user_id=other_id, lease_expires_at=utcnow() + timedelta(hours=1)
        )
        session.add(held)
        done = session.exec(
            select(Task).where(Task.slice_id == slice_ids[2], Task.kind == TaskKind.normal)
        ).one()
        done.state = TaskState.complete
        session.add(done)
        session.flush()
        gold_lease, done_id = held.id, done.id
    taken = api.put(url, json={"scopes": ["research_sharing"]}, headers=headers).json()
    assert taken["tasks_withheld"] == 4  # two crowd tasks, the repeat and the check slice
    # Leases still held serve no image and take no answer, gold included; nothing of the
    # case is served, repeats included.
    for lease, who in ((lease_id, mine), (gold_lease, theirs)):
        for path in ("images/0/flair.png", "sprite.png"):
            assert api.get(f"/api/tasks/{lease}/{path}", headers=who).status_code == 404
        late = api.post(
            f"/api/tasks/{lease}/annotations", json={"mask": rle().model_dump()}, headers=who
        )
        assert (late.status_code, late.json()["code"]) == (409, "task_withdrawn"), late.text
    assert api.post("/api/tasks/next", headers=mine).status_code == 204
    assert api.post("/api/tasks/next", headers=theirs).status_code == 204
    # Given back: served again, no task duplicated, the complete one still complete.
    again = api.put(url, json={"scopes": ["crowd_viewing"], "licence": "CC0"}, headers=headers)
    assert again.json()["tasks_opened"] == 0
    assert api.get(f"/api/tasks/{lease_id}/images/0/flair.png", headers=mine).status_code == 200
    with Session(engine) as session:
        assert session.get_one(Task, done_id).state is TaskState.complete
        normal = session.exec(
            select(func.count()).select_from(Task).where(Task.kind == TaskKind.normal)
        ).one()
        assert normal == 3
        changes = session.exec(
            select(AuditEntry).where(AuditEntry.action == AuditAction.consent_change)
        ).all()
        assert [c.detail["after"] for c in changes] == [
            ["crowd_viewing", "research_sharing"],
            ["research_sharing"],
            ["crowd_viewing"],
        ]
        assert session.get_one(Case, case.id).scopes == {ConsentScope.crowd_viewing}


def test_two_withdrawals_of_one_case_at_once(
    engine: Engine, store: Storage, api: TestClient
) -> None:
    _project_id, task_ids, _volunteers, _expert = crowd(engine, store, raters=2)
    case = case_of(engine, task_ids[0])
    headers = admin(engine)
    url = f"/api/privacy/cases/{case.public_id}/withdraw"
    body = {"reason": "asked twice", "confirm": case.public_id}
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: api.post(url, json=body, headers=headers), range(2)))
    codes = sorted((a.status_code, a.json().get("code")) for a in answers)
    assert codes == [(200, None), (404, "case_withdrawn")], [a.text for a in answers]
    assert count(engine, "withdrawn_cases") == 1


def test_an_erased_account_leaves_fused_labels_and_cannot_come_back(
    engine: Engine, store: Storage, api: TestClient
) -> None:
    project_id, task_ids, (first, second, third), _expert = crowd(engine, store, raters=3)
    for task_id in task_ids:
        with Session(engine) as session:
            assert labels.results(session, task_id)[0].raters == [first.id, second.id, third.id]
    token = bearer(engine, third.id or 0)
    by_token = api.post("/api/auth/me/erase", json={"password": PASSWORD}, headers=token)
    assert (by_token.status_code, by_token.json()["code"]) == (403, "session_required")
    login = api.post("/api/auth/login", json={"email": "r2@example.org", "password": PASSWORD})
    assert login.status_code == 200
    csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
    wrong = api.post("/api/auth/me/erase", json={"password": "not it"}, headers=csrf)
    assert (wrong.status_code, wrong.json()["code"]) == (403, "wrong_password")
    assert api.post("/api/auth/me/erase", json={}, headers=csrf).status_code == 422
    erased = api.post("/api/auth/me/erase", json={"password": PASSWORD}, headers=csrf)
    assert erased.status_code == 200, erased.text
    assert erased.json()["removed"]["annotations"] == 2
    # Signed out everywhere: the session, the token and the password are gone.
    assert api.get("/api/auth/me").status_code == 401
    assert api.get("/api/auth/me", headers=token).status_code == 401
    relogin = api.post("/api/auth/login", json={"email": "r2@example.org", "password": PASSWORD})
    assert relogin.status_code == 401
    with Session(engine) as session:
        user = session.get_one(User, third.id)
        assert (user.email, user.is_active) == (None, False)
        assert user.erased_at is not None
        assert (
            session.exec(
                select(func.count()).select_from(Credential).where(Credential.user_id == third.id)
            ).one()
            == 0
        )
        assert (
            session.exec(
                select(func.count()).select_from(Annotation).where(Annotation.user_id == third.id)
            ).one()
            == 0
        )
        totals = session.get(PointTotal, third.id)
        assert totals is None or totals.hidden
        for task_id in task_ids:
            newest = labels.results(session, task_id)[0]
            # Two usable answers are too few for three labels: the label is withdrawn and the
            # task collects an answer again; the erased rater is in no newest version.
            assert third.id not in newest.raters
            task = session.get_one(Task, task_id)
            assert task.state is TaskState.open
            assert task.submitted_labels == 2
        (entry,) = session.exec(select(AuditEntry).where(AuditEntry.object_type == "user")).all()
        assert entry.detail["erasure"] is True
    # A name never comes back to the erased account: signing up again is a new account.
    fresh = api.post("/api/auth/signup", json={"email": "r2@example.org", "password": PASSWORD})
    assert fresh.status_code == 201
    assert fresh.json()["user"]["id"] != third.id
    # Admins erase on request; an admin account is not erased, nor one twice.
    headers = admin(engine)
    again = api.post(f"/api/privacy/users/{third.id}/erase", headers=headers)
    assert (again.status_code, again.json()["code"]) == (409, "already_erased")
    with Session(engine) as session:
        admin_id = session.exec(select(User.id).where(User.role == UserRole.admin)).one()
    refused = api.post(f"/api/privacy/users/{admin_id}/erase", headers=headers)
    assert refused.status_code == 403
    by_admin = api.post(f"/api/privacy/users/{second.id}/erase", headers=headers)
    assert by_admin.status_code == 200
    assert by_admin.json()["removed"]["annotations"] == 2
    assert count(engine, "annotations", f"user_id = {second.id}") == 0
