"""Lessons over the API: listing and reading in a language, figures from tutorial material
(rendered once), practice with instant feedback that never becomes a label, completion by
version, the field guide, and what happens when material is missing."""

import base64

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, SQLModel, select

from backend.annotations.models import Annotation
from backend.auth.models import User, UserRole
from backend.core.storage import Storage
from backend.fusion.models import FusionResult, FusionRun
from backend.quality.models import ConsensusScore, GoldScore, RaterStats
from backend.tutorials.content import default_catalog
from backend.tutorials.models import LessonCompletion, TutorialItem
from tests.backend.tutorials.material import SIZE, create_tutorial_case, rle_of
from tests.factories import signup

LABEL_TABLES: list[type[SQLModel]] = [
    Annotation,
    FusionRun,
    FusionResult,
    GoldScore,
    ConsensusScore,
    RaterStats,
]


def _counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        return {
            t.__name__: session.exec(select(func.count()).select_from(t)).one()
            for t in LABEL_TABLES
        }


def _material(engine: Engine, storage: Storage) -> None:
    with Session(engine) as session:
        create_tutorial_case(session, storage)
        session.commit()


def test_lessons_are_listed_in_order_with_what_the_site_can_show(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    signup(client, "v@example.org")
    bare = client.get("/api/tutorials/lessons", headers={"Accept-Language": "de-AT, en;q=0.5"})
    assert bare.status_code == 200
    listing = bare.json()
    assert listing["language"] == "en"  # no German yet: English
    assert [lesson["order"] for lesson in listing["lessons"]] == [1, 2, 3, 4, 5, 6]
    # No tutorial material on the site: every lesson says its examples are missing.
    assert not any(lesson["complete_material"] for lesson in listing["lessons"])
    lesson = client.get("/api/tutorials/lessons/mimics").json()
    assert all(figure["url"] is None for figure in lesson["figures"])
    assert not any(e["available"] for e in lesson["exercise_list"])
    exercise = lesson["exercise_list"][0]["id"]
    missing = client.post(f"/api/tutorials/lessons/mimics/exercises/{exercise}")
    assert missing.status_code == 409
    assert missing.json()["code"] == "material_missing"

    _material(migrated_engine, storage)
    listing = client.get("/api/tutorials/lessons").json()
    assert all(lesson["complete_material"] for lesson in listing["lessons"]), listing
    unknown = client.get("/api/tutorials/lessons/no-such-lesson")
    assert unknown.status_code == 404
    assert client.post("/api/tutorials/lessons/mimics/exercises/no-such").status_code == 404


def test_a_figure_is_rendered_once_from_tutorial_material(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    _material(migrated_engine, storage)
    signup(client, "v@example.org")
    lesson = client.get("/api/tutorials/lessons/where-lesions-sit").json()
    url = lesson["figures"][0]["url"]
    first = client.get(url)
    assert first.status_code == 200
    assert first.headers["content-type"] == "image/png"
    assert [k for k in storage.list("tutorials") if "/figures/" in k]
    assert client.get(url).content == first.content
    assert client.get("/api/tutorials/lessons/mimics/figures/nope.png").status_code == 404


def test_practice_gives_feedback_at_once_and_never_becomes_a_label(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    _material(migrated_engine, storage)
    signup(client, "v@example.org")
    before = _counts(migrated_engine)
    lesson = client.get("/api/tutorials/lessons/mimics").json()
    exercise = lesson["exercise_list"][0]
    item = client.post(f"/api/tutorials/lessons/mimics/exercises/{exercise['id']}").json()
    assert item["purpose"] == "practice"
    assert item["prompt"]
    # Asking again while unanswered gives the same item.
    again = client.post(f"/api/tutorials/lessons/mimics/exercises/{exercise['id']}").json()
    assert again["id"] == item["id"]
    assert client.get(item["slice"]["sprite"]["url"]).status_code == 200
    painted = np.zeros(SIZE, dtype=bool)
    painted[18:23, 26:31] = True  # paints the look-alike
    answered = client.post(
        f"/api/tutorials/items/{item['id']}/answer", json={"mask": rle_of(painted)}
    )
    assert answered.status_code == 201, answered.text
    feedback = answered.json()["feedback"]
    assert feedback["false_alarms"] == 1
    assert feedback["lesions_reference"] == 0
    assert feedback["mimic"]
    assert (
        feedback["explanation"] == default_catalog().lesson("mimics", "en").exercises[0].explanation
    )
    assert base64.b64decode(feedback["overlay_png"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(feedback["overlay_url"]).status_code == 200
    # Kept for the tutorial's statistics; no label, fusion, score or rater total changed.
    assert _counts(migrated_engine) == before
    with Session(migrated_engine) as session:
        kept = session.get(TutorialItem, item["id"])
        assert kept is not None
        assert kept.answered_at is not None
        assert kept.false_alarms == 1
    done = client.get("/api/tutorials/lessons/mimics").json()
    assert done["exercises_done"] == 1
    # A second account cannot see or answer it.
    other = TestClient(client.app)
    signup(other, "w@example.org")
    assert other.get(feedback["overlay_url"]).status_code == 404
    assert other.get(item["slice"]["sprite"]["url"]).status_code == 404


def test_a_completed_lesson_keeps_the_version_it_was_read_at(
    client: TestClient, migrated_engine: Engine
) -> None:
    signup(client, "v@example.org")
    lesson = client.get("/api/tutorials/lessons/no-lesions").json()
    assert lesson["completed_version"] is None
    done = client.post("/api/tutorials/lessons/no-lesions/complete")
    assert done.status_code == 200
    assert done.json()["completed_version"] == lesson["version"]
    assert client.post("/api/tutorials/lessons/no-lesions/complete").status_code == 200
    with Session(migrated_engine) as session:
        rows = session.exec(select(LessonCompletion)).all()
        assert [(r.lesson_id, r.version) for r in rows] == [("no-lesions", lesson["version"])]
    assert client.post("/api/tutorials/lessons/nope/complete").status_code == 404


def test_the_field_guide_is_searchable_with_example_images(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    _material(migrated_engine, storage)
    signup(client, "v@example.org")
    guide = client.get("/api/tutorials/field-guide").json()
    kinds = {e["kind"] for e in guide["entries"]}
    assert kinds == {"lesion", "mimic"}
    found = client.get("/api/tutorials/field-guide", params={"q": "ventricle plexus"}).json()
    assert [e["id"] for e in found["entries"]] == ["choroid-plexus"]
    image = found["entries"][0]["image_url"]
    assert image is not None
    assert client.get(image).status_code == 200
    assert client.get("/api/tutorials/field-guide/nope.png").status_code == 404


def test_experts_see_completion_error_patterns_and_pass_rates(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    _material(migrated_engine, storage)
    signup(client, "v@example.org")
    client.post("/api/tutorials/lessons/mimics/complete")
    lesson = client.get("/api/tutorials/lessons/mimics").json()
    for exercise in lesson["exercise_list"]:
        item = client.post(f"/api/tutorials/lessons/mimics/exercises/{exercise['id']}").json()
        everything = np.ones(SIZE, dtype=bool)  # paints the look-alike too
        client.post(f"/api/tutorials/items/{item['id']}/answer", json={"mask": rle_of(everything)})
    assert client.get("/api/tutorials/stats").status_code == 403
    expert = TestClient(client.app)
    signup(expert, "e@example.org")
    with Session(migrated_engine) as session:
        staff = session.exec(select(User).where(User.email == "e@example.org")).one()
        staff.role = UserRole.expert
        session.add(staff)
        session.commit()
    seen = expert.get("/api/tutorials/stats").json()
    completed = {row["id"]: row["completed_current"] for row in seen["lessons"]}
    assert completed["mimics"] == 1
    assert completed["no-lesions"] == 0
    rows = [row for row in seen["exercises"] if row["lesson"] == "mimics"]
    assert len(rows) == len(lesson["exercise_list"])
    assert all(row["false_alarm_share"] == 1.0 for row in rows)
    assert {row["mimic"] for row in seen["mimics"]} >= {"choroid_plexus"}
    assert seen["mimics"][0]["fooled_share"] == 1.0
