"""Closing a round's labelling cannot mislead: below ``CLOSE_SHARE`` of its chosen slices
labelled the API answers 409 ``too_few_labelled`` (with what the model would train on) unless
the body says ``{"force": true}``; attacked with missing and mistyped fields, callers without
the role, a second close and another project's round. The counts a round's row shows (chosen,
labelled, trained on, of them the round's), the slices a model would train on, and the
strategies' help with ``random_fg`` the default. On both dialects."""

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from backend.auth import service as auth
from backend.auth.models import UserRole
from backend.core.storage import Storage
from backend.imaging.models import Case, Slice
from backend.projects.models import Project
from backend.quality import gold
from backend.quality.models import GoldSource
from backend.rounds import service as rounds
from backend.rounds.models import Round, RoundStatus
from backend.rounds.schemas import STRATEGY_HELP, RoundCreate
from backend.rounds.selection import STRATEGIES
from backend.tasks.models import Task, TaskState
from tests.factories import HEIGHT, PASSWORD, WIDTH, create_project, create_tasks, create_token


def _label(engine: Engine, slice_ids: list[int], state: TaskState = TaskState.complete) -> None:
    """The crowd tasks of these slices are done (``state``)."""
    with Session(engine) as session:
        for task in session.exec(select(Task).where(col(Task.slice_id).in_(slice_ids))):
            task.state = state
            session.add(task)
        session.commit()


def _status(engine: Engine, round_id: int) -> RoundStatus:
    with Session(engine) as session:
        return session.get_one(Round, round_id).status


@pytest.fixture
def staff(migrated_engine: Engine, storage: Storage) -> dict[str, Any]:
    """Projects A (12 tasks, 2 already complete) and B (6 tasks), an engineer's and a
    volunteer's bearer headers."""
    with Session(migrated_engine) as session:
        a, b = create_project(session, name="a"), create_project(session, name="b")
        done = create_tasks(session, storage, count=12, project=a)[:2]
        for task in done:
            task.state = TaskState.complete
            session.add(task)
        create_tasks(session, storage, count=6, project=b)
        engineer = auth.create_user(session=session, email="ml@example.org", password=PASSWORD)
        engineer.role = UserRole.engineer
        session.add(engineer)
        volunteer = auth.create_user(session=session, email="v@example.org", password=PASSWORD)
        found = {
            "a": a.id,
            "b": b.id,
            "engineer": {"Authorization": f"Bearer {create_token(session, engineer)}"},
            "volunteer": {"Authorization": f"Bearer {create_token(session, volunteer)}"},
        }
        session.commit()
    return found


def _start(client: TestClient, staff: dict[str, Any], project: str, budget: int) -> Any:
    body = {"project_id": staff[project], "strategy": "random", "budget": budget}
    started = client.post("/api/rounds", json=body, headers=staff["engineer"])
    assert started.status_code == 201, started.text
    return started.json()


def _chosen(engine: Engine, round_id: int) -> list[int]:
    with Session(engine) as session:
        return list(session.get_one(Round, round_id).selected)


def test_closing_below_the_share_is_refused_until_forced(
    client: TestClient, migrated_engine: Engine, staff: dict[str, Any]
) -> None:
    engineer = staff["engineer"]
    first = _start(client, staff, "a", budget=4)
    close = f"/api/rounds/{first['id']}/close"
    chosen = _chosen(migrated_engine, first["id"])
    _label(migrated_engine, chosen[:1])

    row = client.get(f"/api/rounds/{first['id']}", headers=engineer).json()
    # 1 of 4 chosen labelled, 2 needed; it would train on the 2 labelled before it plus 1.
    assert (row["selected"], row["labelled"], row["labelled_needed"]) == (4, 1, 2)
    assert (row["training_slices"], row["training_chosen"]) == (3, 1)

    for body in (None, {}, {"force": False}):
        refused = client.post(close, json=body, headers=engineer)
        assert refused.status_code == 409, body
        assert refused.json()["code"] == "too_few_labelled"
        detail = refused.json()["detail"]
        assert "Only 1 of round 1's 4 chosen slices are labelled; closing needs 2 (50%)" in detail
        assert "about 3 labelled slices, 1 of them chosen by this round" in detail
    # force must be a JSON boolean, and nothing else rides along.
    for bad in (
        {"force": "true"},
        {"force": 1},
        {"force": None},
        {"force": [True]},
        {"force": True, "why": "x"},
        {"Force": True},
        True,
        [{"force": True}],
    ):
        mistyped = client.post(close, json=bad, headers=engineer)
        assert mistyped.status_code == 422, bad
    plain = client.post(
        close, content=b"force=true", headers={**engineer, "Content-Type": "text/plain"}
    )
    assert plain.status_code in (415, 422)
    # Without the role, forced or not: refused before anything is looked at.
    assert client.post(close, json={"force": True}, headers=staff["volunteer"]).status_code == 403
    assert client.post(close, json={"force": True}).status_code == 401
    assert client.post(close, json={"force": "yes"}).status_code == 401
    assert client.post("/api/rounds/999999/close", json={"force": True}, headers=engineer).json()[
        "code"
    ] == ("not_found")
    assert (
        client.post("/api/rounds/0/close", json={"force": True}, headers=engineer).status_code
        == 422
    )
    assert _status(migrated_engine, first["id"]) is RoundStatus.labelling

    # At the share (2 of 4; a task in the experts' review counts as labelled, but is not
    # trained on) it closes without force.
    _label(migrated_engine, chosen[1:2], TaskState.review)
    closed = client.post(close, headers=engineer)
    assert closed.status_code == 200, closed.text
    read = closed.json()
    assert (read["status"], read["labelled"], read["training_slices"]) == ("fusing", 2, 3)
    assert read["training_chosen"] == 1
    # Twice: the second finds it closed, forced or not, and leaves it where it was.
    for body in (None, {"force": True}):
        again = client.post(close, json=body, headers=engineer)
        assert again.status_code == 409
        assert again.json()["code"] == "round_not_labelling"
    assert _status(migrated_engine, first["id"]) is RoundStatus.fusing


def test_another_projects_round_is_guarded_by_its_own_labels(
    client: TestClient, migrated_engine: Engine, staff: dict[str, Any]
) -> None:
    """Project A's labels never count for B's round: B at 0 of 3 is refused with B's own
    counts while A's round is fully labelled; forcing B leaves A's round as it was."""
    engineer = staff["engineer"]
    a = _start(client, staff, "a", budget=2)
    b = _start(client, staff, "b", budget=3)
    _label(migrated_engine, _chosen(migrated_engine, a["id"]))
    refused = client.post(f"/api/rounds/{b['id']}/close", headers=engineer)
    assert refused.status_code == 409
    assert "Only 0 of round 1's 3 chosen" in refused.json()["detail"]
    assert "about 0 labelled slices, 0 of them" in refused.json()["detail"]
    forced = client.post(f"/api/rounds/{b['id']}/close", json={"force": True}, headers=engineer)
    assert forced.status_code == 200, forced.text
    assert forced.json()["detail"].endswith("(closed with 0 of 3 chosen slices labelled)")
    assert _status(migrated_engine, a["id"]) is RoundStatus.labelling
    listed = client.get(f"/api/rounds?project_id={staff['a']}", headers=engineer).json()
    assert [(r["number"], r["status"], r["labelled"]) for r in listed] == [(1, "labelling", 2)]
    # Above the share (2 of 2), A closes without force.
    closed = client.post(f"/api/rounds/{a['id']}/close", headers=engineer)
    assert closed.status_code == 200, closed.text
    assert (closed.json()["training_slices"], closed.json()["training_chosen"]) == (4, 2)


def test_needed_share_and_the_slices_a_model_would_train_on(
    migrated_engine: Engine, storage: Storage
) -> None:
    assert [rounds.needed_to_close(n) for n in (0, 1, 2, 3, 4, 5, 50)] == [0, 1, 1, 2, 2, 3, 25]
    with Session(migrated_engine) as session:
        project = create_project(session)
        kept = create_tasks(session, storage, count=4, project=project)
        held = create_tasks(session, storage, count=2, project=project)
        for task in [kept[0], *held]:
            task.state = TaskState.complete
            session.add(task)
        gold.set_gold(
            session=session,
            storage=storage,
            slice_id=kept[1].slice_id,
            mask=np.zeros((HEIGHT, WIDTH), np.uint8),
            source=GoldSource.expert,
            expert_id=None,
        )
        held_case = session.exec(
            select(Case.public_id)
            .join(Slice, col(Slice.case_id) == col(Case.id))
            .where(Slice.id == held[0].slice_id)
        ).one()
        project.holdout_cases = [held_case]
        session.add(project)
        session.flush()
        # The complete crowd task and the gold slice; never the held-out case's labels.
        found = rounds.training_slices(session, session.get_one(Project, project.id))
        assert found == {kept[0].slice_id, kept[1].slice_id}


def test_every_strategy_has_a_line_of_help_and_random_fg_is_the_default(
    client: TestClient, staff: dict[str, Any]
) -> None:
    assert set(STRATEGY_HELP) == set(STRATEGIES)
    assert RoundCreate(project_id=1).strategy == "random_fg"
    listed = client.get("/api/rounds/strategies", headers=staff["engineer"])
    assert listed.status_code == 200
    names = [s["name"] for s in listed.json()]
    assert names[0] == "random_fg"
    assert sorted(names) == sorted(STRATEGIES)
    assert [s["name"] for s in listed.json() if s["default"]] == ["random_fg"]
    needs = {s["name"] for s in listed.json() if s["needs_model"]}
    assert needs == {"entropy", "bald", "bald_diverse"}
    assert client.get("/api/rounds/strategies", headers=staff["volunteer"]).status_code == 403
    # A round started without a strategy uses the default.
    body = {"project_id": staff["a"], "budget": 2}
    started = client.post("/api/rounds", json=body, headers=staff["engineer"])
    assert started.json()["strategy"] == "random_fg"


def test_two_closes_at_once_close_once(
    client: TestClient, staff: dict[str, Any], migrated_engine: Engine
) -> None:
    """Attack (issue 34 red team): four closes sent at the same moment all answered 200 on
    SQLite, whose FOR UPDATE is a no-op, and queued four fusion jobs. One closes; the others
    find the round closed (409 round_not_labelling)."""
    from concurrent.futures import ThreadPoolExecutor

    started = _start(client, staff, "a", 2)

    def close(_: int) -> int:
        answer = client.post(
            f"/api/rounds/{started['id']}/close",
            json={"force": True},
            headers=staff["engineer"],
        )
        return answer.status_code

    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(close, range(4)))
    assert codes == [200, 409, 409, 409]
    assert _status(migrated_engine, started["id"]) is RoundStatus.fusing
