"""Leasing tasks over the API: the lease, reloads, neighbours, images, and running dry."""

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlmodel import Session, select

from backend.auth.models import UserRole
from backend.core.storage import Storage
from backend.imaging.models import Case, Slice
from backend.imaging.preprocess import encode_png
from backend.tasks.models import Assignment
from tests.factories import HEIGHT, WIDTH, create_tasks, set_role, signup


def _seed(engine: Engine, storage: Storage, **kwargs: int) -> list[int]:
    with Session(engine) as session:
        tasks = create_tasks(session, storage, **kwargs)
        session.commit()
        return [t.id for t in tasks if t.id is not None]


def test_next_task_leases_a_slice_with_images_and_context(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    ids = _seed(migrated_engine, storage, count=3)
    signup(client, "v1@example.org")
    response = client.post("/api/tasks/next")
    assert response.status_code == 200
    task = response.json()
    with Session(migrated_engine) as session:  # the id is the lease's, not the task's
        lease = session.get(Assignment, task["id"])
        assert lease is not None
        assert lease.task_id in ids
    assert task["slice"]["width"] == WIDTH
    assert task["slice"]["height"] == HEIGHT
    assert set(task["slice"]["images"]) == {"flair"}
    assert task["slice"]["images"]["flair"] == f"/api/tasks/{task['id']}/images/0/flair.png"
    assert {n["offset"] for n in task["neighbours"]} <= {-2, -1, 1, 2}
    assert task["neighbours"]
    # Taking a lease changes state: only by POST, so a cross-site link cannot take one.
    assert client.get("/api/tasks/next").status_code == 405
    image = client.get(task["slice"]["images"]["flair"])
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.headers["cache-control"] == "private, max-age=86400"
    neighbour = task["neighbours"][0]
    assert client.get(neighbour["images"]["flair"]).status_code == 200
    assert client.get(f"/api/tasks/{task['id']}/images/3/flair.png").status_code == 422
    assert client.get(f"/api/tasks/{task['id']}/images/0/t2.png").status_code == 404
    cached = client.get(
        task["slice"]["images"]["flair"], headers={"If-None-Match": image.headers["etag"]}
    )
    assert cached.status_code == 304
    # Reloading the page returns the same lease instead of taking a second slot.
    assert client.post("/api/tasks/next").json()["id"] == task["id"]
    with Session(migrated_engine) as session:
        assert len(session.exec(select(Assignment)).all()) == 1


def test_images_and_tasks_need_a_signed_in_user(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    _seed(migrated_engine, storage, count=1)
    assert client.post("/api/tasks/next").status_code == 401
    assert client.get("/api/slices/1/images/flair.png").status_code == 401
    assert client.get("/api/tasks/1/images/0/flair.png").status_code == 401
    signup(client, "v2@example.org")
    # Another volunteer's lease, or none: the same 404.
    assert client.get("/api/tasks/1/images/0/flair.png").status_code == 404
    # Slice images by id are for experts: a volunteer reaches images through leases only.
    assert client.get("/api/slices/999/images/flair.png").status_code == 403
    assert client.get("/api/slices/1/images/flair.png").status_code == 403


def test_no_task_left_is_204(client: TestClient, migrated_engine: Engine, storage: Storage) -> None:
    signup(client, "v3@example.org")
    assert client.post("/api/tasks/next").status_code == 204
    _seed(migrated_engine, storage, count=1, required_labels=1)
    assert client.post("/api/tasks/next", params={"project_id": 12345}).status_code == 204
    assert client.post("/api/tasks/next").status_code == 200


def test_reference_mask_is_for_experts_only(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        (task,) = create_tasks(session, storage, count=1)
        slice_ = session.get(Slice, task.slice_id)
        assert slice_ is not None
        slice_.reference_key = "cases/ref/reference/axial/0000.png"
        slice_.reference_pixels = 3
        storage.put(slice_.reference_key, encode_png(np.zeros((HEIGHT, WIDTH), np.uint8)))
        session.add(slice_)
        session.commit()
        slice_id = slice_.id
    signup(client, "curious@example.org")
    task_json = client.post("/api/tasks/next").json()
    # Nothing a volunteer receives points at the reference.
    assert "reference" not in str(task_json)
    assert client.get(f"/api/slices/{slice_id}/images/reference.png").status_code == 403
    refused = client.get(f"/api/slices/{slice_id}/reference.png")
    assert refused.status_code == 403
    set_role(migrated_engine, UserRole.expert)
    allowed = client.get(f"/api/slices/{slice_id}/reference.png")
    assert allowed.status_code == 200
    assert allowed.headers["content-type"] == "image/png"
    # Role-gated: never kept in the browser's cache past a logout.
    assert allowed.headers["cache-control"] == "no-store"


def test_restricted_cases_are_hidden_from_volunteers(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        (task,) = create_tasks(session, storage, count=1)
        slice_ = session.get(Slice, task.slice_id)
        assert slice_ is not None
        case = session.get(Case, slice_.case_id)
        assert case is not None
        case.allow(frozenset())  # experts only: no crowd viewing
        session.add(case)
        session.commit()
        slice_id, task_id = slice_.id, task.id
    signup(client, "nosy@example.org")
    assert client.get(f"/api/slices/{slice_id}/images/flair.png").status_code == 403
    # Volunteers are never leased restricted work; experts are.
    assert client.post("/api/tasks/next").status_code == 204
    set_role(migrated_engine, UserRole.expert)
    leased = client.post("/api/tasks/next").json()
    assert client.get(leased["slice"]["images"]["flair"]).status_code == 200
    with Session(migrated_engine) as session:
        assignment = session.get(Assignment, leased["id"])
        assert assignment is not None
        assert assignment.task_id == task_id
    image = client.get(f"/api/slices/{slice_id}/images/flair.png")
    assert image.status_code == 200
    assert image.headers["cache-control"] == "no-store"


@contextmanager
def _counted(engine: Engine) -> Iterator[list[str]]:
    """The verbs of the statements ``engine`` runs inside the block."""
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]).split(None, 1)[0])

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_hot_endpoints_make_only_the_statements_their_work_needs(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    # A regression guard for issue 18: every statement is a round trip to the database, on the
    # two requests every volunteer repeats. (Not counted: the pool's liveness ping, BEGIN and
    # COMMIT.) SQLite adds one statement that takes its write lock first.
    ids = _seed(migrated_engine, storage, count=3)
    signup(client, "v1@example.org")
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    with _counted(engine) as statements:
        sqlite = engine.dialect.name == "sqlite"

        def expect(*verbs: str) -> list[str]:
            # After authenticating, SQLite takes its write lock with a no-op UPDATE.
            return [verbs[0], "UPDATE", *verbs[1:]] if sqlite else list(verbs)

        task = client.post("/api/tasks/next").json()
        # caller, held lease, the caller's row (answers, suspension, gold and repeat
        # candidates, the case of their last task), the chosen gold or repeat task (none: id
        # 0), the queue passing over that case, the queue with it (a one-time false filter
        # once a task is found), lease, slot update, slice with its neighbours: the same
        # statements whatever the kind
        assert statements == expect(
            "SELECT", "SELECT", "SELECT", "SELECT", "SELECT", "SELECT", "INSERT", "UPDATE", "SELECT"
        )
        statements.clear()
        # A reload: caller, held lease, slices.
        assert client.post("/api/tasks/next").json()["id"] == task["id"]
        assert statements == expect("SELECT", "SELECT", "SELECT")
        statements.clear()
        mask = {"encoding": "rle", "width": WIDTH, "height": HEIGHT, "counts": [WIDTH * HEIGHT]}
        sent = client.post(
            f"/api/tasks/{task['id']}/annotations",
            json={"mask": mask},
            headers={"Idempotency-Key": "k1"},
        )
        assert sent.status_code == 201, sent.text
        # caller, task lock with the checks' reads, annotation, assignment, slot update, the
        # rater's totals
        assert statements == expect("SELECT", "SELECT", "INSERT", "UPDATE", "UPDATE", "INSERT")
    assert ids


def _pixels(png: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)))


def test_the_sprite_holds_every_image_of_the_lease_in_the_listed_order(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    # Slices seeded without sprites (as imported before them): the first lease builds it.
    _seed(migrated_engine, storage, count=5)
    signup(client, "v1@example.org")
    task = client.post("/api/tasks/next").json()
    sheet = task["slice"]["sprite"]
    assert sheet["url"] == f"/api/tasks/{task['id']}/sprite.png"
    offsets = sorted(n["offset"] for n in task["neighbours"])
    assert sheet["frames"] == ["0/flair", *(f"{o}/flair" for o in offsets)]
    got = client.get(sheet["url"])
    assert got.status_code == 200
    assert got.headers["cache-control"] == "private, max-age=86400"
    pixels = _pixels(got.content)
    assert pixels.shape == (HEIGHT * len(sheet["frames"]), WIDTH)
    for i, frame in enumerate(sheet["frames"]):
        offset, contrast = frame.split("/")
        single = _pixels(
            client.get(f"/api/tasks/{task['id']}/images/{offset}/{contrast}.png").content
        )
        assert np.array_equal(pixels[i * HEIGHT : (i + 1) * HEIGHT], single), frame
    again = client.get(sheet["url"], headers={"If-None-Match": got.headers["etag"]})
    assert again.status_code == 304

    # A second account's lease of a slice gets the same pixels in bytes of its own (a hash
    # of the file must not tell a slice seen before), and never another volunteer's sprite.
    other = TestClient(client.app)
    signup(other, "v2@example.org")
    assert other.get(sheet["url"]).status_code == 404
    mine = other.post("/api/tasks/next").json()
    theirs = other.get(mine["slice"]["sprite"]["url"]).content
    assert theirs != got.content
    anonymous = TestClient(client.app)
    assert anonymous.get(sheet["url"]).status_code == 401
    # An answered lease's sprite is gone with its images.
    mask = {"encoding": "rle", "width": WIDTH, "height": HEIGHT, "counts": [WIDTH * HEIGHT]}
    assert (
        client.post(f"/api/tasks/{task['id']}/annotations", json={"mask": mask}).status_code == 201
    )
    assert client.get(sheet["url"]).status_code == 404


def test_the_image_routes_make_one_statement(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    # Issue 35: the studio loads a sprite (or seven images) per lease and a feedback overlay
    # after each check answer; each authenticates and finds its file in one statement, with
    # no ORM session (BEGIN, COMMIT and the pool's ping are not counted).
    _seed(migrated_engine, storage, count=3)
    signup(client, "v1@example.org")
    task = client.post("/api/tasks/next").json()
    assert client.get(task["slice"]["sprite"]["url"]).status_code == 200  # built: 2 statements
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    with _counted(engine) as statements:
        for url in (task["slice"]["sprite"]["url"], task["slice"]["images"]["flair"]):
            statements.clear()
            assert client.get(url).status_code == 200
            assert statements == ["SELECT"], url
        statements.clear()
        assert client.get("/api/annotations/999/feedback.png").status_code == 404
        assert statements == ["SELECT"]


def test_a_lost_image_file_answers_like_a_strangers_lease(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    # The red team's finding: a missing file's error named its storage key (case and slice).
    _seed(migrated_engine, storage, count=3)
    signup(client, "v1@example.org")
    task = client.post("/api/tasks/next").json()
    assert client.get(task["slice"]["sprite"]["url"]).status_code == 200
    for key in storage.list("cases"):
        storage.delete(key)
    for url in (task["slice"]["sprite"]["url"], task["slice"]["images"]["flair"]):
        lost = client.get(url)
        assert lost.status_code == 404
        assert lost.json()["code"] == "not_found"
        assert "cases/" not in lost.text


def test_an_expert_demoted_to_volunteer_no_longer_sees_their_answered_slices(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    _seed(migrated_engine, storage, count=3)
    signup(client, "e1@example.org")
    set_role(migrated_engine, UserRole.expert)
    task = client.post("/api/tasks/next").json()
    mask = {"encoding": "rle", "width": WIDTH, "height": HEIGHT, "counts": [WIDTH * HEIGHT]}
    sent = client.post(f"/api/tasks/{task['id']}/annotations", json={"mask": mask})
    assert sent.status_code == 201
    urls = (task["slice"]["sprite"]["url"], task["slice"]["images"]["flair"])
    assert [client.get(u).status_code for u in urls] == [200, 200]  # experts review theirs
    set_role(migrated_engine, UserRole.volunteer)
    assert [client.get(u).status_code for u in urls] == [404, 404]
