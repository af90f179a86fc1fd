"""Gold is invisible until answered: everything a volunteer's client receives before submitting
looks the same for gold and normal tasks; the feedback comes after, to that volunteer only."""

import base64
import hashlib
import io
import random
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine, event
from sqlmodel import Session

from backend.annotations.masks import encode_rle
from backend.core.storage import Storage
from backend.imaging.models import Slice
from backend.quality import gold
from backend.tasks.models import Assignment, Task, TaskKind
from tests.backend.quality.test_gold import _normal_tasks, _square_masks, create_case
from tests.factories import create_project, signup

MASKS = _square_masks(40)
# Headers that legitimately differ between any two answers.
VARYING = {"date", "content-length", "server-timing"}


def _shape(value: Any) -> Any:
    """The structure of a JSON value: keys and types, recursively (list items in order)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def _template(task: dict[str, Any]) -> str:
    """The lease answer with the lease's own id and expiry taken out."""
    rest = {**task, "id": "ID", "lease_expires_at": "T"}
    return repr(rest).replace(f"/api/tasks/{task['id']}/", "/api/tasks/{id}/")


def _seed(engine: Engine, storage: Storage) -> None:
    with Session(engine) as session:
        project = create_project(session, min_labels=3, gold_rate=0.5, gold_schedule=[])
        # Gold and normal slices interleaved in one case, so both have neighbours either side.
        slices = create_case(session, storage, project, MASKS)
        for s in slices[2:38:2]:
            gold.approve_reference(
                session=session, storage=storage, slice_id=s.id or 0, expert_id=None
            )
        _normal_tasks(session, project, slices[3:38:2])
        session.commit()


def _kind_and_index(engine: Engine, lease_id: int) -> tuple[TaskKind, int, int]:
    """What the server knows of a lease and the client must not: its kind (and slice)."""
    with Session(engine) as session:
        lease = session.get(Assignment, lease_id)
        assert lease is not None
        task = session.get(Task, lease.task_id)
        assert task is not None
        slice_ = session.get(Slice, task.slice_id)
        assert slice_ is not None
        return task.kind, slice_.index, task.slice_id


def _statement(args: tuple[Any, ...]) -> str:
    """A statement as run, with its parameters normalised: the SQL text and the names (or
    number) of its parameters, not their values."""
    text, params = str(args[2]), args[3]
    names = sorted(params) if isinstance(params, dict) else len(params or ())
    return f"{' '.join(text.split())} {names}"


def _volunteer_run(
    client: TestClient, migrated_engine: Engine, leases: int
) -> list[dict[str, Any]]:
    """Lease, look at every image and answer ``leases`` times as one volunteer; what the
    client received each time, beside what the server knows (kind, slice)."""
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(_statement(args))

    seen = []
    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(leases):
            rewards_before = client.get("/api/rewards/me").json()
            statements.clear()
            response = client.post("/api/tasks/next")
            assert response.status_code == 200
            made = list(statements)
            # Nothing about rewards changes with a lease: what the studio could show before
            # answering is the same for a check slice and a crowd slice.
            assert client.get("/api/rewards/me").json() == rewards_before
            task = response.json()
            kind, index, slice_id = _kind_and_index(migrated_engine, task["id"])
            headers = {k: v for k, v in response.headers.items() if k not in VARYING}
            images = [task["slice"]["images"]] + [n["images"] for n in task["neighbours"]]
            image_headers, files = [], []
            for urls in images:
                for url in urls.values():
                    image = client.get(url)
                    assert image.status_code == 200
                    image_headers.append(
                        {k: v for k, v in image.headers.items() if k not in {"etag", *VARYING}}
                    )
                    files.append(image)
            own = files[0]  # the leased slice's FLAIR
            with Image.open(io.BytesIO(own.content)) as decoded:
                pixels = hashlib.sha256(np.asarray(decoded).tobytes()).hexdigest()
            seen.append(
                {
                    "kind": kind,
                    "slice": slice_id,
                    "shape": _shape(task),
                    "template": _template(task),
                    "headers": headers,
                    "image_headers": image_headers,
                    "statements": made,
                    "no gold words": "gold" not in response.text.lower(),
                    "id": task["id"],
                    "bytes": {hashlib.sha256(f.content).hexdigest() for f in files},
                    "etags": {f.headers["etag"] for f in files},
                    "pixels": pixels,
                }
            )
            # A careful volunteer's answer (empty answers on every check would be spam).
            counts = encode_rle(MASKS[index].astype(np.uint8))
            sent = client.post(
                f"/api/tasks/{task['id']}/annotations",
                json={"mask": {"encoding": "rle", "width": 24, "height": 16, "counts": counts}},
            )
            assert sent.status_code == 201
            assert (sent.json()["feedback"] is not None) == (kind is TaskKind.gold)
            # Points: a check answer's at once (none when answered faster than the spam
            # rule's threshold), a crowd answer's pending until the slice is fused.
            reward = sent.json()["reward"]
            expected = ("awarded", "none") if kind is TaskKind.gold else ("pending",)
            assert reward["status"] in expected
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return seen


def test_gold_and_normal_leases_look_alike_field_by_field(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    random.seed(42)  # the gold draw runs in this process (TestClient): no flakes
    _seed(migrated_engine, storage)
    signup(client, "volunteer@example.org")
    first = _volunteer_run(client, migrated_engine, 16)
    # A second account of the same person, keeping notes of everything the first received.
    signup(client, "second-account@example.org")
    second = _volunteer_run(client, migrated_engine, 16)
    for run in (first, second):
        gold = [e for e in run if e["kind"] is TaskKind.gold]
        normal = [e for e in run if e["kind"] is TaskKind.normal]
        assert gold
        assert normal
        # Field by field: one description fits every lease, gold or normal; the statements
        # are compared whole (SQL text and parameter names), not by their first keyword.
        fields = ("shape", "template", "headers", "image_headers", "statements", "no gold words")
        for field in fields:
            values = {repr(entry[field]) for entry in gold + normal}
            assert len(values) == 1, (field, values)
        # Ids grow in the order leases were taken, whatever the kind.
        ids = [e["id"] for e in run]
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)
    # Across the accounts: no file and no ETag repeats, although the same slices (gold
    # among them) were shown with exactly the same pixels.
    assert not set().union(*(e["bytes"] for e in first)) & set().union(
        *(e["bytes"] for e in second)
    )
    assert not set().union(*(e["etags"] for e in first)) & set().union(
        *(e["etags"] for e in second)
    )
    pixels = {e["slice"]: e["pixels"] for e in first}
    shared = [e for e in second if e["slice"] in pixels]
    assert any(e["kind"] is TaskKind.gold for e in shared)
    assert all(pixels[e["slice"]] == e["pixels"] for e in shared)


def test_feedback_is_for_the_volunteer_who_answered_and_only_after(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    with Session(migrated_engine) as session:
        project = create_project(session, gold_rate=1.0, gold_schedule=[])
        (slice_,) = create_case(session, storage, project, _square_masks(1))
        gold.approve_reference(
            session=session, storage=storage, slice_id=slice_.id or 0, expert_id=None
        )
        session.commit()
    signup(client, "first@example.org")
    task = client.post("/api/tasks/next").json()
    # Before answering there is no annotation, so nothing to fetch feedback for.
    assert client.get("/api/annotations/1/feedback.png").status_code == 404
    mask = np.zeros((16, 24), dtype=np.uint8)
    mask[3:8, 4:7] = 1  # half of the gold square: one lesion found, none missed
    counts = encode_rle(mask)
    sent = client.post(
        f"/api/tasks/{task['id']}/annotations",
        json={"mask": {"encoding": "rle", "width": 24, "height": 16, "counts": counts}},
    )
    assert sent.status_code == 201
    feedback = sent.json()["feedback"]
    assert feedback["dice"] == 2 * 15 / (15 + 30)
    assert (feedback["lesions_reference"], feedback["lesions_found"]) == (1, 1)
    assert (feedback["lesions_missed"], feedback["false_alarms"]) == (0, 0)
    overlay = client.get(feedback["overlay_url"])
    assert overlay.status_code == 200
    assert overlay.headers["cache-control"] == "no-store"
    # The same overlay comes inline with the answer (the studio needs no second request).
    prefix = "data:image/png;base64,"
    assert feedback["overlay_png"].startswith(prefix)
    assert base64.b64decode(feedback["overlay_png"][len(prefix) :]) == overlay.content
    # The expert's mask is never handed out as a file: it would be a reusable answer key.
    assert "gold_url" not in feedback
    assert client.get(f"/api/annotations/{sent.json()['id']}/gold.png").status_code == 404
    # Another volunteer cannot see it: the same 404 as for an answer that does not exist.
    signup(client, "second@example.org")
    assert client.get(feedback["overlay_url"]).status_code == 404
