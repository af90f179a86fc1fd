"""Who may call what: every route of the API (read from its OpenAPI table, so a new route is
covered the day it is added) against every role, anonymous included."""

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from backend.auth import consent
from backend.auth import service as auth
from backend.auth.models import UserRole
from tests.factories import PASSWORD, create_token

PUBLIC, USER, EXPERT, ADMIN = "public", "user", "expert", "admin"
LABELS = "labels"  # ML engineers, experts and admins
ENGINEER = "engineer"  # ML engineers and admins
# The least access each route needs. A route missing here fails the test: classify it.
POLICY = {
    ("GET", "/api/health"): PUBLIC,
    ("POST", "/api/auth/signup"): PUBLIC,
    ("POST", "/api/auth/login"): PUBLIC,
    ("POST", "/api/auth/logout"): USER,
    ("GET", "/api/auth/me"): USER,
    ("GET", "/api/auth/tokens"): USER,
    ("POST", "/api/auth/tokens"): USER,
    ("DELETE", "/api/auth/tokens/{token_id}"): USER,
    ("GET", "/api/auth/consent"): PUBLIC,
    ("POST", "/api/auth/consent"): USER,
    ("GET", "/api/projects"): USER,
    ("POST", "/api/projects"): ADMIN,
    ("POST", "/api/tasks/next"): USER,
    ("POST", "/api/tasks/{task_id}/annotations"): USER,
    ("POST", "/api/tasks/{task_id}/skip"): USER,
    ("POST", "/api/tasks/{task_id}/report"): USER,
    ("GET", "/api/tasks/progress"): USER,
    ("GET", "/api/reports"): EXPERT,
    ("POST", "/api/reports/{report_id}/resolve"): EXPERT,
    ("GET", "/api/tasks/{lease_id}/images/{offset}/{contrast}.png"): USER,
    ("GET", "/api/tasks/{lease_id}/sprite.png"): USER,  # own live leases only
    ("GET", "/api/slices/{slice_id}/images/{contrast}.png"): EXPERT,
    ("GET", "/api/slices/{slice_id}/reference.png"): EXPERT,
    ("GET", "/api/annotations/{annotation_id}/feedback.png"): USER,  # own answers only
    ("GET", "/api/tutorials/qualification"): USER,
    ("POST", "/api/tutorials/qualification"): USER,
    ("POST", "/api/tutorials/qualification/{attempt_id}/next"): USER,  # own attempts only
    ("GET", "/api/tutorials/qualification/{attempt_id}/items"): USER,  # own attempts only
    ("POST", "/api/tutorials/items/{item_id}/answer"): USER,  # own items only
    ("GET", "/api/tutorials/items/{item_id}/feedback"): USER,  # own, once revealed
    ("GET", "/api/tutorials/items/{item_id}/feedback.png"): USER,  # own, once revealed
    ("GET", "/api/tutorials/items/{item_id}/images/{offset}/{contrast}.png"): USER,
    ("GET", "/api/tutorials/items/{item_id}/sprite.png"): USER,
    ("POST", "/api/tutorials/cases"): ADMIN,
    ("GET", "/api/tutorials/lessons"): USER,
    ("GET", "/api/tutorials/lessons/{lesson_id}"): USER,
    ("GET", "/api/tutorials/lessons/{lesson_id}/figures/{figure_id}.png"): USER,
    ("POST", "/api/tutorials/lessons/{lesson_id}/complete"): USER,
    ("POST", "/api/tutorials/lessons/{lesson_id}/exercises/{exercise_id}"): USER,
    ("GET", "/api/tutorials/field-guide"): USER,
    ("GET", "/api/tutorials/stats"): EXPERT,
    ("GET", "/api/tutorials/field-guide/{entry_id}.png"): USER,
    ("POST", "/api/tutorials/raters/{user_id}/requalify"): EXPERT,
    ("GET", "/api/rewards/me"): USER,  # own rewards only
    ("POST", "/api/rewards/me/seen"): USER,
    ("PUT", "/api/rewards/me/settings"): USER,
    ("GET", "/api/rewards/me/history"): USER,
    ("GET", "/api/rewards/leaderboard"): USER,  # pseudonyms only
    ("GET", "/api/rewards/goals"): USER,
    ("GET", "/api/audit"): ADMIN,
    ("GET", "/api/privacy/cases"): ADMIN,
    ("PUT", "/api/privacy/cases/{public_id}/consent"): ADMIN,
    ("POST", "/api/privacy/cases/{public_id}/withdraw"): ADMIN,
    ("GET", "/api/privacy/withdrawals"): ADMIN,
    ("POST", "/api/privacy/users/{user_id}/erase"): ADMIN,
    ("POST", "/api/auth/me/erase"): USER,  # own account, with its password
    ("GET", "/api/releases"): ENGINEER,
    ("POST", "/api/releases"): ENGINEER,
    ("GET", "/api/releases/{name}"): ENGINEER,
    ("GET", "/api/releases/{name}/files"): ENGINEER,
    ("GET", "/api/releases/{name}/files/{path}"): ENGINEER,
    ("GET", "/api/releases/{name}/archive.tar"): ENGINEER,
    ("GET", "/api/quality/gold-candidates"): EXPERT,
    ("GET", "/api/quality/gold"): EXPERT,
    ("POST", "/api/quality/slices/{slice_id}/gold"): EXPERT,
    ("DELETE", "/api/quality/slices/{slice_id}/gold"): EXPERT,
    ("GET", "/api/quality/slices/{slice_id}/gold"): EXPERT,
    ("GET", "/api/quality/gold/{version_id}/mask.png"): EXPERT,
    ("GET", "/api/quality/raters"): EXPERT,
    ("GET", "/api/quality/raters/{user_id}/history"): EXPERT,
    ("GET", "/api/quality/raters/{user_id}/actions"): EXPERT,
    ("POST", "/api/quality/raters/{user_id}/suspend"): EXPERT,
    ("POST", "/api/quality/raters/{user_id}/reinstate"): EXPERT,
    ("POST", "/api/quality/raters/{user_id}/clear-flag"): EXPERT,
    ("GET", "/api/quality/expert-answers"): EXPERT,
    ("GET", "/api/quality/review"): EXPERT,
    ("GET", "/api/quality/workspace/candidates"): EXPERT,
    ("GET", "/api/quality/workspace/gold"): EXPERT,
    ("GET", "/api/quality/workspace/answers"): EXPERT,
    ("GET", "/api/quality/workspace/review"): EXPERT,
    ("GET", "/api/quality/workspace/slices/{slice_id}"): EXPERT,
    ("POST", "/api/quality/workspace/slices/{slice_id}/reject"): EXPERT,
    ("GET", "/api/quality/workspace/sprite.png"): EXPERT,
    ("GET", "/api/fusion/tasks/{task_id}"): LABELS,
    ("GET", "/api/fusion/tasks/{task_id}/soft.png"): LABELS,
    ("GET", "/api/fusion/tasks/{task_id}/hard.png"): LABELS,
    ("GET", "/api/fusion/projects/{project_id}/redundancy"): LABELS,
    ("GET", "/api/quality/annotations/{annotation_id}/mask.png"): EXPERT,
    ("POST", "/api/quality/annotations/{annotation_id}/gold"): EXPERT,
    ("GET", "/api/rounds"): ENGINEER,
    ("POST", "/api/rounds"): ENGINEER,
    ("GET", "/api/rounds/curve"): ENGINEER,
    ("GET", "/api/rounds/strategies"): ENGINEER,
    ("GET", "/api/rounds/{round_id}"): ENGINEER,
    ("POST", "/api/rounds/{round_id}/close"): ENGINEER,
    ("POST", "/api/rounds/{round_id}/resume"): ENGINEER,
}
ALLOWED = {
    PUBLIC: {None, *UserRole},
    USER: set(UserRole),
    EXPERT: {UserRole.expert, UserRole.admin},
    LABELS: {UserRole.engineer, UserRole.expert, UserRole.admin},
    ENGINEER: {UserRole.engineer, UserRole.admin},
    ADMIN: {UserRole.admin},
}
PATH_VALUES = {"offset": "0", "contrast": "flair", "token_id": "999999"}  # not the caller's token
# Bodies that pass validation where a route authenticates inside its handler (the two hot
# endpoints validate the body first; with a valid body, authentication decides).
BODIES: dict[str, Any] = {
    "/api/tasks/{task_id}/annotations": {
        "mask": {"encoding": "rle", "width": 1, "height": 1, "counts": [1]}
    },
}


# Calls that end the caller's own credential go last, or every later call would be a 401.
LAST = [("DELETE", "/api/auth/tokens/{token_id}"), ("POST", "/api/auth/logout")]


def _routes(client: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    schema = client.app.openapi()  # type: ignore[attr-defined]
    found = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            found.append((method.upper(), path, operation))
    order = {route: n + 1 for n, route in enumerate(LAST)}
    return sorted(found, key=lambda route: order.get((route[0], route[1]), 0))


def _tokens(engine: Engine) -> dict[UserRole, dict[str, str]]:
    headers = {}
    with Session(engine) as session:
        for role in UserRole:
            user = auth.create_user(
                session=session, email=f"{role.value}@example.org", password=PASSWORD
            )
            user.role = role
            user.consent_version = consent.VERSION  # the consent gate has its own tests
            session.add(user)
            headers[role] = {"Authorization": f"Bearer {create_token(session, user)}"}
        session.commit()
    return headers


def test_every_route_has_a_policy(client: TestClient) -> None:
    routes = {(method, path) for method, path, _ in _routes(client)}
    assert routes - POLICY.keys() == set(), "classify the new routes in POLICY"
    assert POLICY.keys() - routes == set(), "remove routes that no longer exist"


@pytest.mark.parametrize("role", [None, *UserRole], ids=lambda r: r or "anonymous")
def test_the_role_by_route_matrix(
    client: TestClient, migrated_engine: Engine, role: UserRole | None
) -> None:
    tokens = _tokens(migrated_engine)
    headers = {} if role is None else tokens[role]
    wrong = []
    for method, path, operation in _routes(client):
        url = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "1"), path)
        params = {
            p["name"]: 1
            for p in operation.get("parameters", [])
            if p["in"] == "query" and p.get("required")
        }
        body = BODIES.get(path, {}) if method in {"POST", "PUT", "PATCH"} else None
        response = client.request(method, url, params=params, json=body, headers=headers)
        allowed = role in ALLOWED[POLICY[(method, path)]]
        denied = response.status_code in (401, 403)
        if allowed == denied:
            wrong.append(f"{method} {path}: {response.status_code} {response.text[:80]}")
        elif not allowed:
            expected = 401 if role is None else 403
            if response.status_code != expected:
                wrong.append(f"{method} {path}: {response.status_code}, expected {expected}")
    assert wrong == []
