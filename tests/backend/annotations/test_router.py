"""Submitting masks over the API: encodings, idempotent retries, and bad masks refused."""

import base64
import io
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine
from sqlmodel import Session, select

from backend.annotations.masks import encode_rle, to_png
from backend.annotations.models import Annotation
from backend.core.storage import Storage
from backend.tasks.models import Assignment, AssignmentState
from tests.factories import HEIGHT, WIDTH, create_tasks, signup


def _lease(client: TestClient, engine: Engine, storage: Storage) -> int:
    with Session(engine) as session:
        create_tasks(session, storage, count=2, required_labels=2)
        session.commit()
    signup(client, "rater@example.org")
    task_id: int = client.post("/api/tasks/next").json()["id"]
    return task_id


def _rle(counts: list[int]) -> dict[str, Any]:
    return {"encoding": "rle", "width": WIDTH, "height": HEIGHT, "counts": counts}


def _mask() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    mask[3:7, 5:12] = 1
    return mask


def _png_body(image: Image.Image) -> dict[str, Any]:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return {"mask": {"encoding": "png", "data": base64.b64encode(buffer.getvalue()).decode()}}


def _stored(engine: Engine, storage: Storage) -> tuple[int, list[str]]:
    with Session(engine) as session:
        rows = len(session.exec(select(Annotation)).all())
    return rows, storage.list("annotations")


def test_png_and_rle_store_the_same_mask(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    first = _lease(client, migrated_engine, storage)
    mask = _mask()
    png = {"mask": {"encoding": "png", "data": base64.b64encode(to_png(mask)).decode()}}
    response = client.post(f"/api/tasks/{first}/annotations", json={**png, "duration_ms": 4200})
    assert response.status_code == 201, response.text
    assert response.json()["lesion_pixels"] == int(mask.sum())
    second = client.post("/api/tasks/next").json()["id"]
    rle = {
        "mask": {"encoding": "rle", "width": WIDTH, "height": HEIGHT, "counts": encode_rle(mask)}
    }
    assert client.post(f"/api/tasks/{second}/annotations", json=rle).status_code == 201
    with Session(migrated_engine) as session:
        stored = session.exec(select(Annotation).order_by(Annotation.id)).all()  # type: ignore[arg-type]
        assert [a.duration_ms for a in stored] == [4200, None]
        for annotation in stored:
            pixels = np.asarray(Image.open(io.BytesIO(storage.get(annotation.mask_key))))
            assert np.array_equal(pixels > 0, mask > 0)
        states = session.exec(select(Assignment.state)).all()
        assert set(states) == {AssignmentState.submitted}


def test_retry_with_the_same_idempotency_key_is_answered_not_stored_twice(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    task_id = _lease(client, migrated_engine, storage)
    body = {
        "mask": {"encoding": "rle", "width": WIDTH, "height": HEIGHT, "counts": [WIDTH * HEIGHT]}
    }
    headers = {"Idempotency-Key": "b7f1c2"}
    first = client.post(f"/api/tasks/{task_id}/annotations", json=body, headers=headers)
    retry = client.post(f"/api/tasks/{task_id}/annotations", json=body, headers=headers)
    assert first.status_code == 201
    assert retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()
    assert _stored(migrated_engine, storage)[0] == 1
    assert len(_stored(migrated_engine, storage)[1]) == 1
    # A second, different answer for the same task is a conflict, not an overwrite.
    other = client.post(
        f"/api/tasks/{task_id}/annotations", json=body, headers={"Idempotency-Key": "zz"}
    )
    assert other.status_code == 409
    assert client.post(f"/api/tasks/{task_id}/annotations", json=body).status_code == 409
    # The same key with a different body is refused, not answered as if it matched.
    painted = {**body, "mask": {**body["mask"], "counts": [0, WIDTH * HEIGHT]}}
    changed = client.post(f"/api/tasks/{task_id}/annotations", json=painted, headers=headers)
    assert changed.status_code == 422
    assert "different request" in changed.json()["detail"]
    # The key cannot be reused for another task either.
    next_id = client.post("/api/tasks/next").json()["id"]
    reuse = client.post(f"/api/tasks/{next_id}/annotations", json=body, headers=headers)
    assert reuse.status_code == 422
    assert _stored(migrated_engine, storage)[0] == 1


def _bad_bodies() -> list[pytest.ParameterSet]:
    wrong_size = Image.fromarray(np.zeros((HEIGHT + 1, WIDTH), dtype=np.uint8))
    grey = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    grey[0, 0] = 128
    rgb = Image.new("RGB", (WIDTH, HEIGHT))
    jpeg = io.BytesIO()
    rgb.save(jpeg, format="JPEG")
    n = WIDTH * HEIGHT
    rle = {"encoding": "rle", "width": WIDTH, "height": HEIGHT}
    return [
        pytest.param(_png_body(wrong_size), "needs 24x16", id="png-wrong-size"),
        pytest.param(_png_body(Image.fromarray(grey)), "0 or 255", id="png-grey-values"),
        pytest.param(_png_body(rgb), "greyscale", id="png-rgb"),
        pytest.param(
            {"mask": {"encoding": "png", "data": base64.b64encode(jpeg.getvalue()).decode()}},
            "PNG",
            id="jpeg",
        ),
        pytest.param({"mask": {"encoding": "png", "data": "%%%"}}, "base64", id="bad-base64"),
        pytest.param(
            {"mask": {"encoding": "png", "data": base64.b64encode(b"junk").decode()}},
            "readable PNG",
            id="not-an-image",
        ),
        pytest.param({"mask": {**rle, "counts": [n - 1]}}, "cover", id="rle-short"),
        pytest.param({"mask": {**rle, "counts": [n + 5, -5]}}, "greater than", id="rle-negative"),
        pytest.param({"mask": {**rle, "counts": []}}, "at least 1 item", id="rle-empty"),
        # Runs whose int64 sum wraps around to W x H once crashed the server (issue 17).
        pytest.param(
            {"mask": {**rle, "counts": [2**63 - 1, 2**63 - 1, n + 2]}}, "less than", id="rle-wrap"
        ),
        pytest.param({"mask": {**rle, "counts": [2**64, n]}}, "less than", id="rle-huge"),
        pytest.param({"mask": {**rle, "counts": [n, 0, 0, 0, 1]}}, "cover", id="rle-long"),
        pytest.param({"mask": {**rle, "width": 5, "counts": [5 * HEIGHT]}}, "needs", id="rle-size"),
        pytest.param({"mask": {"encoding": "svg", "data": ""}}, "encoding", id="unknown-encoding"),
        pytest.param({"mask": {**rle, "counts": [n]}, "extra": 1}, "extra", id="unknown-field"),
        pytest.param({"duration_ms": 5}, "mask", id="no-mask"),
    ]


@pytest.mark.parametrize(("body", "message"), _bad_bodies())
def test_bad_masks_are_refused_with_422_and_nothing_is_stored(
    client: TestClient,
    migrated_engine: Engine,
    storage: Storage,
    body: dict[str, Any],
    message: str,
) -> None:
    task_id = _lease(client, migrated_engine, storage)
    response = client.post(f"/api/tasks/{task_id}/annotations", json=body)
    assert response.status_code == 422, response.text
    assert message in response.text
    assert _stored(migrated_engine, storage) == (0, [])
    with Session(migrated_engine) as session:
        assert session.exec(select(Assignment.state)).one() is AssignmentState.active


def test_oversized_payloads_are_refused(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    task_id = _lease(client, migrated_engine, storage)
    noise = np.random.default_rng(0).integers(0, 2, (HEIGHT, WIDTH), dtype=np.uint8) * 255
    body = _png_body(Image.fromarray(noise))
    client.app.state.settings.max_mask_bytes = 64  # type: ignore[attr-defined]
    response = client.post(f"/api/tasks/{task_id}/annotations", json=body)
    assert response.status_code == 422
    assert "limit" in response.json()["detail"]
    huge = client.post(
        f"/api/tasks/{task_id}/annotations",
        content=b"{" + b" " * (5 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    assert _stored(migrated_engine, storage) == (0, [])


def test_unknown_or_unleased_task(
    client: TestClient, migrated_engine: Engine, storage: Storage
) -> None:
    task_id = _lease(client, migrated_engine, storage)
    body = {
        "mask": {"encoding": "rle", "width": WIDTH, "height": HEIGHT, "counts": [WIDTH * HEIGHT]}
    }
    unknown = client.post("/api/tasks/9999/annotations", json=body)
    assert unknown.status_code == 404
    assert "no lease 9999" in unknown.json()["detail"]
    # Someone else's lease looks exactly like no lease at all.
    signup(client, "other@example.org")
    other = client.post("/api/tasks/next").json()["id"]
    signup(client, "rater2@example.org")
    response = client.post(f"/api/tasks/{other}/annotations", json=body)
    assert response.status_code == 404
    assert f"no lease {other}" in response.json()["detail"]
    # The right to answer is checked before any mask is decoded.
    junk = {"mask": {"encoding": "png", "data": "%%%"}}
    assert client.post(f"/api/tasks/{other}/annotations", json=junk).status_code == 404
    assert task_id != other
