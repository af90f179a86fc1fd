"""The expert workspace API: gold management and the rater table with suspend/reinstate."""

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from backend.annotations.masks import encode_rle
from backend.auth import service as auth
from backend.auth.models import UserRole
from backend.core.storage import Storage
from backend.quality.models import RaterAction
from tests.backend.quality.test_gold import _square_masks, create_case
from tests.factories import PASSWORD, create_project, create_token, signup


def _expert(engine: Engine) -> dict[str, str]:
    with Session(engine) as session:
        user = auth.create_user(session=session, email="expert@example.org", password=PASSWORD)
        user.role = UserRole.expert
        session.add(user)
        token = create_token(session, user)
        session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_expert_makes_gold_and_manages_raters(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    masks = _square_masks(6)
    with Session(migrated_engine) as session:
        project = create_project(session, gold_rate=1.0, gold_schedule=[])
        slices = create_case(session, storage, project, masks)
        session.commit()
        project_id, slice_ids = project.id, [s.id for s in slices]
    expert = _expert(migrated_engine)
    expert_client = TestClient(client.app)
    candidates = expert_client.get(
        "/api/quality/gold-candidates", params={"project_id": project_id}, headers=expert
    )
    assert candidates.status_code == 200
    assert {c["slice_id"] for c in candidates.json()} == set(slice_ids)
    first = candidates.json()[0]
    assert expert_client.get(first["reference_url"], headers=expert).status_code == 200
    # Approve three references; paint a fourth.
    for slice_id in slice_ids[:3]:
        made = expert_client.post(
            f"/api/quality/slices/{slice_id}/gold", json={"source": "reference"}, headers=expert
        )
        assert made.status_code == 201, made.text
        assert made.json()["version"] == 1
    painted = np.zeros((16, 24), dtype=np.uint8)
    painted[1:4, 1:4] = 1
    body = {
        "source": "expert",
        "mask": {"encoding": "rle", "width": 24, "height": 16, "counts": encode_rle(painted)},
    }
    made = expert_client.post(f"/api/quality/slices/{slice_ids[3]}/gold", json=body, headers=expert)
    assert made.status_code == 201
    assert made.json()["source"] == "expert"
    mask = expert_client.get(made.json()["mask_url"], headers=expert)
    assert mask.status_code == 200
    bad = expert_client.post(
        f"/api/quality/slices/{slice_ids[4]}/gold", json={"source": "expert"}, headers=expert
    )
    assert bad.status_code == 422
    versions = expert_client.get(f"/api/quality/slices/{slice_ids[0]}/gold", headers=expert)
    assert [v["version"] for v in versions.json()] == [1]

    # A volunteer answers every gold slice with nothing: suspended by the rules.
    signup(client, "volunteer@example.org")
    for _ in range(3):
        task = client.post("/api/tasks/next").json()
        empty = {"encoding": "rle", "width": 24, "height": 16, "counts": [384]}
        sent = client.post(f"/api/tasks/{task['id']}/annotations", json={"mask": empty})
        assert sent.status_code == 201
        assert sent.json()["feedback"]["lesions_missed"] >= 1
    refused = client.post("/api/tasks/next")
    assert refused.status_code == 403
    assert "answered as empty" in refused.json()["detail"]
    # Volunteers cannot see the rater table or gold.
    assert client.get("/api/quality/raters", params={"project_id": project_id}).status_code == 403
    assert client.get(first["reference_url"]).status_code == 403

    table = expert_client.get(
        "/api/quality/raters", params={"project_id": project_id}, headers=expert
    ).json()
    (row,) = table
    assert row["trust"] == "suspended"
    assert row["gold"] == 3
    assert row["sensitivity"]["low"] < row["sensitivity"]["mean"] < row["sensitivity"]["high"]
    history = expert_client.get(
        f"/api/quality/raters/{row['user_id']}/history",
        params={"project_id": project_id},
        headers=expert,
    ).json()
    assert [h["dice"] for h in history] == [0.0, 0.0, 0.0]
    decision = {"project_id": project_id, "reason": "talked to them; they misread the task"}
    reinstated = expert_client.post(
        f"/api/quality/raters/{row['user_id']}/reinstate", json=decision, headers=expert
    )
    assert reinstated.status_code == 200, reinstated.text
    assert reinstated.json()["trust"] != "suspended"
    assert client.post("/api/tasks/next").status_code == 200
    again = expert_client.post(
        f"/api/quality/raters/{row['user_id']}/reinstate", json=decision, headers=expert
    )
    assert again.status_code == 409
    suspended = expert_client.post(
        f"/api/quality/raters/{row['user_id']}/suspend", json=decision, headers=expert
    )
    assert suspended.json()["trust"] == "suspended"
    actions = expert_client.get(
        f"/api/quality/raters/{row['user_id']}/actions",
        params={"project_id": project_id},
        headers=expert,
    ).json()
    assert [a["action"] for a in actions] == ["suspended", "reinstated", "suspended"]
    assert actions[0]["by_user_id"] is None  # the rules
    assert actions[1]["by_user_id"] is not None
    with Session(migrated_engine) as session:
        assert len(session.exec(select(RaterAction)).all()) == 3
    # Retiring gold.
    retired = expert_client.delete(f"/api/quality/slices/{slice_ids[0]}/gold", headers=expert)
    assert retired.status_code == 204
    gone = expert_client.delete(f"/api/quality/slices/{slice_ids[0]}/gold", headers=expert)
    assert gone.status_code == 404
