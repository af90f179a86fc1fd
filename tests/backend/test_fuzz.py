"""Schemathesis fuzzes the API through its own OpenAPI schema, in process, on PostgreSQL.

Every operation gets valid and invalid requests (bounded example counts keep it to a couple of
minutes). Each answer must not be a server error and must conform to the schema: a documented
status code, content type, headers and body. A fresh browser session signs every request
(cookie and CSRF token), so operations like logout or token revocation cannot starve the rest.

As the admin, the volunteer routes answer 404 to every example (the admin holds no lease), so
they are fuzzed again as volunteers: each example is a new volunteer holding a lease, whose id
goes into the path; hypothesis draws binary masks at the slice size for some of the bodies, so
examples reach mask decoding and scoring and are stored (201) as well as refused (422).
"""

import base64
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine, text, update
from sqlalchemy.engine import make_url
from sqlmodel import Session, col

from backend.annotations.masks import encode_rle, to_png
from backend.auth import consent, tokens
from backend.auth import service as auth
from backend.auth.deps import SESSION_COOKIE
from backend.auth.models import Credential, User, UserRole
from backend.core.config import Settings
from backend.core.db import create_db_engine
from backend.core.migrations import upgrade
from backend.core.storage import Storage
from backend.core.timeutil import utcnow
from backend.imaging.models import Slice
from backend.imaging.preprocess import encode_png
from backend.main import create_app
from backend.tasks import service as tasks
from tests.conftest import PG_URL
from tests.factories import HEIGHT, PASSWORD, WIDTH, create_tasks

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = 25  # per operation and generation mode (75 until issue 35, 40 until 36, 30 until
# 39: suite time)
VOLUNTEER_EXAMPLES = 40
# Slots enough that volunteers' leases never fill the volunteer project's tasks.
VOLUNTEER_SLOTS = 10_000


@pytest.fixture(scope="module")
def fuzz_app(
    pg_server: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FastAPI, Engine]]:
    """An app on a migrated PostgreSQL schema with a few tasks, a reference mask and an admin."""
    schema = "fuzz_" + str(np.random.default_rng().integers(1 << 40))
    with pg_server.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    engine = create_db_engine(url.render_as_string(hide_password=False))
    upgrade(engine)
    root: Path = tmp_path_factory.mktemp("fuzz")
    storage = Storage((root / "storage").as_uri())
    with Session(engine) as session:
        tasks = create_tasks(session, storage, count=4, required_labels=2)
        reference = session.get(Slice, tasks[0].slice_id)
        assert reference is not None
        reference.reference_key = "cases/fuzz/reference.png"
        storage.put(reference.reference_key, encode_png(np.zeros((16, 24), dtype=np.uint8)))
        session.add(reference)
        auth.create_user(
            session=session, email="admin@example.org", password=PASSWORD, role=UserRole.admin
        )
        session.commit()
    app_settings = Settings(
        database_url=url.render_as_string(hide_password=False),
        storage_url=storage.url,
        data_dir=root / "var",
        # The fuzzer signs up and logs in far more often than any one address should.
        signups_per_address_per_hour=1_000_000,
        login_free_failures_address=1_000_000,
    )
    yield create_app(app_settings, engine=engine), engine
    engine.dispose()
    with pg_server.connect() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(scope="module")
def api_schema(fuzz_app: tuple[FastAPI, Engine]) -> Any:
    app, _engine = fuzz_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return schema


def _fresh_session(engine: Engine) -> dict[str, str]:
    """Headers of a new browser session of the admin; the admin's tokens are revoked first."""
    with Session(engine, expire_on_commit=False) as session:
        admin = auth.find_user(session, "admin@example.org")
        assert isinstance(admin, User)
        session.execute(
            update(Credential)
            .where(col(Credential.user_id) == admin.id, col(Credential.revoked_at).is_(None))
            .values(revoked_at=utcnow() - timedelta(seconds=1))
        )
        secret, credential = tokens.open_session(session=session, user=admin, hours=1)
        session.commit()
    assert credential.csrf_token is not None
    return {"Cookie": f"{SESSION_COOKIE}={secret}", "X-CSRF-Token": credential.csrf_token}


def _cases() -> list[Any]:
    """(operation, mode) pairs; invalid input only where an operation takes any input."""
    # The schema does not depend on the database: read it from an app on a dummy one.
    app = create_app(Settings(database_url="sqlite://"), engine=create_db_engine("sqlite://"))
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    cases = []
    for path, item in paths.items():
        for method, operation in item.items():
            label = f"{method.upper()} {path}"
            cases.append(pytest.param(label, GenerationMode.POSITIVE, id=f"{label} valid"))
            if operation.get("parameters") or operation.get("requestBody"):
                cases.append(pytest.param(label, GenerationMode.NEGATIVE, id=f"{label} invalid"))
    return cases


@pytest.mark.postgres
@pytest.mark.parametrize(("label", "mode"), _cases())
def test_no_input_crashes_the_api_or_breaks_its_schema(
    label: str, mode: GenerationMode, api_schema: Any, fuzz_app: tuple[FastAPI, Engine]
) -> None:
    _app, engine = fuzz_app
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=_fresh_session(engine), checks=CHECKS)

    run()


@pytest.fixture(scope="module")
def volunteer_project(fuzz_app: tuple[FastAPI, Engine]) -> int:
    """A project of four consecutive slices whose tasks never run out of slots."""
    app, engine = fuzz_app
    with Session(engine) as session:
        made = create_tasks(session, app.state.storage, count=4, required_labels=VOLUNTEER_SLOTS)
        session.commit()
        return made[0].project_id


def _volunteer_with_lease(engine: Engine, project_id: int) -> tuple[int, dict[str, str]]:
    """A new volunteer (consent given) holding a lease in ``project_id``: the lease id and the
    headers of their browser session."""
    with Session(engine, expire_on_commit=False) as session:
        volunteer = User(
            display_name=f"fuzz-{uuid.uuid4().hex[:12]}",
            password_hash="unusable",
            consent_version=consent.VERSION,
            consent_at=utcnow(),
        )
        session.add(volunteer)
        session.flush()
        secret, credential = tokens.open_session(session=session, user=volunteer, hours=1)
        lease = tasks.next_task(
            session=session, user=volunteer, lease_seconds=900, project_id=project_id
        )
        session.commit()
    assert lease is not None
    assert credential.csrf_token is not None
    return lease.id, {"Cookie": f"{SESSION_COOKIE}={secret}", "X-CSRF-Token": credential.csrf_token}


@st.composite
def masks(draw: st.DrawFn) -> dict[str, Any]:
    """A binary mask at the fuzz slices' size (a rectangle, maybe empty), as RLE or PNG."""
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    x0, x1 = sorted(draw(st.lists(st.integers(0, WIDTH), min_size=2, max_size=2)))
    y0, y1 = sorted(draw(st.lists(st.integers(0, HEIGHT), min_size=2, max_size=2)))
    mask[y0:y1, x0:x1] = 1
    if draw(st.booleans()):
        return {"encoding": "rle", "width": WIDTH, "height": HEIGHT, "counts": encode_rle(mask)}
    return {"encoding": "png", "data": base64.b64encode(to_png(mask)).decode()}


# The volunteer's own routes, with the path parameter that takes the lease id.
VOLUNTEER_ROUTES = {
    "POST /api/tasks/{task_id}/annotations": "task_id",
    "GET /api/tasks/{lease_id}/images/{offset}/{contrast}.png": "lease_id",
    "POST /api/tasks/{task_id}/report": "task_id",
}


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("label", "mode"),
    [
        pytest.param(label, mode, id=f"{label} {mode.value}")
        for label in VOLUNTEER_ROUTES
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ],
)
def test_volunteer_routes_as_a_volunteer_holding_a_lease(
    label: str,
    mode: GenerationMode,
    api_schema: Any,
    fuzz_app: tuple[FastAPI, Engine],
    volunteer_project: int,
) -> None:
    _app, engine = fuzz_app
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label
    statuses: Counter[int] = Counter()

    @given(case=operation.as_strategy(mode), data=st.data())
    @settings(
        max_examples=VOLUNTEER_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: schemathesis.Case, data: st.DataObject) -> None:
        lease, headers = _volunteer_with_lease(engine, volunteer_project)
        case.path_parameters[VOLUNTEER_ROUTES[label]] = lease
        if "contrast" in case.path_parameters and data.draw(st.booleans()):
            case.path_parameters["offset"] = data.draw(st.integers(-1, 1))
            case.path_parameters["contrast"] = "flair"
        if isinstance(case.body, dict) and "mask" in case.body and data.draw(st.booleans()):
            case.body = {**case.body, "mask": data.draw(masks())}
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        statuses[response.status_code] += 1

    run()
    if mode is GenerationMode.POSITIVE:
        # Valid requests got through (stored, served, reported); some masks were refused.
        assert statuses[201 if label.startswith("POST") else 200] > 0, statuses
        if "annotations" in label:
            assert statuses[422] > 0, statuses
    else:
        assert statuses[422] > 0, statuses
