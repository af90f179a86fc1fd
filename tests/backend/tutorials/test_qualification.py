"""The qualification gate over the API, attacked as a volunteer would: before passing, with
scripted painters (expert-like, everything, nothing, every mimic, an under-segmenter), retries
and cool-downs, a second account, replays, and a suspended rater."""

from collections.abc import Callable
from datetime import timedelta

import numpy as np
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from sqlalchemy import Engine, func, update
from sqlmodel import Session, select

from backend.annotations.models import Annotation
from backend.auth.models import User, UserRole
from backend.core.storage import Storage
from backend.projects.models import Project
from backend.quality.models import RaterAction, RaterActionKind, RaterStats
from backend.quality.reliability import TrustLevel
from backend.tutorials.models import QualificationAttempt, TutorialItem
from tests.backend.tutorials.material import BRAIN, Shown, create_tutorial_case, rle_of
from tests.factories import create_project, create_tasks, signup

Painter = Callable[[Shown], NDArray[np.bool_]]


def expert_like(shown: Shown) -> NDArray[np.bool_]:
    return shown.reference


def everything(shown: Shown) -> NDArray[np.bool_]:
    return BRAIN.copy()


def nothing(shown: Shown) -> NDArray[np.bool_]:
    return np.zeros_like(shown.reference)


def every_mimic(shown: Shown) -> NDArray[np.bool_]:
    return shown.reference | shown.mimic


def under_segmenter(shown: Shown) -> NDArray[np.bool_]:
    return shown.reference & ~shown.small


def _setup(engine: Engine, storage: Storage, **gate: object) -> tuple[str, dict[int, Shown]]:
    """A gated project with crowd tasks, and tutorial material; the project's name."""
    with Session(engine) as session:
        project = create_project(session, qualification_required=True, **gate)
        create_tasks(session, storage, count=3, project=project)
        _case, shown = create_tutorial_case(session, storage)
        session.commit()
        return project.name, shown


def _user_id(engine: Engine, email: str) -> int:
    with Session(engine) as session:
        user = session.exec(select(User).where(User.email == email)).one()
        assert user.id is not None
        return user.id


def _take(
    client: TestClient, engine: Engine, project: str, shown: dict[int, Shown], paint: Painter
) -> dict[str, object]:
    """Start an attempt and answer every item with ``paint``; the last answer's attempt."""
    started = client.post(f"/api/tutorials/qualification?project={project}")
    assert started.status_code == 200, started.text
    attempt = started.json()
    assert attempt["total"] == 10
    assert attempt["answered"] == 0
    last: dict[str, object] = {}
    while not last.get("finished_at"):
        got = client.post(f"/api/tutorials/qualification/{attempt['id']}/next")
        assert got.status_code == 200, got.text
        item = got.json()
        assert item["purpose"] == "qualification"
        assert item["total"] == 10
        with Session(engine) as session:
            slice_id = session.get(TutorialItem, item["id"]).slice_id  # type: ignore[union-attr]
        answered = client.post(
            f"/api/tutorials/items/{item['id']}/answer",
            json={"mask": rle_of(paint(shown[slice_id]))},
        )
        assert answered.status_code == 201, answered.text
        body = answered.json()
        assert body["feedback"] is None  # no answer key during the test
        last = body["attempt"]
    return last


def test_an_unqualified_volunteer_is_sent_to_the_tutorial(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    project, _shown = _setup(migrated_engine, storage)
    signup(client, "new@example.org")
    refused = client.post("/api/tasks/next")
    assert refused.status_code == 403
    body = refused.json()
    assert body["code"] == "qualification_required"
    assert body["href"] == f"/tutorials?project={project}"
    status = client.get(f"/api/tutorials/qualification?project={project}").json()
    assert status["required"]
    assert status["ready"]
    assert not status["qualified"]
    # Asking for the project's tasks by name is refused the same way.
    assert client.post("/api/tasks/next?project_id=1").status_code in (403, 204)
    # Experts are exempt.
    staff = TestClient(client.app)
    signup(staff, "expert@example.org")
    with Session(migrated_engine) as session:
        session.execute(
            update(User).where(User.email == "expert@example.org").values(role=UserRole.expert)
        )
        session.commit()
    assert staff.post("/api/tasks/next").status_code == 200


def test_the_gate_is_open_without_material_or_when_the_project_turns_it_off(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        create_tasks(session, storage, count=2, project=create_project(session))
        session.commit()
    signup(client, "v@example.org")
    assert client.post("/api/tasks/next").status_code == 200  # no material: nothing to pass
    with Session(migrated_engine) as session:
        create_tutorial_case(session, storage)  # its own project has the gate off
        session.commit()
    other = TestClient(client.app)
    signup(other, "w@example.org")
    assert other.post("/api/tasks/next").json()["code"] == "qualification_required"


def test_an_expert_like_volunteer_passes_and_gets_real_tasks(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    project, shown = _setup(migrated_engine, storage)
    signup(client, "good@example.org")
    with Session(migrated_engine) as session:
        labels_before = session.exec(select(func.count()).select_from(Annotation)).one()
    done = _take(client, migrated_engine, project, shown, expert_like)
    assert done["passed"] is True
    assert done["answered"] == 10
    result = done["result"]
    assert isinstance(result, dict)
    assert result["lesion_f1"] == 1.0
    assert result["dice"] == 1.0
    assert result["reasons"] == []
    assert client.post("/api/tasks/next").status_code == 200
    user_id = _user_id(migrated_engine, "good@example.org")
    with Session(migrated_engine) as session:
        stats = session.exec(select(RaterStats).where(RaterStats.user_id == user_id)).one()
        assert stats.qualified_at is not None
        assert stats.trust is TrustLevel.qualified
        # The test's answers are no labels: no annotation, no answers counted.
        assert stats.answered == 0
        assert stats.gold == 0
        assert session.exec(select(func.count()).select_from(Annotation)).one() == labels_before
        actions = session.exec(select(RaterAction).where(RaterAction.user_id == user_id)).all()
        assert [a.action for a in actions] == [RaterActionKind.qualified]
    # Qualified: no second attempt.
    again = client.post(f"/api/tutorials/qualification?project={project}")
    assert again.status_code == 409
    assert again.json()["code"] == "already_qualified"


def test_careless_painters_fail_with_feedback_that_names_their_errors(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    project, shown = _setup(migrated_engine, storage, qualification_cooldown_minutes=0)
    expect = {
        everything: ("overpainted", "mimics"),
        nothing: ("missed", None),
        every_mimic: ("mimic", "mimics"),
    }
    for n, (paint, (error, lesson)) in enumerate(expect.items()):
        volunteer = TestClient(client.app)
        signup(volunteer, f"v{n}@example.org")
        done = _take(volunteer, migrated_engine, project, shown, paint)
        assert done["passed"] is False, paint.__name__
        result = done["result"]
        assert isinstance(result, dict)
        words = " ".join(result["reasons"]).lower()
        if error == "overpainted":
            assert result["overpainted"]
            assert "beyond the lesions" in words
        elif error == "missed":
            assert "lesions on the lesion slices" in words
            assert result["lesions_found"] < (result["lesions_reference"])
        else:
            assert result["mimics_fooled"]
            assert "look-alikes fooled you" in words
        if lesson:
            assert lesson in result["lessons"], (paint.__name__, result["lessons"])
        assert volunteer.post("/api/tasks/next").json()["code"] == "qualification_required"


def test_an_under_segmenter_passes_but_is_told_of_the_small_lesions_they_missed(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    # A small lesion or two among a test's lesion slices: a pass, with a note; the item's
    # own feedback (once the attempt is over) counts the miss.
    project, shown = _setup(migrated_engine, storage)
    signup(client, "under@example.org")
    done = _take(client, migrated_engine, project, shown, under_segmenter)
    result = done["result"]
    assert isinstance(result, dict)
    assert done["passed"] is True
    with Session(migrated_engine) as session:
        items = session.exec(
            select(TutorialItem).where(TutorialItem.attempt_id == done["id"])
        ).all()
        small = [i.id for i in items if shown[i.slice_id].small.any()]
    assert 1 <= result["missed_small"] == len(small) < result["lesions_reference"]
    assert result["lesions_found"] == result["lesions_reference"] - len(small)
    note = (
        f"you missed {len(small)} of {result['lesions_reference']} lesions, "
        f"{len(small)} of them small"
    )
    assert note in " ".join(result["notes"]).lower()
    listed = client.get(f"/api/tutorials/qualification/{done['id']}/items").json()
    assert [i["position"] for i in listed] == list(range(1, 11))
    assert all(i["answered"] and i["revealed"] for i in listed)
    other = TestClient(client.app)
    signup(other, "other@example.org")
    assert other.get(f"/api/tutorials/qualification/{done['id']}/items").status_code == 404
    feedback = client.get(f"/api/tutorials/items/{small[0]}/feedback").json()
    assert feedback["lesions_missed"] == 1
    assert client.get(f"/api/tutorials/items/{small[0]}/feedback.png").status_code == 200


def test_a_retry_waits_for_the_cool_down_and_draws_other_slices(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    project, shown = _setup(
        migrated_engine,
        storage,
        qualification_cooldown_minutes=30,
        qualification_attempts_per_day=2,
    )
    signup(client, "retry@example.org")
    first = _take(client, migrated_engine, project, shown, nothing)
    assert first["passed"] is False
    waiting = client.post(f"/api/tutorials/qualification?project={project}")
    assert waiting.status_code == 429
    assert int(waiting.headers["retry-after"]) > 29 * 60
    with Session(migrated_engine) as session:  # half an hour later
        for attempt in session.exec(select(QualificationAttempt)).all():
            assert attempt.finished_at is not None
            attempt.finished_at -= timedelta(minutes=31)
            session.add(attempt)
        session.commit()
    second = client.post(f"/api/tutorials/qualification?project={project}").json()
    with Session(migrated_engine) as session:
        slices = [
            {
                i.slice_id
                for i in session.exec(
                    select(TutorialItem).where(TutorialItem.attempt_id == a)
                ).all()
            }
            for a in (first["id"], second["id"])
        ]
    # 12 lesion, 4 empty and 4 mimic slices: five lesion slices and three mimics come new.
    assert len(slices[0] & slices[1]) <= 2
    # Two attempts in a day are the project's limit; the open one resumes, never a third.
    assert (
        client.post(f"/api/tutorials/qualification?project={project}").json()["id"] == second["id"]
    )


def test_items_and_answers_are_the_volunteers_own_and_answered_once(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    project, shown = _setup(migrated_engine, storage)
    signup(client, "a@example.org")
    attempt = client.post(f"/api/tutorials/qualification?project={project}").json()
    item = client.post(f"/api/tutorials/qualification/{attempt['id']}/next").json()
    sprite = client.get(item["slice"]["sprite"]["url"])
    assert sprite.status_code == 200
    assert sprite.headers["content-type"] == "image/png"
    assert client.get(item["slice"]["images"]["flair"]).status_code == 200
    # Nothing of the expected answer before the attempt is over.
    for url in ("feedback", "feedback.png"):
        hidden = client.get(f"/api/tutorials/items/{item['id']}/{url}")
        assert hidden.status_code == 409
        assert hidden.json()["code"] == "not_revealed"
    other = TestClient(client.app)
    signup(other, "b@example.org")
    for url in (item["slice"]["sprite"]["url"], item["slice"]["images"]["flair"]):
        assert other.get(url).status_code == 404
    assert other.post(f"/api/tutorials/qualification/{attempt['id']}/next").status_code == 404
    theirs = other.post(f"/api/tutorials/items/{item['id']}/answer", json={"mask": rle_of(BRAIN)})
    assert theirs.status_code == 404
    # A malformed mask changes nothing; a second answer to the same item is refused.
    bad = client.post(
        f"/api/tutorials/items/{item['id']}/answer",
        json={"mask": {"encoding": "rle", "width": 3, "height": 3, "counts": [9]}},
    )
    assert bad.status_code == 422
    with Session(migrated_engine) as session:
        assert session.get(TutorialItem, item["id"]).answered_at is None  # type: ignore[union-attr]
    empty = {"mask": rle_of(np.zeros((40, 48), dtype=bool))}
    assert client.post(f"/api/tutorials/items/{item['id']}/answer", json=empty).status_code == 201
    replay = client.post(f"/api/tutorials/items/{item['id']}/answer", json=empty)
    assert replay.status_code == 409
    assert replay.json()["code"] == "already_answered"
    # The other account's own attempt draws its own items: no item id of the first.
    theirs_attempt = other.post(f"/api/tutorials/qualification?project={project}").json()
    assert theirs_attempt["id"] != attempt["id"]


def test_a_suspended_rater_requalifies_only_once_an_expert_allows_it(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    project, shown = _setup(migrated_engine, storage)
    signup(client, "s@example.org")
    user_id = _user_id(migrated_engine, "s@example.org")
    with Session(migrated_engine) as session:
        project_id = session.exec(select(Project.id).where(Project.name == project)).one()
        session.add(
            RaterStats(
                user_id=user_id,
                project_id=project_id,
                trust=TrustLevel.suspended,
                suspended_reason="random strokes",
                override="suspended",
            )
        )
        session.add(
            RaterAction(
                user_id=user_id,
                project_id=project_id,
                action=RaterActionKind.suspended,
                reason="random strokes",
            )
        )
        session.commit()
    refused = client.post(f"/api/tutorials/qualification?project={project}")
    assert refused.status_code == 403
    assert refused.json()["code"] == "rater_suspended"
    expert = TestClient(client.app)
    signup(expert, "e@example.org")
    with Session(migrated_engine) as session:
        session.execute(
            update(User).where(User.email == "e@example.org").values(role=UserRole.expert)
        )
        session.commit()
    allowed = expert.post(
        f"/api/tutorials/raters/{user_id}/requalify",
        json={"project_id": project_id, "reason": "talked it through"},
    )
    assert allowed.status_code == 204, allowed.text
    done = _take(client, migrated_engine, project, shown, expert_like)
    assert done["passed"] is True
    with Session(migrated_engine) as session:
        stats = session.exec(select(RaterStats).where(RaterStats.user_id == user_id)).one()
        assert stats.trust is TrustLevel.qualified
        assert stats.override == "reinstated"
    assert client.post("/api/tasks/next").status_code == 200


def test_an_attempt_opened_before_a_suspension_is_no_way_back(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    # Red team, 2026-12-07: a rater opened an attempt, was suspended by an expert, answered
    # the rest correctly and was reinstated by the pass, without the expert's leave.
    project, shown = _setup(migrated_engine, storage)
    signup(client, "opened@example.org")
    user_id = _user_id(migrated_engine, "opened@example.org")
    started = client.post(f"/api/tutorials/qualification?project={project}").json()
    first = client.post(f"/api/tutorials/qualification/{started['id']}/next").json()
    with Session(migrated_engine) as session:
        project_id = session.exec(select(Project.id).where(Project.name == project)).one()
        session.add(RaterStats(user_id=user_id, project_id=project_id, trust=TrustLevel.suspended))
        session.add(
            RaterAction(
                user_id=user_id,
                project_id=project_id,
                action=RaterActionKind.suspended,
                reason="known cheater",
            )
        )
        session.commit()
        slice_id = session.get(TutorialItem, first["id"]).slice_id  # type: ignore[union-attr]
    answer = client.post(
        f"/api/tutorials/items/{first['id']}/answer",
        json={"mask": rle_of(expert_like(shown[slice_id]))},
    )
    assert (answer.status_code, answer.json()["code"]) == (403, "rater_suspended")
    resumed = client.post(f"/api/tutorials/qualification?project={project}")
    assert (resumed.status_code, resumed.json()["code"]) == (403, "rater_suspended")
    with Session(migrated_engine) as session:
        stats = session.exec(select(RaterStats).where(RaterStats.user_id == user_id)).one()
        assert (stats.trust, stats.qualified_at) == (TrustLevel.suspended, None)


def test_a_finished_tests_feedback_draws_no_missed_lesion(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    # Red team, 2026-12-07: throwaway accounts answered every item empty and read each item's
    # feedback overlay, whose "missed" colour drew the expert's whole mask; a fresh account
    # recognised its items by their pixels and passed with the harvested masks.
    from io import BytesIO

    from PIL import Image

    from backend.quality.gold import MISS

    project, shown = _setup(migrated_engine, storage)
    signup(client, "harvest@example.org")
    done = _take(client, migrated_engine, project, shown, nothing)
    listed = client.get(f"/api/tutorials/qualification/{done['id']}/items").json()
    missed_any = False
    for item in listed:
        feedback = client.get(f"/api/tutorials/items/{item['id']}/feedback").json()
        missed_any |= feedback["lesions_missed"] > 0
        png = client.get(f"/api/tutorials/items/{item['id']}/feedback.png")
        assert png.status_code == 200
        pixels = np.asarray(Image.open(BytesIO(png.content)).convert("RGB"))
        assert not (pixels == np.array(MISS, dtype=np.uint8)).all(axis=2).any()
    assert missed_any  # the misses are counted in words
